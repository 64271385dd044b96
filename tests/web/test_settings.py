"""Agency settings (branding, logo and favicon, custom domains), a client's settings and the
public brand files, through the dashboard as a browser would use them."""

from __future__ import annotations

import io
import re

import httpx
from PIL import Image

from demandly.app import create_app
from demandly.config import Settings
from demandly.kit.db import Database
from tests.factories import make_tenant, unique
from tests.tenancy.conftest import DnsServer, dns_server  # noqa: F401 (a fixture)
from tests.web.support import browser, sign_in


def png(width: int = 40, height: int = 20) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "#0a7").save(out, format="PNG")
    return out.getvalue()


async def post_file(
    client: httpx.AsyncClient, token: str, kind: str, content: bytes, name: str
) -> httpx.Response:
    return await client.post(
        f"/app/settings/assets/{kind}",
        data={"csrf_token": token},
        files={"file": (name, content, "application/octet-stream")},
    )


BRANDING = {
    "display_name": "Nordlicht Marketing",
    "primary_color": "#0f766e",
    "accent_color": "#f59e0b",
    "sender_name": "Nordlicht Team",
    "support_email": "hilfe@nordlicht.example",
    "privacy_policy_url": "https://nordlicht.example/datenschutz",
    "imprint_url": "https://nordlicht.example/impressum",
}


async def test_branding_save_shows_on_the_next_page_and_in_the_stylesheet(
    app, db: Database
) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        token = await sign_in(client, tenant.users["agency_admin"])
        page = await client.get("/app/settings")
        assert page.status_code == 200
        assert 'type="color"' in page.text
        saved = await client.post("/app/settings/branding", data={**BRANDING, "csrf_token": token})
        assert saved.status_code == 303
        assert saved.headers["location"] == "/app/settings"
        after = await client.get("/app/settings")
        assert "Nordlicht Marketing" in after.text
        assert 'value="#0f766e"' in after.text
        assert "Saved." in after.text
        home = await client.get("/app")
        assert "Nordlicht Marketing" in home.text
        assert "https://nordlicht.example/impressum" in home.text
        css = await client.get("/app/brand.css")
        assert "--brand-primary:#0f766e" in css.text
        assert "--brand-accent:#f59e0b" in css.text
        # The API shows the same branding.
        api = await client.get(f"/api/v1/agencies/{tenant.agency.id}")
        assert api.json()["branding"]["display_name"] == "Nordlicht Marketing"


async def test_an_invalid_colour_is_refused_next_to_the_field(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        token = await sign_in(client, tenant.users["agency_owner"])
        refused = await client.post(
            "/app/settings/branding",
            data={**BRANDING, "primary_color": "teal", "csrf_token": token},
        )
        assert refused.status_code == 422
        assert 'id="e-primary_color"' in refused.text
        assert "#rrggbb" in refused.text
        # What was typed stays in the form.
        assert 'value="teal"' in refused.text
        assert "Nordlicht Marketing" in refused.text
        css = await client.get("/app/brand.css")
        assert "teal" not in css.text


async def test_a_low_contrast_colour_gets_a_hint(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        token = await sign_in(client, tenant.users["agency_owner"])
        await client.post(
            "/app/settings/branding",
            data={**BRANDING, "accent_color": "#3b82f6", "csrf_token": token},
        )
        page = await client.get("/app/settings")
    assert 'id="c-accent_color"' in page.text
    assert "WCAG AA" in page.text
    assert 'id="c-primary_color"' not in page.text


async def test_the_picker_counts_when_the_hex_field_was_left_alone(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        token = await sign_in(client, tenant.users["agency_owner"])
        await client.post("/app/settings/branding", data={**BRANDING, "csrf_token": token})
        await client.post(
            "/app/settings/branding",
            data={**BRANDING, "primary_color_picker": "#7c3aed", "csrf_token": token},
        )
        css = await client.get("/app/brand.css")
    assert "--brand-primary:#7c3aed" in css.text


async def test_a_png_logo_is_uploaded_served_and_shown(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    image = png()
    async with browser(app) as client:
        token = await sign_in(client, tenant.users["agency_owner"])
        uploaded = await post_file(client, token, "logo", image, "logo.png")
        assert uploaded.status_code == 303, uploaded.text
        page = await client.get("/app/settings")
        found = re.search(r'src="(https?://[^"]+/brand-assets/(ast_[^"]+))"', page.text)
        assert found, page.text
        asset_id = found.group(2)
        home = await client.get("/app")
        assert f"/brand-assets/{asset_id}" in home.text  # the logo in the top bar

        # Replacing deletes the old file.
        uploaded = await post_file(client, token, "logo", png(60, 30), "logo2.png")
        assert uploaded.status_code == 303
        assert (await client.get(f"/brand-assets/{asset_id}")).status_code == 404

        page = await client.get("/app/settings")
        new_id = re.search(r"/brand-assets/(ast_[A-Za-z0-9_-]+)", page.text).group(1)  # type: ignore[union-attr]
    async with browser(app) as anonymous:
        served = await anonymous.get(f"/brand-assets/{new_id}")
        assert served.status_code == 200
        assert served.headers["content-type"] == "image/png"
        assert served.headers["x-content-type-options"] == "nosniff"
        assert "immutable" in served.headers["cache-control"]
        assert served.content[:8] == b"\x89PNG\r\n\x1a\n"
        assert (await anonymous.get("/brand-assets/ast_nope")).status_code == 404


async def test_a_favicon_sets_the_branding_and_can_be_removed(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
        b'<circle cx="8" cy="8" r="7" fill="#0a7"/></svg>'
    )
    async with browser(app) as client:
        token = await sign_in(client, tenant.users["agency_owner"])
        uploaded = await post_file(client, token, "favicon", svg, "icon.svg")
        assert uploaded.status_code == 303, uploaded.text
        api = await client.get(f"/api/v1/agencies/{tenant.agency.id}")
        url = api.json()["branding"]["favicon_url"]
        assert "/brand-assets/ast_" in url
        served = await client.get("/" + url.split("/", 3)[3])
        assert served.headers["content-type"].startswith("image/svg+xml")
        assert served.headers["content-security-policy"] == (
            "default-src 'none'; style-src 'unsafe-inline'"
        )
        page = await client.get("/app")
        assert f'<link rel="icon" href="{url}">' in page.text
        removed = await client.post(
            "/app/settings/assets/favicon/remove", data={"csrf_token": token}
        )
        assert removed.status_code == 303
        api = await client.get(f"/api/v1/agencies/{tenant.agency.id}")
        assert api.json()["branding"].get("favicon_url") is None


async def test_dangerous_or_wrong_files_are_refused_with_a_message(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    scripted = (
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script>'
        b'<rect width="5" height="5"/></svg>'
    )
    handler = b'<svg xmlns="http://www.w3.org/2000/svg"><rect onload="alert(1)"/></svg>'
    external = (
        b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
        b'<image xlink:href="https://evil.example/x.png"/></svg>'
    )
    entity = (
        b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x "boom">]>'
        b'<svg xmlns="http://www.w3.org/2000/svg"><text>&x;</text></svg>'
    )
    async with browser(app) as client:
        token = await sign_in(client, tenant.users["agency_owner"])
        for svg in (scripted, handler, external, entity):
            refused = await post_file(client, token, "logo", svg, "logo.svg")
            assert refused.status_code == 422, svg
            assert 'id="e-logo"' in refused.text
        assert "scripts or external references" in refused.text

        html = b"<!doctype html><html><body><script>alert(1)</script></body></html>"
        refused = await post_file(client, token, "logo", html, "logo.png")
        assert refused.status_code == 422
        assert "not a PNG, JPEG, WebP, ICO or SVG image" in refused.text

        big = b"\x89PNG\r\n\x1a\n" + b"\0" * (600 * 1024)
        refused = await post_file(client, token, "logo", big, "big.png")
        assert refused.status_code == 422
        assert "the limit is 512 KB" in refused.text

        refused = await post_file(client, token, "favicon", png(2000, 10), "wide.png")
        assert refused.status_code == 422
        assert 'id="e-favicon"' in refused.text

        api = await client.get(f"/api/v1/agencies/{tenant.agency.id}")
        assert api.json()["branding"].get("logo_url") is None


async def test_a_domain_shows_its_txt_record_and_verifies(
    settings: Settings,
    db: Database,
    dns_server: DnsServer,  # noqa: F811
) -> None:
    app = create_app(settings.model_copy(update={"dns_nameserver": dns_server.address}), db)
    tenant = await make_tenant(db)
    domain = f"{unique('portal').lower()}.agency.example"
    async with browser(app) as client:
        token = await sign_in(client, tenant.users["agency_admin"])
        invalid = await client.post(
            "/app/settings/domains", data={"domain": "not a domain", "csrf_token": token}
        )
        assert invalid.status_code == 422
        assert 'id="e-domain"' in invalid.text

        added = await client.post(
            "/app/settings/domains", data={"domain": domain, "csrf_token": token}
        )
        assert added.status_code == 303
        page = await client.get("/app/settings")
        assert domain in page.text
        assert f"_demandly-challenge.{domain}" in page.text
        value = re.search(r"demandly-verify=[A-Za-z0-9_-]+", page.text).group(0)  # type: ignore[union-attr]
        domain_id = re.search(r"/app/settings/domains/([^/]+)/verify", page.text).group(1)  # type: ignore[union-attr]

        failed = await client.post(
            f"/app/settings/domains/{domain_id}/verify", data={"csrf_token": token}
        )
        assert failed.status_code == 422
        assert "no TXT record" in failed.text

        dns_server.txt[f"_demandly-challenge.{domain}"] = [value]
        verified = await client.post(
            f"/app/settings/domains/{domain_id}/verify", data={"csrf_token": token}
        )
        assert verified.status_code == 303
        page = await client.get("/app/settings")
        assert "Verified" in page.text
        assert f"/app/settings/domains/{domain_id}/verify" not in page.text

        taken = await client.post(
            "/app/settings/domains", data={"domain": domain, "csrf_token": token}
        )
        assert taken.status_code == 422
        assert "already registered" in taken.text

        removed = await client.post(
            f"/app/settings/domains/{domain_id}/remove", data={"csrf_token": token}
        )
        assert removed.status_code == 303
        assert domain not in (await client.get("/app/settings")).text


async def test_lower_roles_cannot_open_agency_settings(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    for role in ("agency_member", "client_admin", "client_viewer"):
        async with browser(app) as client:
            token = await sign_in(client, tenant.users[role])
            assert (await client.get("/app/settings")).status_code == 403, role
            refused = await client.post(
                "/app/settings/branding", data={**BRANDING, "csrf_token": token}
            )
            assert refused.status_code == 403, role
            refused = await post_file(client, token, "logo", png(), "logo.png")
            assert refused.status_code == 403, role


async def test_another_agencys_domain_is_not_found(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = await make_tenant(db), await make_tenant(db)
    domain = f"{unique('theirs').lower()}.agency.example"
    async with browser(app) as client:
        token = await sign_in(client, theirs.users["agency_owner"])
        await client.post("/app/settings/domains", data={"domain": domain, "csrf_token": token})
        page = await client.get("/app/settings")
        domain_id = re.search(r"/app/settings/domains/([^/]+)/verify", page.text).group(1)  # type: ignore[union-attr]
    async with browser(app) as client:
        token = await sign_in(client, ours.users["agency_owner"])
        for action in ("verify", "remove"):
            response = await client.post(
                f"/app/settings/domains/{domain_id}/{action}", data={"csrf_token": token}
            )
            assert response.status_code == 404
            assert domain not in response.text


async def test_agency_settings_in_german(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        token = await sign_in(client, tenant.users["agency_owner"])
        await client.post("/app/language", data={"lang": "de", "next": "/app", "csrf_token": token})
        page = await client.get("/app/settings")
        assert "Agentur-Einstellungen" in page.text
        assert "Eigene Domains" in page.text
        refused = await client.post(
            "/app/settings/branding",
            data={**BRANDING, "primary_color": "teal", "csrf_token": token},
        )
        assert "#rrggbb" in refused.text
        assert "muss eine Farbe" in refused.text
        big = b"\x89PNG\r\n\x1a\n" + b"\0" * (600 * 1024)
        refused = await post_file(client, token, "logo", big, "big.png")
        assert "die Grenze liegt bei 512 KB" in refused.text


# --- client settings -----------------------------------------------------------------------


async def test_a_client_admin_saves_the_client_profile_and_lead_settings(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    client_id = tenant.clients[0].id
    url = f"/app/clients/{client_id}/settings"
    async with browser(app) as client:
        token = await sign_in(client, tenant.users["client_admin"])
        page = await client.get(url)
        assert page.status_code == 200
        assert "Suspend client" not in page.text  # an agency role's business

        saved = await client.post(
            f"{url}/profile",
            data={
                "name": "Bäckerei Korn",
                "timezone": "Europe/Vienna",
                "locale": "en",
                "privacy_policy_url": "https://korn.example/privacy",
                "csrf_token": token,
            },
        )
        assert saved.status_code == 303
        page = await client.get(url)
        assert "Bäckerei Korn" in page.text
        assert 'value="Europe/Vienna"' in page.text

        bad = await client.post(
            f"{url}/profile",
            data={"name": "Bäckerei Korn", "timezone": "Mars/Base", "locale": "en",
                  "csrf_token": token},
        )  # fmt: skip
        assert bad.status_code == 422
        assert "IANA time zone" in bad.text
        assert 'value="Mars/Base"' in bad.text

        saved = await client.post(
            f"{url}/notifications",
            data={
                "notify_emails": "Chef@Korn.example\nteam@korn.example",
                "notify_on": ["qualified"],
                "csrf_token": token,
            },
        )
        assert saved.status_code == 303
        api = await client.get(f"/api/v1/clients/{client_id}/lead-notifications")
        assert api.json() == {
            "notify_emails": ["chef@korn.example", "team@korn.example"],
            "notify_on": ["qualified"],
        }
        bad = await client.post(
            f"{url}/notifications", data={"notify_emails": "nobody", "csrf_token": token}
        )
        assert bad.status_code == 422
        assert "nobody" in bad.text

        saved = await client.post(
            f"{url}/scoring",
            data={
                "rule-0-field": "budget",
                "rule-0-op": "gte",
                "rule-0-value": "5000",
                "rule-0-points": "20",
                "rule-1-field": "service",
                "rule-1-op": "in",
                "rule-1-value": "roof, facade",
                "rule-1-points": "10",
                "qualify_at": "25",
                "csrf_token": token,
            },
        )
        assert saved.status_code == 303
        api = await client.get(f"/api/v1/clients/{client_id}/lead-scoring")
        assert api.json()["qualify_at"] == 25
        assert api.json()["rules"][1]["value"] == ["roof", "facade"]
        page = await client.get(url)
        assert 'value="roof, facade"' in page.text

        bad = await client.post(
            f"{url}/scoring",
            data={"rule-0-field": "budget", "rule-0-op": "gte", "rule-0-value": "lots",
                  "rule-0-points": "5", "qualify_at": "", "csrf_token": token},
        )  # fmt: skip
        assert bad.status_code == 422
        assert "needs a number" in bad.text


async def test_an_agency_admin_suspends_and_deletes_a_client(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    target = tenant.clients[1]
    url = f"/app/clients/{target.id}/settings"
    async with browser(app) as client:
        token = await sign_in(client, tenant.users["agency_admin"])
        suspended = await client.post(
            f"{url}/status", data={"status": "suspended", "csrf_token": token}
        )
        assert suspended.status_code == 303
        page = await client.get(url)
        assert "Reactivate client" in page.text

        wrong = await client.post(
            f"{url}/delete", data={"confirm_name": "something else", "csrf_token": token}
        )
        assert wrong.status_code == 422
        assert "Type the client" in wrong.text
        deleted = await client.post(
            f"{url}/delete", data={"confirm_name": target.name, "csrf_token": token}
        )
        assert deleted.status_code == 303
        assert deleted.headers["location"] == "/app"
        assert (await client.get(url)).status_code == 404
        assert target.name not in (await client.get("/app")).text


async def test_client_settings_roles_and_foreign_ids(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = await make_tenant(db), await make_tenant(db)
    url = f"/app/clients/{ours.clients[0].id}/settings"
    async with browser(app) as client:
        token = await sign_in(client, ours.users["client_viewer"])
        assert (await client.get(url)).status_code == 403
        refused = await client.post(
            f"{url}/notifications", data={"notify_emails": "x@y.example", "csrf_token": token}
        )
        assert refused.status_code == 403
    async with browser(app) as client:
        token = await sign_in(client, ours.users["client_admin"])
        refused = await client.post(f"{url}/status", data={"status": "suspended",
                                                           "csrf_token": token})  # fmt: skip
        assert refused.status_code == 403
        refused = await client.post(
            f"{url}/delete", data={"confirm_name": ours.clients[0].name, "csrf_token": token}
        )
        assert refused.status_code == 403
    async with browser(app) as client:
        token = await sign_in(client, ours.users["agency_owner"])
        foreign = f"/app/clients/{theirs.clients[0].id}/settings"
        response = await client.get(foreign)
        assert response.status_code == 404
        assert theirs.clients[0].name not in response.text
        response = await client.post(
            f"{foreign}/profile", data={"name": "Taken over", "csrf_token": token}
        )
        assert response.status_code == 404


async def test_client_settings_in_german(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        token = await sign_in(client, tenant.users["agency_owner"])
        await client.post("/app/language", data={"lang": "de", "next": "/app", "csrf_token": token})
        page = await client.get(f"/app/clients/{tenant.clients[0].id}/settings")
    assert "Lead-Benachrichtigungen" in page.text
    assert "Kunden löschen" in page.text
