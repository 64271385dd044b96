"""Twilio's voice webhooks are signed: only what Twilio signed for our public URL with the
connection's Auth Token is answered; everything else is 403 and changes nothing."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from demandly.channels.phone.models import Call
from demandly.kit.context import Scope
from demandly.kit.db import Database
from tests.channels.phone.conftest import PUBLIC, Caller, make_phone_agent, sign, twilio_post
from tests.channels.phone.twilio_rest import TwilioRest, sid

INCOMING = f"{PUBLIC}/twilio/voice/incoming"


async def _calls_with_sid(db: Database, call_sid: str) -> int:
    async with db.session(Scope.for_system()) as session:
        statement = select(func.count(Call.id)).where(Call.twilio_call_sid == call_sid)
        return (await session.execute(statement)).scalar_one()


async def test_a_signed_call_is_answered_and_everything_else_refused(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(api, db, twilio)
    token = agent.account.auth_token
    params = Caller(api, agent)._params(CallStatus="ringing")

    tampered = await api.post(
        "/twilio/voice/incoming",
        data={**params, "From": "+4915199999999"},
        headers={"X-Twilio-Signature": sign(token, INCOMING, params)},
    )
    assert tampered.status_code == 403
    assert tampered.json()["error"]["code"] == "invalid_signature"

    # Signed for the address the request reached behind the proxy, not the public one.
    wrong_url = await twilio_post(
        api, token, INCOMING, params, signed_url="http://testserver/twilio/voice/incoming"
    )
    assert wrong_url.status_code == 403

    unsigned = await api.post("/twilio/voice/incoming", data=params)
    assert unsigned.status_code == 403

    other_token = await twilio_post(api, "0" * 32, INCOMING, params)
    assert other_token.status_code == 403
    assert await _calls_with_sid(db, params["CallSid"]) == 0

    valid = await twilio_post(api, token, INCOMING, params)
    assert valid.status_code == 200, valid.text
    assert "<Gather" in valid.text
    assert await _calls_with_sid(db, params["CallSid"]) == 1


async def test_twilio_retrying_the_incoming_webhook_gets_the_same_answer(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(api, db, twilio)
    caller = Caller(api, agent)
    first = await caller.dial_in()
    first_xml = caller.last_xml
    again = await caller.dial_in()
    assert caller.last_xml == first_xml and again.gather_url == first.gather_url
    assert await _calls_with_sid(db, caller.call_sid) == 1


async def test_a_number_of_another_account_or_without_agent_is_not_ours(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(api, db, twilio)
    caller = Caller(api, agent)
    params = caller._params(CallStatus="ringing", AccountSid=sid("AC"))
    refused = await twilio_post(api, agent.account.auth_token, INCOMING, params)
    assert refused.status_code == 403

    unassigned = await api.patch(
        f"/api/v1/phone-numbers/{agent.number_id}", json={"agent_id": None}, headers=agent.owner
    )
    assert unassigned.status_code == 200, unassigned.text
    heard = await Caller(api, agent).dial_in()
    assert heard.action == "hangup"
    assert "nicht erreichbar" in heard.text


async def test_callbacks_about_unknown_calls_or_with_bad_signatures_are_refused(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(api, db, twilio)
    caller = Caller(api, agent)
    await caller.dial_in()
    gather_url = caller.last.gather_url or ""
    params = caller._params(SpeechResult="Hallo")
    forged = await api.post(
        gather_url.removeprefix(PUBLIC),
        data=params,
        headers={"X-Twilio-Signature": sign("f" * 32, gather_url, params)},
    )
    assert forged.status_code == 403
    stranger = Caller(api, agent, call_sid=sid("CA"))
    assert (await stranger.status("completed", 3)).status_code == 403
