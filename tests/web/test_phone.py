"""The phone page: Twilio connections and numbers managed from the dashboard, the call log
with its transcript and recording, campaigns; the API's permissions, in both languages."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from demandly.channels.phone.models import Call, Campaign, CampaignTarget
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.leads.models import Contact
from demandly.tenancy.models import User
from tests.channels.phone.conftest import Caller, PhoneAgent
from tests.channels.phone.twilio_rest import sid
from tests.factories import make_tenant
from tests.web.phone_support import AUDIO, TwilioWithRecordings, phone_agent, phone_base
from tests.web.support import browser, sign_in


async def _finished_call(api: httpx.AsyncClient, db: Database, agent: PhoneAgent) -> Call:
    """An answered inbound call with a transcript; the caller agreed to a recording."""
    caller = Caller(api, agent)
    await caller.dial_in()
    await caller.say("Hallo, ich hätte gern einen Termin zur Zahnreinigung.")
    assert (await caller.status("completed", 3, CallDuration="83")).status_code == 204
    async with db.session(Scope.for_system()) as session:
        call = (
            await session.execute(select(Call).where(Call.twilio_call_sid == caller.call_sid))
        ).scalar_one()
        call.recording_consent = True
        call.recording_sid = sid("RE")
        call.recording_status = "completed"
        await session.commit()
    return call


async def test_an_owner_connects_twilio_imports_buys_assigns_and_releases_numbers(
    api: httpx.AsyncClient, web_phone_app: FastAPI, db: Database, web_twilio: TwilioWithRecordings
) -> None:
    agent = await phone_agent(api, db, web_twilio)
    base = phone_base(agent)
    account = web_twilio.account()
    account.add_number("+4940111222")
    account.available.append("+4940999888")
    async with browser(web_phone_app) as client:
        token = await sign_in(client, agent.tenant.users["agency_owner"])
        added = await client.post(
            f"{base}/connections",
            data={
                "csrf_token": token,
                "name": "Praxis-Konto",
                "account_sid": account.sid,
                "auth_token": account.auth_token,
                "owner": "client",
            },
        )
        assert added.status_code == 303, added.text
        page = await client.get(base)
        assert "Praxis-Konto" in page.text and "Praxis Test" in page.text  # Twilio's name
        connection_id = re.findall(r'<option value="(twc_[^"]+)"', page.text)
        ours = next(c for c in connection_id if c != agent.connection_id)

        imported = await client.post(
            f"{base}/numbers/import", data={"csrf_token": token, "connection_id": ours}
        )
        assert imported.status_code == 303
        page = await client.get(base)
        assert "+4940111222" in page.text

        found = await client.get(
            f"{base}/numbers/search", params={"connection_id": ours, "country": "de"}
        )
        assert found.status_code == 200
        assert "Buy +4940999888" in found.text
        bought = await client.post(
            f"{base}/numbers/buy",
            data={
                "csrf_token": token,
                "connection_id": ours,
                "number": "+4940999888",
                "agent_id": agent.agent_id,
            },
        )
        assert bought.status_code == 303, bought.text
        page = await client.get(base)
        assert "+4940999888" in page.text

        imported_id = _number_id(page.text, "+4940111222")
        assigned = await client.post(
            f"{base}/numbers/{imported_id}/assign",
            data={"csrf_token": token, "agent_id": agent.agent_id},
        )
        assert assigned.status_code == 303
        assert web_twilio.of(account, "POST", r"/IncomingPhoneNumbers/PN[0-9a-f]+\.json")

        confirm = await client.get(f"{base}/numbers/{imported_id}/release")
        assert confirm.status_code == 200 and "Release +4940111222" in confirm.text
        released = await client.post(
            f"{base}/numbers/{imported_id}/release", data={"csrf_token": token}
        )
        assert released.status_code == 303
        page = await client.get(base)
        assert "+4940111222" not in page.text
        assert web_twilio.of(account, "DELETE", r"/IncomingPhoneNumbers/PN[0-9a-f]+\.json")


def _number_id(html: str, number: str) -> str:
    row = html[html.index(number) :]
    found = re.search(r"/numbers/(pn_[A-Za-z0-9_-]+)/assign", row)
    assert found, "no assign form for the number"
    return found.group(1)


async def test_refused_credentials_and_bad_input_show_next_to_the_form(
    api: httpx.AsyncClient, web_phone_app: FastAPI, db: Database, web_twilio: TwilioWithRecordings
) -> None:
    tenant = await make_tenant(db)
    base = f"/app/clients/{tenant.clients[0].id}/phone"
    account = web_twilio.account()
    async with browser(web_phone_app) as client:
        token = await sign_in(client, tenant.users["client_admin"])
        refused = await client.post(
            f"{base}/connections",
            data={
                "csrf_token": token,
                "name": "Falsch",
                "account_sid": account.sid,
                "auth_token": "not-the-right-token",
            },
        )
        assert refused.status_code == 422
        assert "Twilio did not accept these credentials." in refused.text
        assert account.sid in refused.text  # what was typed stays (the secret does not)
        assert "not-the-right-token" not in refused.text
        invalid = await client.post(
            f"{base}/connections",
            data={"csrf_token": token, "name": "Kaputt", "account_sid": "XY123"},
        )
        assert invalid.status_code == 422
        assert 'id="e-account_sid"' in invalid.text
        saved = await client.post(
            f"{base}/connections",
            data={
                "csrf_token": token,
                "name": "Richtig",
                "account_sid": account.sid,
                "auth_token": account.auth_token,
            },
        )
        assert saved.status_code == 303
        page = await client.get(base)
        connection_id = re.search(r'<option value="(twc_[^"]+)"', page.text)
        assert connection_id
        bad_search = await client.get(
            f"{base}/numbers/search",
            params={"connection_id": connection_id.group(1), "area_code": "abc"},
        )
        assert bad_search.status_code == 422
        assert 'id="e-area_code"' in bad_search.text


async def test_calls_list_filters_and_the_detail_plays_the_recording(
    api: httpx.AsyncClient, web_phone_app: FastAPI, db: Database, web_twilio: TwilioWithRecordings
) -> None:
    agent = await phone_agent(api, db, web_twilio)
    call = await _finished_call(api, db, agent)
    base = phone_base(agent)
    async with browser(web_phone_app) as client:
        await sign_in(client, agent.tenant.users["client_viewer"])
        listed = await client.get(f"{base}/calls")
        assert listed.status_code == 200
        assert f"{base}/calls/{call.id}" in listed.text
        assert "Telefon-Lena" in listed.text and "1:23" in listed.text
        assert "+49 *** *** 78" in listed.text  # masked, as in the API's list
        outbound = await client.get(f"{base}/calls", params={"direction": "outbound"})
        assert call.id not in outbound.text and "No calls yet." in outbound.text
        busy = await client.get(f"{base}/calls", params={"status": "busy"})
        assert call.id not in busy.text

        detail = await client.get(f"{base}/calls/{call.id}")
        assert detail.status_code == 200
        assert "ich hätte gern einen Termin zur Zahnreinigung" in detail.text
        assert f'<audio controls preload="none" src="{base}/calls/{call.id}/recording"' in (
            detail.text
        )
        audio = await client.get(f"{base}/calls/{call.id}/recording")
        assert audio.status_code == 200
        assert audio.headers["content-type"] == "audio/mpeg"
        assert audio.content == AUDIO


async def test_no_consent_means_no_player_and_no_audio(
    api: httpx.AsyncClient, web_phone_app: FastAPI, db: Database, web_twilio: TwilioWithRecordings
) -> None:
    agent = await phone_agent(api, db, web_twilio)
    call = await _finished_call(api, db, agent)
    async with db.session(Scope.for_system()) as session:
        row = await session.get(Call, call.id)
        assert row is not None
        row.recording_consent = False
        await session.commit()
    base = phone_base(agent)
    async with browser(web_phone_app) as client:
        await sign_in(client, agent.tenant.users["agency_owner"])
        detail = await client.get(f"{base}/calls/{call.id}")
        assert "<audio" not in detail.text
        assert "did not agree to a recording" in detail.text
        assert (await client.get(f"{base}/calls/{call.id}/recording")).status_code == 404


async def test_roles_and_other_agencies_ids(
    api: httpx.AsyncClient, web_phone_app: FastAPI, db: Database, web_twilio: TwilioWithRecordings
) -> None:
    agent = await phone_agent(api, db, web_twilio)
    call = await _finished_call(api, db, agent)
    other = await make_tenant(db)
    base = phone_base(agent)
    async with browser(web_phone_app) as client:
        token = await sign_in(client, agent.tenant.users["client_viewer"])
        page = await client.get(base)
        assert page.status_code == 200
        assert "Add a Twilio connection" not in page.text and "/release" not in page.text
        refused = await client.post(
            f"{base}/connections",
            data={"csrf_token": token, "name": "X", "account_sid": "AC" + "0" * 32},
        )
        assert refused.status_code == 403
        release = await client.post(
            f"{base}/numbers/{agent.number_id}/release", data={"csrf_token": token}
        )
        assert release.status_code == 403
        # The other client of the agency is out of a client user's reach.
        assert (await client.get(phone_base(agent, 1))).status_code == 404
    async with browser(web_phone_app) as client:
        token = await sign_in(client, other.users["agency_owner"])
        foreign = f"/app/clients/{agent.tenant.clients[0].id}/phone"
        assert (await client.get(foreign)).status_code == 404
        own = f"/app/clients/{other.clients[0].id}/phone"
        assert (await client.get(f"{own}/calls/{call.id}")).status_code == 404
        assert (await client.get(f"{own}/calls/{call.id}/recording")).status_code == 404
        stolen = await client.post(
            f"{own}/numbers/{agent.number_id}/release", data={"csrf_token": token}
        )
        assert stolen.status_code == 404
        imported = await client.post(
            f"{own}/numbers/import",
            data={"csrf_token": token, "connection_id": agent.connection_id},
        )
        assert imported.status_code == 404
    async with browser(web_phone_app) as client:
        await sign_in(client, agent.tenant.users["agency_owner"])
        # A call of client 1 is not found under client 2's address.
        assert (await client.get(f"{phone_base(agent, 1)}/calls/{call.id}")).status_code == 404


async def test_campaigns_show_their_progress(
    api: httpx.AsyncClient, web_phone_app: FastAPI, db: Database, web_twilio: TwilioWithRecordings
) -> None:
    agent = await phone_agent(api, db, web_twilio)
    client_id = agent.tenant.clients[0].id
    async with db.session(Scope.for_system()) as session:
        campaign = Campaign(
            agency_id=agent.tenant.agency.id,
            client_id=client_id,
            agent_id=agent.agent_id,
            name="Recall Herbst",
            status="running",
            window_start="09:00",
            window_end="17:00",
            weekdays=[0, 1, 2, 3, 4],
        )
        session.add(campaign)
        await session.flush()
        for index, status in enumerate(("done", "done", "pending")):
            contact = Contact(
                agency_id=agent.tenant.agency.id, client_id=client_id, name=f"Kontakt {index}"
            )
            session.add(contact)
            await session.flush()
            session.add(
                CampaignTarget(
                    agency_id=agent.tenant.agency.id,
                    client_id=client_id,
                    campaign_id=campaign.id,
                    contact_id=contact.id,
                    status=status,
                )
            )
        await session.commit()
    async with browser(web_phone_app) as client:
        await sign_in(client, agent.tenant.users["client_member"])
        page = await client.get(f"{phone_base(agent)}/campaigns")
    assert page.status_code == 200
    assert "Recall Herbst" in page.text and "2 of 3" in page.text


async def test_the_phone_page_speaks_german(
    api: httpx.AsyncClient, web_phone_app: FastAPI, db: Database, web_twilio: TwilioWithRecordings
) -> None:
    agent = await phone_agent(api, db, web_twilio)
    call = await _finished_call(api, db, agent)
    user: User = agent.tenant.users["agency_owner"]
    async with browser(web_phone_app) as client:
        token = await sign_in(client, user)
        await client.post("/app/language", data={"csrf_token": token, "lang": "de"})
        page = await client.get(phone_base(agent))
        assert "Telefonnummern" in page.text and "Nummern aus Twilio importieren" in page.text
        calls = await client.get(f"{phone_base(agent)}/calls")
        assert "eingehend" in calls.text and "Anrufe" in calls.text
        detail = await client.get(f"{phone_base(agent)}/calls/{call.id}")
        assert "Aufnahme" in detail.text and "Gesprächsverlauf" in detail.text


async def test_twilio_being_down_is_a_message_not_an_error_page(
    api: httpx.AsyncClient, web_phone_app: FastAPI, db: Database, web_twilio: TwilioWithRecordings
) -> None:
    agent = await phone_agent(api, db, web_twilio)
    async with browser(web_phone_app) as client:
        token = await sign_in(client, agent.tenant.users["agency_owner"])
        web_twilio.down = True
        try:
            imported = await client.post(
                f"{phone_base(agent)}/numbers/import",
                data={"csrf_token": token, "connection_id": agent.connection_id},
            )
        finally:
            web_twilio.down = False
    assert imported.status_code == 502
    assert "Twilio could not be reached" in imported.text
    assert "Import numbers from Twilio" in imported.text  # the page, with its forms
