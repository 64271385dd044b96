"""Outbound calling from the dashboard: a new campaign (chosen contacts or all that may be
called), its page (progress, targets, start / pause, add contacts, rename, delete with a
confirmation), and placing a single call through the local Twilio server; the API's
permissions and refusals, in both languages."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI
from sqlalchemy import event, select

from demandly.channels.phone.models import Call, Campaign, CampaignTarget
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.leads.models import Contact
from tests.channels.phone.conftest import API, PhoneAgent
from tests.conversations.conftest import agent_body
from tests.factories import make_tenant
from tests.web.phone_support import TwilioWithRecordings, phone_agent, phone_base
from tests.web.support import browser, sign_in

CAMPAIGN_URL = re.compile(r"/phone/campaigns/(cmp_[A-Za-z0-9_-]+)$")


async def _contacts(db: Database, agent: PhoneAgent) -> dict[str, str]:
    """Contacts of the agent's client: two callable, one restricted (Art. 18), one who does
    not want calls, one without a phone number. Their ids by name."""
    client_id = agent.tenant.clients[0].id
    rows = {
        "Anna Able": {"phone": "+4917612340001", "company": "Able GmbH"},
        "Bert Bold": {"phone": "+4917612340002"},
        "Rita Restricted": {"phone": "+4917612340003", "processing_restricted": True},
        "Dora Declined": {"phone": "+4917612340004", "do_not_call": True},
        "Nina Nophone": {"email": "nina@example.com"},
    }
    ids = {}
    async with db.session(Scope.for_system()) as session:
        for name, values in rows.items():
            contact = Contact(
                agency_id=agent.tenant.agency.id, client_id=client_id, name=name, **values
            )
            session.add(contact)
            await session.flush()
            ids[name] = contact.id
        await session.commit()
    return ids


def _campaign_form(token: str, agent_id: str, **overrides: object) -> dict[str, object]:
    form: dict[str, object] = {
        "csrf_token": token,
        "name": "Recall Frühjahr",
        "agent_id": agent_id,
        "whom": "chosen",
        "window_start": "09:00",
        "window_end": "17:00",
        "weekdays": ["0", "1", "2", "3", "4"],
        "max_concurrent": "2",
        "max_attempts": "3",
        "retry_minutes": "30",
        "purpose": "Erinnerung an die Prophylaxe",
    }
    form.update(overrides)
    return form


async def _targets(db: Database, campaign_id: str) -> set[str]:
    async with db.session(Scope.for_system()) as session:
        rows = await session.execute(
            select(CampaignTarget.contact_id).where(CampaignTarget.campaign_id == campaign_id)
        )
        return set(rows.scalars())


async def _campaign(db: Database, campaign_id: str) -> Campaign | None:
    async with db.session(Scope.for_system()) as session:
        return await session.get(Campaign, campaign_id)


async def _create(client: httpx.AsyncClient, base: str, form: dict[str, object]) -> str:
    created = await client.post(f"{base}/campaigns/new", data=form)
    assert created.status_code == 303, created.text
    found = CAMPAIGN_URL.search(created.headers["location"])
    assert found, created.headers["location"]
    return found.group(1)


async def test_a_campaign_with_chosen_contacts_is_created_started_and_paused(
    api: httpx.AsyncClient, web_phone_app: FastAPI, db: Database, web_twilio: TwilioWithRecordings
) -> None:
    agent = await phone_agent(api, db, web_twilio)
    ids = await _contacts(db, agent)
    base = phone_base(agent)
    async with browser(web_phone_app) as client:
        token = await sign_in(client, agent.tenant.users["client_admin"])
        listing = await client.get(f"{base}/campaigns")
        assert f"{base}/campaigns/new" in listing.text
        form = await client.get(f"{base}/campaigns/new")
        assert form.status_code == 200
        assert "Europe/Berlin" in form.text and "Telefon-Lena" in form.text
        assert "Anna Able" in form.text and "+49 *** *** 01" in form.text
        assert "+4917612340001" not in form.text  # numbers are masked
        assert "Able GmbH" in form.text and "Nina Nophone" not in form.text
        assert re.search(rf'value="{ids["Rita Restricted"]}" disabled', form.text)
        assert re.search(rf'value="{ids["Dora Declined"]}" disabled', form.text)
        assert "Processing restricted (Art. 18 GDPR)" in form.text
        assert "Does not want to be called" in form.text
        assert "<legend>Weekdays</legend>" in form.text

        forged = _campaign_form(
            token, agent.agent_id, contact_ids=[ids["Anna Able"], ids["Rita Restricted"]]
        )
        refused = await client.post(f"{base}/campaigns/new", data=forged)
        assert refused.status_code == 422
        assert 'id="e-contact_ids"' in refused.text
        assert "A chosen contact may not be called." in refused.text

        campaign_id = await _create(
            client, base, _campaign_form(token, agent.agent_id, contact_ids=[ids["Anna Able"]])
        )
        assert await _targets(db, campaign_id) == {ids["Anna Able"]}
        stored = await _campaign(db, campaign_id)
        assert stored is not None and stored.status == "draft"
        assert stored.context == {"purpose": "Erinnerung an die Prophylaxe"}
        assert (stored.max_concurrent, stored.retry_minutes) == (2, 30)

        page = await client.get(f"{base}/campaigns/{campaign_id}")
        assert page.status_code == 200
        assert "Recall Frühjahr" in page.text and "Anna Able" in page.text
        assert "+49 *** *** 01" in page.text and "0 of 1" in page.text
        assert "Erinnerung an die Prophylaxe" in page.text and "09:00\u201317:00" in page.text
        assert "Start campaign" in page.text

        started = await client.post(
            f"{base}/campaigns/{campaign_id}/status",
            data={"csrf_token": token, "status": "running"},
        )
        assert started.status_code == 303
        assert (await _campaign(db, campaign_id)).status == "running"  # type: ignore[union-attr]
        page = await client.get(f"{base}/campaigns/{campaign_id}")
        assert "Pause campaign" in page.text and "Start campaign" not in page.text
        paused = await client.post(
            f"{base}/campaigns/{campaign_id}/status", data={"csrf_token": token, "status": "paused"}
        )
        assert paused.status_code == 303
        assert (await _campaign(db, campaign_id)).status == "paused"  # type: ignore[union-attr]
        listing = await client.get(f"{base}/campaigns")
        assert f'href="{base}/campaigns/{campaign_id}"' in listing.text


async def test_all_contacts_means_those_that_may_be_called(
    api: httpx.AsyncClient, web_phone_app: FastAPI, db: Database, web_twilio: TwilioWithRecordings
) -> None:
    agent = await phone_agent(api, db, web_twilio)
    ids = await _contacts(db, agent)
    async with browser(web_phone_app) as client:
        token = await sign_in(client, agent.tenant.users["agency_owner"])
        campaign_id = await _create(
            client, phone_base(agent), _campaign_form(token, agent.agent_id, whom="all")
        )
    assert await _targets(db, campaign_id) == {ids["Anna Able"], ids["Bert Bold"]}


async def test_errors_show_next_to_their_fields(
    api: httpx.AsyncClient, web_phone_app: FastAPI, db: Database, web_twilio: TwilioWithRecordings
) -> None:
    agent = await phone_agent(api, db, web_twilio)
    base = phone_base(agent)
    async with browser(web_phone_app) as client:
        token = await sign_in(client, agent.tenant.users["agency_owner"])
        backwards = await client.post(
            f"{base}/campaigns/new",
            data=_campaign_form(token, agent.agent_id, window_start="18:00", window_end="08:00"),
        )
        assert backwards.status_code == 422
        assert 'id="e-window_end"' in backwards.text
        assert "The end must be later than the start." in backwards.text
        assert 'value="Recall Frühjahr"' in backwards.text  # what was typed stays
        no_days = _campaign_form(token, agent.agent_id)
        del no_days["weekdays"]
        refused = await client.post(f"{base}/campaigns/new", data=no_days)
        assert refused.status_code == 422 and 'id="e-weekdays"' in refused.text
        unnamed = await client.post(
            f"{base}/campaigns/new", data=_campaign_form(token, agent.agent_id, name="")
        )
        assert unnamed.status_code == 422 and 'id="e-name"' in unnamed.text
    async with db.session(Scope.for_system()) as session:
        rows = await session.execute(
            select(Campaign).where(Campaign.client_id == agent.tenant.clients[0].id)
        )
        assert list(rows.scalars()) == []


async def test_start_is_refused_until_the_agent_is_published(
    api: httpx.AsyncClient, web_phone_app: FastAPI, db: Database, web_twilio: TwilioWithRecordings
) -> None:
    agent = await phone_agent(api, db, web_twilio)
    owner = agent.owner
    body = agent_body(agent.tenant.clients[0].id, kind="phone", name="Entwurf-Erik")
    draft = await api.post(f"{API}/agents", json=body, headers=owner)
    assert draft.status_code == 201, draft.text
    draft_id = draft.json()["id"]
    base = phone_base(agent)
    async with browser(web_phone_app) as client:
        token = await sign_in(client, agent.tenant.users["client_member"])
        form = await client.get(f"{base}/campaigns/new")
        assert "Entwurf-Erik (not published)" in form.text
        campaign_id = await _create(client, base, _campaign_form(token, draft_id))
        refused = await client.post(
            f"{base}/campaigns/{campaign_id}/status",
            data={"csrf_token": token, "status": "running"},
        )
        assert refused.status_code == 409
        assert "Publish the agent first." in refused.text
        assert (await _campaign(db, campaign_id)).status == "draft"  # type: ignore[union-attr]
        published = await api.post(f"{API}/agents/{draft_id}/publish", headers=owner)
        assert published.status_code == 200
        started = await client.post(
            f"{base}/campaigns/{campaign_id}/status",
            data={"csrf_token": token, "status": "running"},
        )
        assert started.status_code == 303
    assert (await _campaign(db, campaign_id)).status == "running"  # type: ignore[union-attr]


async def test_contacts_are_added_the_campaign_renamed_and_deleted_after_confirming(
    api: httpx.AsyncClient, web_phone_app: FastAPI, db: Database, web_twilio: TwilioWithRecordings
) -> None:
    agent = await phone_agent(api, db, web_twilio)
    ids = await _contacts(db, agent)
    base = phone_base(agent)
    async with browser(web_phone_app) as client:
        token = await sign_in(client, agent.tenant.users["agency_owner"])
        campaign_id = await _create(
            client, base, _campaign_form(token, agent.agent_id, contact_ids=[ids["Anna Able"]])
        )
        url = f"{base}/campaigns/{campaign_id}"
        page = await client.get(url)
        add_form = page.text[page.text.index(f"{url}/contacts") :]
        assert ids["Bert Bold"] in add_form and ids["Anna Able"] not in add_form
        nothing = await client.post(f"{url}/contacts", data={"csrf_token": token})
        assert nothing.status_code == 422 and 'id="e-contact_ids"' in nothing.text
        blocked = await client.post(
            f"{url}/contacts", data={"csrf_token": token, "contact_ids": ids["Dora Declined"]}
        )
        assert blocked.status_code == 422
        added = await client.post(
            f"{url}/contacts", data={"csrf_token": token, "contact_ids": ids["Bert Bold"]}
        )
        assert added.status_code == 303
        assert await _targets(db, campaign_id) == {ids["Anna Able"], ids["Bert Bold"]}

        renamed = await client.post(f"{url}/rename", data={"csrf_token": token, "name": "Recall"})
        assert renamed.status_code == 303
        assert (await _campaign(db, campaign_id)).name == "Recall"  # type: ignore[union-attr]
        blank = await client.post(f"{url}/rename", data={"csrf_token": token, "name": ""})
        assert blank.status_code == 422 and 'id="e-name"' in blank.text

        confirm = await client.get(f"{url}/delete")
        assert confirm.status_code == 200
        assert f'action="{url}/delete"' in confirm.text and "Recall" in confirm.text
        assert await _campaign(db, campaign_id) is not None  # asking deleted nothing
        deleted = await client.post(f"{url}/delete", data={"csrf_token": token})
        assert deleted.status_code == 303
        assert deleted.headers["location"] == f"{base}/campaigns"
        assert await _campaign(db, campaign_id) is None
        assert (await client.get(url)).status_code == 404


async def test_a_viewer_sees_no_actions_and_other_agencies_find_nothing(
    api: httpx.AsyncClient, web_phone_app: FastAPI, db: Database, web_twilio: TwilioWithRecordings
) -> None:
    agent = await phone_agent(api, db, web_twilio)
    ids = await _contacts(db, agent)
    base = phone_base(agent)
    async with browser(web_phone_app) as client:
        token = await sign_in(client, agent.tenant.users["agency_owner"])
        campaign_id = await _create(
            client, base, _campaign_form(token, agent.agent_id, contact_ids=[ids["Anna Able"]])
        )
    url = f"{base}/campaigns/{campaign_id}"
    async with browser(web_phone_app) as client:
        token = await sign_in(client, agent.tenant.users["client_viewer"])
        page = await client.get(url)
        assert page.status_code == 200 and "Anna Able" in page.text
        for action in ("Start campaign", "Delete campaign", "Add contacts", "Rename"):
            assert action not in page.text
        assert "/campaigns/new" not in (await client.get(f"{base}/campaigns")).text
        assert "/calls/new" not in (await client.get(f"{base}/calls")).text
        assert (await client.get(f"{base}/campaigns/new")).status_code == 403
        assert (await client.get(f"{base}/calls/new")).status_code == 403
        assert (await client.get(f"{url}/delete")).status_code == 403
        posts = {
            f"{base}/campaigns/new": _campaign_form(token, agent.agent_id, whom="all"),
            f"{url}/status": {"csrf_token": token, "status": "running"},
            f"{url}/rename": {"csrf_token": token, "name": "X"},
            f"{url}/contacts": {"csrf_token": token, "contact_ids": ids["Bert Bold"]},
            f"{url}/delete": {"csrf_token": token},
            f"{base}/calls/new": {
                "csrf_token": token,
                "agent_id": agent.agent_id,
                "to": "+4930123",
            },
        }
        for target, form in posts.items():
            assert (await client.post(target, data=form)).status_code == 403, target
    other = await make_tenant(db)
    async with browser(web_phone_app) as client:
        token = await sign_in(client, other.users["agency_owner"])
        own = f"/app/clients/{other.clients[0].id}/phone/campaigns/{campaign_id}"
        assert (await client.get(own)).status_code == 404
        assert (await client.get(url)).status_code == 404
        assert (await client.get(f"{own}/delete")).status_code == 404
        for action in ("status", "rename", "contacts", "delete"):
            response = await client.post(
                f"{own}/{action}", data={"csrf_token": token, "status": "paused", "name": "X"}
            )
            assert response.status_code == 404, action
        stolen = await client.post(
            f"/app/clients/{other.clients[0].id}/phone/campaigns/new",
            data=_campaign_form(token, agent.agent_id, contact_ids=[ids["Anna Able"]]),
        )
        assert stolen.status_code == 422  # neither the agent nor the contact is theirs
        assert 'id="e-agent_id"' in stolen.text and 'id="e-contact_ids"' in stolen.text
    stored = await _campaign(db, campaign_id)
    assert stored is not None and stored.status == "draft" and stored.name == "Recall Frühjahr"


async def test_placing_a_call_dials_through_twilio_and_opens_the_call(
    api: httpx.AsyncClient, web_phone_app: FastAPI, db: Database, web_twilio: TwilioWithRecordings
) -> None:
    agent = await phone_agent(api, db, web_twilio)
    ids = await _contacts(db, agent)
    base = phone_base(agent)
    async with browser(web_phone_app) as client:
        token = await sign_in(client, agent.tenant.users["client_member"])
        calls = await client.get(f"{base}/calls")
        assert f"{base}/calls/new" in calls.text
        form = await client.get(f"{base}/calls/new")
        assert form.status_code == 200
        assert ids["Anna Able"] in form.text and ids["Dora Declined"] not in form.text

        placed = await client.post(
            f"{base}/calls/new",
            data={
                "csrf_token": token,
                "agent_id": agent.agent_id,
                "contact_id": ids["Anna Able"],
                "purpose": "Termin bestätigen",
            },
        )
        assert placed.status_code == 303, placed.text
        call_url = placed.headers["location"]
        assert re.search(rf"^{base}/calls/call_[A-Za-z0-9_-]+$", call_url), call_url
        request = web_twilio.of(agent.account, "POST", "/Calls.json")[-1]
        assert request.form["To"] == "+4917612340001" and request.form["From"] == agent.number
        page = await client.get(call_url)
        assert page.status_code == 200 and "outbound" in page.text
        call_id = call_url.rsplit("/", 1)[1]
        async with db.session(Scope.for_system()) as session:
            call = await session.get(Call, call_id)
            assert call is not None
            assert call.contact_id == ids["Anna Able"] and call.twilio_call_sid
            assert call.context == {"purpose": "Termin bestätigen"}

        national = await client.post(
            f"{base}/calls/new",
            data={"csrf_token": token, "agent_id": agent.agent_id, "to": "030 12345678"},
        )
        assert national.status_code == 303
        request = web_twilio.of(agent.account, "POST", "/Calls.json")[-1]
        assert request.form["To"] == "+493012345678"

        bad = await client.post(
            f"{base}/calls/new", data={"csrf_token": token, "agent_id": agent.agent_id, "to": "12"}
        )
        assert bad.status_code == 422 and 'id="e-to"' in bad.text
        blocked = await client.post(
            f"{base}/calls/new",
            data={
                "csrf_token": token,
                "agent_id": agent.agent_id,
                "contact_id": ids["Dora Declined"],
            },
        )
        assert blocked.status_code == 422 and "This contact may not be called." in blocked.text

        web_twilio.refuse_calls = 400
        try:
            failed = await client.post(
                f"{base}/calls/new",
                data={"csrf_token": token, "agent_id": agent.agent_id, "to": "+4917699001122"},
            )
        finally:
            web_twilio.refuse_calls = None
        assert failed.status_code == 303
        page = await client.get(failed.headers["location"])
        assert page.status_code == 200
        assert "Twilio could not place the call." in page.text
        async with db.session(Scope.for_system()) as session:
            row = await session.get(Call, failed.headers["location"].rsplit("/", 1)[1])
            assert row is not None and row.status == "failed"  # kept in the log


async def test_the_campaign_pages_speak_german(
    api: httpx.AsyncClient, web_phone_app: FastAPI, db: Database, web_twilio: TwilioWithRecordings
) -> None:
    agent = await phone_agent(api, db, web_twilio)
    ids = await _contacts(db, agent)
    base = phone_base(agent)
    async with browser(web_phone_app) as client:
        token = await sign_in(client, agent.tenant.users["agency_owner"])
        await client.post("/app/language", data={"csrf_token": token, "lang": "de"})
        form = await client.get(f"{base}/campaigns/new")
        assert "Neue Kampagne" in form.text and "Wochentage" in form.text
        assert "Montag" in form.text and "Verarbeitung eingeschränkt" in form.text
        backwards = await client.post(
            f"{base}/campaigns/new",
            data=_campaign_form(token, agent.agent_id, window_start="18:00", window_end="08:00"),
        )
        assert "Das Ende muss nach dem Beginn liegen." in backwards.text
        campaign_id = await _create(
            client, base, _campaign_form(token, agent.agent_id, contact_ids=[ids["Anna Able"]])
        )
        page = await client.get(f"{base}/campaigns/{campaign_id}")
        assert "Kampagne starten" in page.text and "Entwurf" in page.text
        assert "0 von 1" in page.text and "offen" in page.text
        call = await client.get(f"{base}/calls/new")
        assert "Anruf starten" in call.text and "Jetzt anrufen" in call.text


async def test_the_campaign_page_reads_its_targets_in_a_fixed_number_of_statements(
    api: httpx.AsyncClient, web_phone_app: FastAPI, db: Database, web_twilio: TwilioWithRecordings
) -> None:
    agent = await phone_agent(api, db, web_twilio)
    ids = await _contacts(db, agent)
    async with db.session(Scope.for_system()) as session:
        for index in range(30):
            session.add(
                Contact(
                    agency_id=agent.tenant.agency.id,
                    client_id=agent.tenant.clients[0].id,
                    name=f"Kontakt {index:02d}",
                    phone=f"+49176123410{index:02d}",
                )
            )
        await session.commit()
    base = phone_base(agent)
    async with browser(web_phone_app) as client:
        token = await sign_in(client, agent.tenant.users["agency_owner"])
        few = await _create(
            client, base, _campaign_form(token, agent.agent_id, contact_ids=[ids["Anna Able"]])
        )
        many = await _create(client, base, _campaign_form(token, agent.agent_id, whom="all"))
        assert len(await _targets(db, many)) == 32
        statements: list[str] = []

        def count(*args: object) -> None:
            statements.append(str(args[2]))

        counts = []
        for campaign_id in (few, many):
            statements.clear()
            event.listen(db.engine.sync_engine, "before_cursor_execute", count)
            try:
                page = await client.get(f"{base}/campaigns/{campaign_id}")
            finally:
                event.remove(db.engine.sync_engine, "before_cursor_execute", count)
            assert page.status_code == 200
            counts.append(len(statements))
    assert counts[0] == counts[1], counts
