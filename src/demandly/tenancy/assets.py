"""Uploaded brand files (logo, favicon): checked, stored in ``agency_assets`` and linked from
the agency's branding by a public URL (``/brand-assets/{id}``).

What is accepted is decided by the bytes, never the file name: PNG, JPEG, WebP and ICO by
their magic numbers and a sane size in pixels (Pillow reads the header only), SVG by parsing.

SVGs are *refused*, not rewritten, when anything in them could act: parsed with ``defusedxml``
(entity declarations and external DTDs are errors), then any ``<script>``,
``<foreignObject>``, ``on*`` attribute, ``javascript:`` anywhere, a reference (``href``,
``xlink:href``, ``url(...)``, ``@import``) that is not ``#fragment`` or ``data:image/…``, or an
``<?xml-stylesheet?>`` makes the whole file invalid. Refusing keeps the stored file byte-for-byte
what the agency uploaded; the serving route adds ``default-src 'none'`` as a second wall.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass
from typing import Literal
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as safe_xml
from defusedxml import DefusedXmlException
from PIL import Image, UnidentifiedImageError
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.auth.context import AuthContext
from demandly.kit.db import system_scope
from demandly.kit.errors import NotFound, ValidationFailed
from demandly.tenancy import schemas as s
from demandly.tenancy.models import Agency, AgencyAsset
from demandly.tenancy.repository import TenancyRepository
from demandly.tenancy.service import update_agency

Kind = Literal["logo", "favicon"]
KINDS: tuple[Kind, ...] = ("logo", "favicon")
MAX_BYTES: dict[str, int] = {"logo": 512 * 1024, "favicon": 128 * 1024}
MAX_PIXELS: dict[str, int] = {"logo": 4096, "favicon": 1024}  # per side
BRANDING_FIELD: dict[str, str] = {"logo": "logo_url", "favicon": "favicon_url"}

PNG, JPEG, WEBP, ICO, SVG = (
    "image/png",
    "image/jpeg",
    "image/webp",
    "image/x-icon",
    "image/svg+xml",
)
PIL_FORMATS = {PNG: "PNG", JPEG: "JPEG", WEBP: "WEBP", ICO: "ICO"}
SVG_NS = "{http://www.w3.org/2000/svg}"
_URL_REF = re.compile(r"url\s*\(\s*['\"]?\s*([^'\")\s]*)", re.IGNORECASE)
_INVISIBLE = re.compile(r"[\x00-\x20\x7f]+")


@dataclass(frozen=True)
class Checked:
    content_type: str
    data: bytes


class AssetRefused(ValidationFailed):
    """An upload that is not taken; ``text`` and ``values`` let a page translate the message."""

    def __init__(self, kind: str, text: str, **values: object) -> None:
        super().__init__(kind, text.format(**values), code="invalid_asset")
        self.text = text
        self.values = values


def _fail(kind: str, text: str, **values: object) -> AssetRefused:
    return AssetRefused(kind, text, **values)


def sniff(data: bytes) -> str | None:
    """The content type the bytes themselves announce (None: not an image we take)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    if data[:4] == b"\x00\x00\x01\x00":
        return ICO
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<?xml", b"<svg", b"<!--")) and b"<svg" in data[:4096].lower():
        return SVG
    return None


def check(kind: str, data: bytes) -> Checked:
    """The upload if it is a usable ``kind`` file; ``ValidationFailed`` naming ``kind`` if not."""
    if kind not in KINDS:
        raise NotFound()
    limit = MAX_BYTES[kind]
    if not data:
        raise _fail(kind, "Choose a file to upload.")
    if len(data) > limit:
        raise _fail(
            kind,
            "The file is {size} KB; the limit is {limit} KB.",
            size=_kib(len(data)),
            limit=_kib(limit),
        )
    content_type = sniff(data)
    if content_type is None:
        raise _fail(kind, "This is not a PNG, JPEG, WebP, ICO or SVG image.")
    if content_type == SVG:
        check_svg(kind, data)
    else:
        _check_raster(kind, data, content_type)
    return Checked(content_type=content_type, data=data)


def _kib(size: int) -> int:
    return -(-size // 1024)


def _check_raster(kind: str, data: bytes, content_type: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                found, (width, height) = image.format, image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise _fail(kind, "The image could not be read; it may be damaged.") from None
    if found != PIL_FORMATS[content_type]:
        raise _fail(kind, "The image could not be read; it may be damaged.")
    largest = MAX_PIXELS[kind]
    if not (1 <= width <= largest and 1 <= height <= largest):
        raise _fail(
            kind,
            "The image is {width} x {height} pixels; at most {largest} x {largest} is allowed.",
            width=width,
            height=height,
            largest=largest,
        )


def check_svg(kind: str, data: bytes) -> None:
    """Refuse an SVG that could run code or load anything (see the module's docstring)."""
    refused = _fail(kind, "This SVG contains scripts or external references and was refused.")
    text = data.decode("utf-8", "replace").lower()
    if "<!entity" in text or "<?xml-stylesheet" in text:
        raise refused
    if "javascript:" in _INVISIBLE.sub("", text):
        raise refused
    try:
        root = safe_xml.fromstring(data, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, safe_xml.ParseError, ValueError):
        raise _fail(kind, "The SVG file could not be read.") from None
    if root.tag not in (f"{SVG_NS}svg", "svg"):
        raise _fail(kind, "The SVG file could not be read.")
    for element in root.iter():
        if not _element_is_inert(element):
            raise refused


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1].lower()


def _element_is_inert(element: Element) -> bool:
    tag = _local(str(element.tag))
    if tag in ("script", "foreignobject", "iframe", "embed", "object", "handler", "listener"):
        return False
    for name, value in element.attrib.items():
        local = _local(name)
        if local.startswith("on"):
            return False
        if local in ("href", "src") and not _is_local_ref(value):
            return False
        if not _css_is_inert(value):
            return False
    return _css_is_inert(element.text or "")


def _is_local_ref(value: str) -> bool:
    value = _INVISIBLE.sub("", value).lower()
    return value.startswith("#") or value.startswith("data:image/")


def _css_is_inert(value: str) -> bool:
    lowered = _INVISIBLE.sub("", value).lower()
    if "javascript:" in lowered or "@import" in lowered or "expression(" in lowered:
        return False
    return all(not ref or _is_local_ref(ref) for ref in _URL_REF.findall(value))


def public_url(base_url: str, asset_id: str) -> str:
    return f"{base_url.rstrip('/')}/brand-assets/{asset_id}"


async def replace_asset(
    session: AsyncSession,
    agency: Agency,
    kind: str,
    data: bytes,
    *,
    base_url: str,
    actor_ctx: AuthContext,
) -> AgencyAsset:
    """Store a checked logo or favicon, delete the one it replaces and point the agency's
    branding at the new one. Authorise (agencies:update) before calling."""
    checked = check(kind, data)
    for old in await TenancyRepository(session).assets_of(agency.id, kind):
        await session.delete(old)
    asset = AgencyAsset(
        agency_id=agency.id,
        client_id=None,
        kind=kind,
        content_type=checked.content_type,
        size=len(checked.data),
        sha256=hashlib.sha256(checked.data).hexdigest(),
        data=checked.data,
    )
    session.add(asset)
    await session.flush()
    _set_branding(agency, kind, public_url(base_url, asset.id), actor_ctx)
    await session.flush()
    return asset


async def remove_asset(
    session: AsyncSession, agency: Agency, kind: str, *, actor_ctx: AuthContext
) -> None:
    """Delete the agency's logo or favicon and clear its URL from the branding."""
    if kind not in KINDS:
        raise NotFound()
    for old in await TenancyRepository(session).assets_of(agency.id, kind):
        await session.delete(old)
    _set_branding(agency, kind, None, actor_ctx)
    await session.flush()


def _set_branding(agency: Agency, kind: str, url: str | None, actor_ctx: AuthContext) -> None:
    branding = s.Branding.model_validate({BRANDING_FIELD[kind]: url})
    update_agency(agency, s.AgencyUpdate(branding=branding), actor_ctx=actor_ctx)


async def public_asset(session: AsyncSession, asset_id: str) -> AgencyAsset:
    """Any agency's file by its id (public: login pages and e-mails show it); 404 if unknown."""
    if not re.fullmatch(s.ID_PATTERN, asset_id) or len(asset_id) > 40:
        raise NotFound()
    async with system_scope(session):
        asset = await TenancyRepository(session).asset(asset_id)
    if asset is None:
        raise NotFound()
    return asset
