"""The leads screens: the list and its filters, the CSV export, and a lead's page (status,
owner, tags, notes, answers by the agent's labels), for the roles that may and may not."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
from sqlalchemy import select

from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.leads.models import Lead, LeadNote
from tests.conversations.conftest import agent_body
from tests.factories import Tenant, make_tenant
from tests.leads.conftest import API, post_lead
from tests.web.support import browser, sign_in


def leads_url(tenant: Tenant, suffix: str = "") -> str:
    return f"/app/clients/{tenant.clients[0].id}/leads{suffix}"


async def three_leads(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, dict[str, Any]]:
    return {
        "anna": await post_lead(
            client,
            tenant,
            contact={"name": "Anna Sommer", "email": "anna@praxis-sommer.de"},
            status="won",
            tags=["vip", "implantat"],
        ),
        "bernd": await post_lead(
            client,
            tenant,
            contact={"name": "Bernd Korn", "phone": "+49 30 1234567"},
            status="contacted",
            tags=["rückruf"],
        ),
        "carla": await post_lead(
            client, tenant, contact={"name": "Carla Weiß", "email": "carla@example.com"}
        ),
    }


async def test_the_list_shows_leads_and_filters_narrow_them(
    app, db: Database, client: httpx.AsyncClient
) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    leads = await three_leads(client, tenant)
    async with browser(app) as page:
        await sign_in(page, tenant.users["client_viewer"])
        listing = await page.get(leads_url(tenant))
        assert listing.status_code == 200
        for name in ("Anna Sommer", "Bernd Korn", "Carla Weiß"):
            assert name in listing.text
        assert "anna@praxis-sommer.de" in listing.text and "+49301234567" in listing.text
        # Newest first.
        assert listing.text.index("Carla Weiß") < listing.text.index("Anna Sommer")

        async def names(**params: str) -> list[str]:
            response = await page.get(leads_url(tenant), params=params)
            assert response.status_code == 200, response.text
            return [n for n in ("Anna Sommer", "Bernd Korn", "Carla Weiß") if n in response.text]

        assert await names(status="won") == ["Anna Sommer"]
        assert await names(tag="rückruf") == ["Bernd Korn"]
        assert await names(q="praxis-sommer") == ["Anna Sommer"]
        assert await names(q="1234567") == ["Bernd Korn"]
        assert await names(min_score="1") == []
        assert await names(until="2000-01-01") == []
        assert leads["anna"]["id"] in (await page.get(leads_url(tenant))).text

        wrong = await page.get(leads_url(tenant), params={"min_score": "viel"})
        assert wrong.status_code == 422
        assert "Enter a whole number." in wrong.text


async def test_the_csv_export_carries_the_filters(
    app, db: Database, client: httpx.AsyncClient
) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    await three_leads(client, tenant)
    async with browser(app) as page:
        await sign_in(page, tenant.users["client_member"])
        listing = await page.get(leads_url(tenant), params={"status": "contacted"})
        link = leads_url(tenant, "/export.csv?status=contacted")
        assert f'href="{link}"' in listing.text
        exported = await page.get(link)
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(exported.text)))
        assert rows[0][:5] == ["id", "created_at", "status", "score", "name"]
        assert [r[4] for r in rows[1:]] == ["Bernd Korn"]

        searched = await page.get(leads_url(tenant, "/export.csv"), params={"q": "carla"})
        assert [r[4] for r in list(csv.reader(io.StringIO(searched.text)))[1:]] == ["Carla Weiß"]


async def test_a_member_changes_status_owner_and_tags_and_adds_notes(
    app, db: Database, client: httpx.AsyncClient
) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    lead = (await three_leads(client, tenant))["carla"]
    url = leads_url(tenant, f"/{lead['id']}")
    member = tenant.users["client_member"]
    owner = tenant.users["client_admin"]
    async with browser(app) as page:
        token = await sign_in(page, member)
        shown = await page.get(url)
        assert shown.status_code == 200
        assert "Carla Weiß" in shown.text and "carla@example.com" in shown.text
        assert f'<option value="{owner.id}"' in shown.text  # people of the client can own it

        saved = await page.post(
            url,
            data={
                "csrf_token": token,
                "status": "won",
                "owner_id": owner.id,
                "tags": "vip, Neupatient",
            },
        )
        assert saved.status_code == 303 and saved.headers["location"] == url
        noted = await page.post(
            f"{url}/notes", data={"csrf_token": token, "body": "Ruft Montag zurück."}
        )
        assert noted.status_code == 303
        after = await page.get(url)
        assert "Saved." not in after.text  # the notice is the note's
        assert "Note added." in after.text
        assert "Ruft Montag zurück." in after.text

        bad_tags = await page.post(
            url, data={"csrf_token": token, "status": "won", "owner_id": owner.id, "tags": 'a"b'}
        )
        assert bad_tags.status_code == 422
        assert "tags are 1-40 characters" in bad_tags.text
        assert 'value="a&#34;b"' in bad_tags.text  # what was typed stays
        stranger = await make_tenant(db)
        bad_owner = await page.post(
            url,
            data={
                "csrf_token": token,
                "status": "won",
                "owner_id": stranger.users["agency_owner"].id,
                "tags": "vip",
            },
        )
        assert bad_owner.status_code == 422
        assert "must be a user with a role in this client" in bad_owner.text
        blank = await page.post(f"{url}/notes", data={"csrf_token": token, "body": " "})
        assert blank.status_code == 422

    async with db.session(Scope.for_system()) as session:
        stored = await session.get(Lead, lead["id"])
        notes = (
            await session.execute(select(LeadNote).where(LeadNote.lead_id == lead["id"]))
        ).scalars()
        assert stored is not None
        assert (stored.status, stored.owner_id, stored.tags) == (
            "won",
            owner.id,
            ["vip", "Neupatient"],
        )
        assert [(n.body, n.author_id) for n in notes] == [("Ruft Montag zurück.", member.id)]


async def test_answers_show_with_the_agents_labels(
    app, db: Database, client: httpx.AsyncClient
) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    form = [
        {"key": "name", "label": {"de": "Name", "en": "Name"}, "type": "text"},
        {"key": "treatment", "label": {"de": "Behandlung", "en": "Treatment"}, "type": "text"},
    ]
    created = await client.post(
        f"{API}/agents",
        json=agent_body(tenant.clients[0].id, qualification=form),
        headers=tenant.headers("agency_owner"),
    )
    assert created.status_code == 201, created.text
    lead = await post_lead(
        client,
        tenant,
        agent_id=created.json()["id"],
        answers={"name": "Dora Lind", "treatment": "Zahnreinigung"},
    )
    async with browser(app) as page:
        await sign_in(page, tenant.users["client_viewer"])
        shown = await page.get(leads_url(tenant, f"/{lead['id']}"))
    assert "<dt>Treatment</dt><dd>Zahnreinigung</dd>" in shown.text
    assert "Empfang" in shown.text  # the agent


async def test_a_viewer_reads_but_may_not_change(
    app, db: Database, client: httpx.AsyncClient
) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    lead = (await three_leads(client, tenant))["anna"]
    url = leads_url(tenant, f"/{lead['id']}")
    async with browser(app) as page:
        token = await sign_in(page, tenant.users["client_viewer"])
        shown = await page.get(url)
        assert shown.status_code == 200
        assert "Add note" not in shown.text and 'name="status"' not in shown.text
        assert "vip, implantat" in shown.text
        changed = await page.post(url, data={"csrf_token": token, "status": "lost", "tags": ""})
        assert changed.status_code == 403
        noted = await page.post(f"{url}/notes", data={"csrf_token": token, "body": "Hallo"})
        assert noted.status_code == 403


async def test_another_agencys_lead_is_not_found(
    app, db: Database, client: httpx.AsyncClient
) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    lead = (await three_leads(client, tenant))["anna"]
    stranger = await make_tenant(db)
    async with browser(app) as page:
        token = await sign_in(page, stranger.users["agency_owner"])
        assert (await page.get(leads_url(tenant, f"/{lead['id']}"))).status_code == 404
        assert (await page.get(leads_url(tenant))).status_code == 404
        assert (await page.get(leads_url(tenant, "/export.csv"))).status_code == 404
        ours = leads_url(stranger, f"/{lead['id']}")
        shown = await page.get(ours)
        assert shown.status_code == 404 and "Anna Sommer" not in shown.text
        posted = await page.post(ours, data={"csrf_token": token, "status": "lost", "tags": ""})
        assert posted.status_code == 404
        exported = await page.get(leads_url(stranger, "/export.csv"))
        assert "Anna Sommer" not in exported.text


async def test_the_leads_pages_speak_german(app, db: Database, client: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    lead = (await three_leads(client, tenant))["anna"]
    async with browser(app) as page:
        token = await sign_in(page, tenant.users["client_member"])
        await page.post("/app/language", data={"lang": "de", "next": "/app", "csrf_token": token})
        listing = await page.get(leads_url(tenant))
        detail = await page.get(leads_url(tenant, f"/{lead['id']}"))
    assert "Kontakt suchen" in listing.text and "CSV exportieren" in listing.text
    assert "Gewonnen" in listing.text
    assert "Notiz hinzufügen" in detail.text and "Qualifizierungsantworten" in detail.text
