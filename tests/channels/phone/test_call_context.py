"""An outbound call's ``context`` reaches the agent: the LLM's system prompt on a gather turn,
the realtime session's instructions; it is validated, and never written to the logs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from demandly.channels.phone import bridge
from demandly.channels.phone import service as phone
from demandly.config import Settings
from demandly.kit.db import Database
from tests.channels.phone.conftest import API, PhoneAgent, make_phone_agent, twilio_post
from tests.channels.phone.test_outbound import _call
from tests.channels.phone.twilio_rest import TwilioRest
from tests.engine.conftest import _openai_stub_server, openai_stub  # noqa: F401
from tests.engine.openai_stub import OpenAIStub
from tests.factories import make_tenant

CONTEXT = {"reason": "Angebot vom 12. Mai", "name": "Max Muster", "amount_eur": 1200}


async def _answered_outbound(
    api: httpx.AsyncClient, db: Database, agent: PhoneAgent, context: dict[str, Any]
) -> tuple[str, str]:
    """Place an outbound call with ``context`` and let a person answer: (call id, TwiML)."""
    placed = await api.post(
        f"{API}/calls",
        json={"agent_id": agent.agent_id, "to": "+4917699887744", "context": context},
        headers=agent.owner,
    )
    assert placed.status_code == 201, placed.text
    stored = await _call(db, placed.json()["id"])
    params = {
        "CallSid": stored.twilio_call_sid or "",
        "AccountSid": agent.account.sid,
        "AnsweredBy": "human",
    }
    url = f"https://phone.example.test/twilio/voice/outbound?call={stored.id}"
    answered = await twilio_post(api, agent.account.auth_token, url, params)
    assert answered.status_code == 200, answered.text
    return stored.id, answered.text


async def _llm_connection(api: httpx.AsyncClient, agency_id: str, headers: Any, base: str) -> str:
    connection = await api.post(
        f"{API}/provider-connections",
        json={
            "agency_id": agency_id,
            "name": "Stub EU",
            "base_url": base,
            "api_key": "sk-test-secret-key-123456",
            "default_model": "stub-model",
            "region": "eu",
        },
        headers=headers,
    )
    assert connection.status_code == 201, connection.text
    return str(connection.json()["id"])


async def test_the_llm_hears_why_it_is_calling(
    api: httpx.AsyncClient,
    db: Database,
    twilio: TwilioRest,
    openai_stub: OpenAIStub,  # noqa: F811
) -> None:
    tenant = await make_tenant(db)
    owner = tenant.headers("agency_owner")
    connection_id = await _llm_connection(api, tenant.agency.id, owner, openai_stub.base_url)
    agent = await make_phone_agent(
        api, db, twilio, tenant=tenant, llm={"connection_id": connection_id}
    )
    call_id, document = await _answered_outbound(api, db, agent, CONTEXT)
    gather = document.split('action="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    stored = await _call(db, call_id)
    openai_stub.script_text("Guten Tag, Herr Muster!")
    params = {
        "CallSid": stored.twilio_call_sid or "",
        "AccountSid": agent.account.sid,
        "SpeechResult": "Ja, hallo?",
    }
    turn = await twilio_post(api, agent.account.auth_token, gather, params)
    assert turn.status_code == 200 and "Herr Muster" in turn.text, turn.text
    system = openai_stub.requests[-1].body["messages"][0]
    assert system["role"] == "system"
    assert "You are calling this person" in system["content"]
    assert "- reason: Angebot vom 12. Mai" in system["content"]
    assert "- name: Max Muster" in system["content"] and "- amount_eur: 1200" in system["content"]


async def test_the_realtime_session_hears_it_too(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest, phone_settings: Settings
) -> None:
    agent = await make_phone_agent(api, db, twilio, phone={"voice_mode": "realtime"})
    call_id, document = await _answered_outbound(api, db, agent, CONTEXT)
    assert "<Stream" in document
    stored = await _call(db, call_id)
    media = await phone.media_call(db, call_id, stored.twilio_call_sid)
    assert media is not None
    update = bridge.session_update_for(media)
    instructions = update["session"]["instructions"]
    assert "Lena" in instructions and "- reason: Angebot vom 12. Mai" in instructions
    assert "You are calling this person" in instructions


@pytest.mark.parametrize(
    "context, field",
    [
        ({"reason": "Zeile 1\nZeile 2"}, "control characters"),
        ({"reason": "x" * 501}, "500 characters"),
        ({"bad\u0007key": "x"}, "keys"),
        ({"nested": {"a": 1}}, "only text"),
        ({f"k{i}": "x" * 400 for i in range(6)}, "2000 characters"),
    ],
)
async def test_the_context_is_checked(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest, context: dict[str, Any], field: str
) -> None:
    agent = await make_phone_agent(api, db, twilio)
    placed = await api.post(
        f"{API}/calls",
        json={"agent_id": agent.agent_id, "to": "+4917699887733", "context": context},
        headers=agent.owner,
    )
    assert placed.status_code == 422, placed.text
    assert field in placed.text
