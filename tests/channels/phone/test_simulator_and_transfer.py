"""The phone simulator drives the gather path with text (no Twilio); transfers dial the
agent's target while the business is open and take a message when it is closed."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
from sqlalchemy import select

from demandly.agents import service as agents
from demandly.channels.phone import service
from demandly.channels.phone.models import Call
from demandly.conversations.models import Conversation
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.tenancy.models import Client
from tests.channels.phone.conftest import API, Caller, make_phone_agent
from tests.channels.phone.twilio_rest import TwilioRest
from tests.factories import make_tenant

ALWAYS_OPEN = {
    "weekly": [{"weekday": d, "opens": "00:00", "closes": "23:59"} for d in range(7)],
    "timezone": "Europe/Berlin",
}
TARGET = "+4940123456789"


async def test_the_simulator_plays_a_phone_call_with_text(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(api, db, twilio)
    url = f"{API}/agents/{agent.agent_id}/simulate-call"
    started = await api.post(url, headers=agent.owner)
    assert started.status_code == 201, started.text
    call = started.json()
    assert call["action"] == "gather" and call["prompt"].startswith("Guten Tag, hier ist Lena")
    assert ET.fromstring(call["twiml"]).find("Gather") is not None

    turn = await api.post(
        f"{url}/turn",
        json={"call_id": call["call_id"], "text": "Hallo, ich hätte gern einen Termin."},
        headers=agent.owner,
    )
    assert turn.status_code == 200, turn.text
    assert "Name" in turn.json()["prompt"] and turn.json()["action"] == "gather"

    silence = await api.post(
        f"{url}/turn", json={"call_id": call["call_id"], "text": ""}, headers=agent.owner
    )
    assert "noch da" in silence.json()["prompt"]
    bye = await api.post(
        f"{url}/turn",
        json={"call_id": call["call_id"], "text": "Danke, tschüss!"},
        headers=agent.owner,
    )
    assert bye.json()["action"] == "hangup"
    over = await api.post(
        f"{url}/turn", json={"call_id": call["call_id"], "text": "Hallo?"}, headers=agent.owner
    )
    assert over.status_code == 409

    detail = (await api.get(f"{API}/calls/{call['call_id']}", headers=agent.owner)).json()
    assert detail["simulated"] is True and detail["status"] == "completed"
    assert [t["role"] for t in detail["transcript"]][:2] == ["assistant", "user"]
    # A simulated call never reaches Twilio.
    assert not twilio.of(agent.account, "POST", "/Calls.json")


async def test_the_simulator_is_for_the_agents_owners_only(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(api, db, twilio)
    other = await make_phone_agent(api, db, twilio)
    url = f"{API}/agents/{agent.agent_id}/simulate-call"
    assert (await api.post(url, headers=other.owner)).status_code == 404
    viewer = agent.tenant.headers("client_viewer")
    assert (await api.post(url, headers=viewer)).status_code == 403
    started = (await api.post(url, headers=agent.owner)).json()
    foreign = await api.post(
        f"{API}/agents/{other.agent_id}/simulate-call/turn",
        json={"call_id": started["call_id"], "text": "Hallo"},
        headers=other.owner,
    )
    assert foreign.status_code == 404


async def test_a_draft_agent_cannot_be_simulated(api: httpx.AsyncClient, db: Database) -> None:
    tenant = await make_tenant(db)
    body = {"client_id": tenant.clients[0].id, "name": "Neu", "kind": "phone", "language": "de"}
    created = await api.post(f"{API}/agents", json=body, headers=tenant.headers("agency_owner"))
    refused = await api.post(
        f"{API}/agents/{created.json()['id']}/simulate-call", headers=tenant.headers("agency_owner")
    )
    assert refused.status_code == 409


async def test_asking_for_a_person_puts_the_caller_through_when_open(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(
        api,
        db,
        twilio,
        business_hours=ALWAYS_OPEN,
        phone={"transfer_number": TARGET, "transfer_caller_id": "caller"},
    )
    caller = Caller(api, agent)
    await caller.dial_in()
    heard = await caller.say("Kann ich bitte mit einem Mitarbeiter sprechen?")
    assert heard.action == "dial" and heard.dial_number == TARGET
    assert heard.caller_id == caller.caller
    dial = ET.fromstring(caller.last_xml).find("Dial")
    assert dial is not None and "/twilio/voice/dial" in (dial.get("action") or "")
    ended = await caller._post(dial.get("action") or "", caller._params(DialCallStatus="no-answer"))
    assert ended.action == "hangup" and "zurück" in ended.text
    async with db.session(Scope.for_system()) as session:
        call = (
            await session.execute(select(Call).where(Call.twilio_call_sid == caller.call_sid))
        ).scalar_one()
    assert call.transferred_to == TARGET
    assert (await caller.status("completed", 5, CallDuration="30")).status_code == 204
    detail = (await api.get(f"{API}/calls/{call.id}", headers=agent.owner)).json()
    assert detail["outcome"] == "transfer"


async def test_outside_business_hours_the_agent_takes_a_message(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(
        api,
        db,
        twilio,
        business_hours={"weekly": [{"weekday": 0, "opens": "00:00", "closes": "00:01"}]},
        phone={"transfer_number": TARGET},
    )
    caller = Caller(api, agent)
    await caller.dial_in()
    heard = await caller.say("Kann ich bitte mit einem Mitarbeiter sprechen?")
    assert heard.action == "hangup"
    assert "Kollege" in heard.text or "meldet" in heard.text


async def test_a_warm_transfer_texts_the_summary_first(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(
        api,
        db,
        twilio,
        business_hours=ALWAYS_OPEN,
        phone={"transfer_number": TARGET, "warm_transfer_sms": True},
    )
    caller = Caller(api, agent)
    await caller.dial_in()
    await caller.say("Ich bin Max Muster, max.muster@example.com")
    heard = await caller.say("Bitte verbinden Sie mich mit einem Mitarbeiter.")
    assert heard.action == "dial" and heard.caller_id == agent.number
    texts = twilio.of(agent.account, "POST", "/Messages.json")
    assert len(texts) == 1
    assert texts[0].form["To"] == TARGET and texts[0].form["From"] == agent.number
    assert "max.muster@example.com" in texts[0].form["Body"]


async def _tool_answer(db: Database, call_sid: str, agent_id: str) -> dict[str, object]:
    """What ``transfer_call`` answers the model on this call (committed)."""
    async with db.session(Scope.for_system()) as session:
        statement = select(Call).where(Call.twilio_call_sid == call_sid)
        call = (await session.execute(statement)).scalar_one()
        conversation = await session.get(Conversation, call.conversation_id)
        version = await agents.published_version(session, agent_id)
        client = await session.get(Client, call.client_id)
        assert version is not None and client is not None
        answer = await service.request_transfer(
            session, conversation, agents.agent_context(version, client)
        )
        await session.commit()
    return answer


async def test_the_transfer_tool_dials_on_the_next_prompt_or_asks_for_a_message(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(api, db, twilio, phone={"transfer_number": TARGET})
    caller = Caller(api, agent)
    await caller.dial_in()
    # No opening hours: a transfer is always possible.
    assert await _tool_answer(db, caller.call_sid, agent.agent_id) == {"transferred": True}
    heard = await caller.say("Danke.")
    assert heard.action == "dial" and heard.dial_number == TARGET

    closed = await make_phone_agent(
        api,
        db,
        twilio,
        business_hours={"weekly": [{"weekday": 0, "opens": "00:00", "closes": "00:01"}]},
        phone={"transfer_number": TARGET},
    )
    caller = Caller(api, closed)
    await caller.dial_in()
    answer = await _tool_answer(db, caller.call_sid, closed.agent_id)
    assert answer["transferred"] is False and answer["take_message"] is True
    assert (await caller.say("Gut.")).action == "gather"


async def test_a_person_taking_over_in_the_inbox_ends_the_bots_part(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(api, db, twilio, business_hours=ALWAYS_OPEN)
    caller = Caller(api, agent)
    await caller.dial_in()
    async with db.session(Scope.for_system()) as session:
        statement = select(Call).where(Call.twilio_call_sid == caller.call_sid)
        call = (await session.execute(statement)).scalar_one()
    taken = await api.post(
        f"{API}/conversations/{call.conversation_id}/takeover", headers=agent.owner
    )
    assert taken.status_code in (200, 204), taken.text
    heard = await caller.say("Hallo?")
    # No transfer number: the caller is told someone will get back to them.
    assert heard.action == "hangup" and "Kollege" in heard.text
