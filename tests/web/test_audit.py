"""The audit log page: what each role may read, the filters, paging, German."""

from __future__ import annotations

import re
from datetime import timedelta

from demandly.kit.db import Database
from demandly.kit.time import utcnow
from tests.factories import make_tenant
from tests.web.support import browser, sign_in

AGENCY_UPDATED = "<code>agency.updated</code>"


async def test_the_branding_change_is_in_the_audit_log(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    admin = tenant.users["agency_admin"]
    async with browser(app) as client:
        token = await sign_in(client, admin)
        saved = await client.post(
            "/app/settings/branding",
            data={"display_name": "Audit Agentur", "primary_color": "#123456",
                  "csrf_token": token},
        )  # fmt: skip
        assert saved.status_code == 303
        page = await client.get("/app/audit")
        assert page.status_code == 200
        row = re.search(r"<tr>\s*<td><time.*?</tr>", page.text, re.S)
        assert row, page.text
        newest = row.group(0)
        assert "agency.updated" in newest
        assert "branding" in newest
        assert admin.name in newest or admin.email in newest

        filtered = await client.get("/app/audit", params={"action": "agency.updated"})
        assert AGENCY_UPDATED in filtered.text
        assert "<code>client.created</code>" not in filtered.text

        mine = await client.get("/app/audit", params={"actor_id": admin.id})
        assert AGENCY_UPDATED in mine.text
        nobody = await client.get("/app/audit", params={"actor_id": "usr_nobody"})
        assert "No audit events match." in nobody.text

        tomorrow = (utcnow() + timedelta(days=2)).date().isoformat()
        later = await client.get("/app/audit", params={"since": tomorrow})
        assert AGENCY_UPDATED not in later.text
        today = await client.get("/app/audit", params={"until": tomorrow, "entity_type": "agency"})
        assert AGENCY_UPDATED in today.text

        bad = await client.get("/app/audit", params={"since": "yesterday"})
        assert bad.status_code == 422
        assert "2025-03-31" in bad.text


async def test_the_audit_log_pages_with_a_cursor(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        token = await sign_in(client, tenant.users["agency_owner"])
        for n in range(52):  # each save is one agency.updated event
            await client.post(
                "/app/settings/branding", data={"display_name": f"Name {n}", "csrf_token": token}
            )
        first = await client.get("/app/audit", params={"action": "agency.updated"})
        assert first.text.count("<time ") == 50
        found = re.search(r'href="(/app/audit\?[^"]*cursor=[^"]+)"', first.text)
        assert found
        second = await client.get(found.group(1).replace("&amp;", "&"))
        assert second.status_code == 200
        assert second.text.count("<time ") == 2
        assert AGENCY_UPDATED in second.text
        assert "cursor=" not in second.text


async def test_a_client_admin_sees_only_their_clients_events(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        token = await sign_in(client, tenant.users["agency_owner"])
        await client.post(
            "/app/settings/branding", data={"display_name": "Hidden", "csrf_token": token}
        )
        await client.post(
            f"/app/clients/{tenant.clients[0].id}/settings/profile",
            data={"name": "Seen GmbH", "timezone": "Europe/Berlin", "locale": "de",
                  "csrf_token": token},
        )  # fmt: skip
    async with browser(app) as client:
        await sign_in(client, tenant.users["client_admin"])
        page = await client.get("/app/audit")
        assert page.status_code == 200
        assert "<code>client.updated</code>" in page.text
        assert AGENCY_UPDATED not in page.text
        other = await client.get("/app/audit", params={"client_id": tenant.clients[1].id})
        assert other.status_code == 404


async def test_roles_without_audit_read_are_refused(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = await make_tenant(db), await make_tenant(db)
    for role in ("agency_member", "client_member", "client_viewer"):
        async with browser(app) as client:
            await sign_in(client, ours.users[role])
            home = await client.get("/app")
            assert 'href="/app/audit"' not in home.text, role
            assert (await client.get("/app/audit")).status_code == 403, role
    async with browser(app) as client:
        await sign_in(client, ours.users["agency_owner"])
        foreign = await client.get("/app/audit", params={"client_id": theirs.clients[0].id})
        assert foreign.status_code == 404
        assert theirs.clients[0].name not in foreign.text


async def test_the_audit_log_in_german(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        token = await sign_in(client, tenant.users["agency_owner"])
        await client.post("/app/language", data={"lang": "de", "next": "/app", "csrf_token": token})
        page = await client.get("/app/audit")
    assert "Geänderte Felder" in page.text
    assert "Protokoll filtern" in page.text
