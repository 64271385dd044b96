"""Brand files: what ``tenancy.assets`` takes and what it refuses, by the bytes alone."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from demandly.integrations import email
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.tenancy import assets
from demandly.tenancy.repository import TenancyRepository
from tests.factories import make_tenant


def image(fmt: str, size: tuple[int, int] = (32, 32)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "#336699").save(out, format=fmt)
    return out.getvalue()


SVG_OK = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" '
    b'xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 10 10">'
    b'<defs><linearGradient id="g"><stop offset="0" stop-color="#fff"/></linearGradient></defs>'
    b'<rect width="10" height="10" fill="url(#g)"/><use xlink:href="#g"/>'
    b"<style>rect { fill: #123456; }</style></svg>"
)


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("PNG", assets.PNG), ("JPEG", assets.JPEG), ("WEBP", assets.WEBP), ("ICO", assets.ICO)],
)
def test_raster_images_are_known_by_their_bytes(fmt: str, content_type: str) -> None:
    assert assets.check("logo", image(fmt)).content_type == content_type


def test_a_harmless_svg_is_taken() -> None:
    assert assets.check("favicon", SVG_OK).content_type == assets.SVG


@pytest.mark.parametrize(
    "svg",
    [
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
        b'<svg xmlns="http://www.w3.org/2000/svg"><a href="javascript:alert(1)"/></svg>',
        b'<svg xmlns="http://www.w3.org/2000/svg"><a href="java&#x0A;script:alert(1)"/></svg>',
        b'<svg xmlns="http://www.w3.org/2000/svg"><foreignObject><p>x</p></foreignObject></svg>',
        b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:x="http://www.w3.org/1999/xlink">'
        b'<image x:href="https://evil.example/a.png"/></svg>',
        b'<svg xmlns="http://www.w3.org/2000/svg"><rect style="fill:url(https://evil.example/x)"/></svg>',
        b'<svg xmlns="http://www.w3.org/2000/svg"><style>@import "https://evil.example/a.css";</style></svg>',
        b'<!DOCTYPE svg [<!ENTITY a "b">]><svg xmlns="http://www.w3.org/2000/svg">&a;</svg>',
        b'<?xml-stylesheet href="https://evil.example/a.css"?><svg xmlns="http://www.w3.org/2000/svg"/>',
    ],
)
def test_active_or_external_svg_content_is_refused(svg: bytes) -> None:
    with pytest.raises(assets.AssetRefused) as refused:
        assets.check("logo", svg)
    assert refused.value.details[0]["field"] == "logo"


@pytest.mark.parametrize(
    ("kind", "data", "says"),
    [
        ("logo", b"", "Choose a file"),
        ("logo", b"<html><body>hi</body></html>", "not a PNG"),
        ("logo", b"GIF89a" + b"\0" * 20, "not a PNG"),
        ("favicon", b"\x89PNG\r\n\x1a\n" + b"\0" * (130 * 1024), "limit is 128 KB"),
        ("logo", b"\x89PNG\r\n\x1a\n" + b"broken", "could not be read"),
        ("favicon", image("PNG", (2048, 16)), "at most 1024 x 1024"),
        ("logo", b"<svg><unclosed", "could not be read"),
    ],
)
def test_wrong_files_are_refused_with_a_reason(kind: str, data: bytes, says: str) -> None:
    with pytest.raises(assets.AssetRefused) as refused:
        assets.check(kind, data)
    assert says in refused.value.message


async def test_replacing_deletes_the_old_file_and_links_the_new(db: Database) -> None:
    tenant = await make_tenant(db)
    async with db.session(Scope.for_agency(tenant.agency.id)) as session:
        agency = await TenancyRepository(session).agency(tenant.agency.id)
        assert agency is not None
        ctx = None  # the context only matters for status changes, which this never makes
        first = await assets.replace_asset(
            session, agency, "logo", image("PNG"), base_url="https://app.example/",
            actor_ctx=ctx,  # type: ignore[arg-type]
        )  # fmt: skip
        second = await assets.replace_asset(
            session, agency, "logo", image("PNG", (64, 16)), base_url="https://app.example",
            actor_ctx=ctx,  # type: ignore[arg-type]
        )  # fmt: skip
        await session.commit()
        url = f"https://app.example/brand-assets/{second.id}"
        assert agency.branding["logo_url"] == url
        # One brand everywhere: e-mails take the new logo too.
        assert (await email.brand_for(session, agency.id)).logo_url == url
    async with db.session(Scope()) as session:
        served = await assets.public_asset(session, second.id)
        assert served.data[:8] == b"\x89PNG\r\n\x1a\n"
        assert served.content_type == assets.PNG
        with pytest.raises(assets.NotFound):
            await assets.public_asset(session, first.id)
