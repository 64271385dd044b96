"""Status callbacks move a call forward only, whatever order Twilio's retries arrive in;
recording starts only after the caller agreed (§201 StGB), and its metadata is stored."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from demandly.channels.phone.models import Call
from demandly.jobs.models import DomainEvent
from demandly.kit.context import Scope
from demandly.kit.db import Database
from tests.channels.phone.conftest import API, PUBLIC, Caller, make_phone_agent, twilio_post
from tests.channels.phone.twilio_rest import TwilioRest, sid


async def _call(db: Database, call_sid: str) -> Call:
    async with db.session(Scope.for_system()) as session:
        statement = select(Call).where(Call.twilio_call_sid == call_sid)
        return (await session.execute(statement)).scalar_one()


async def _events(db: Database, call_id: str) -> list[str]:
    async with db.session(Scope.for_system()) as session:
        statement = (
            select(DomainEvent.type)
            .where(DomainEvent.entity_id == call_id)
            .order_by(DomainEvent.id)
        )
        return list((await session.execute(statement)).scalars())


async def test_status_callbacks_out_of_order_never_move_a_call_back(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(api, db, twilio)
    caller = Caller(api, agent)
    await caller.dial_in()
    await caller.say("Hallo, ich hätte gern einen Termin.")

    completed = await caller.status("completed", 3, CallDuration="42")
    assert completed.status_code == 204
    # Late and retried callbacks: older news and repeats change nothing.
    for status, sequence in (("ringing", 1), ("in-progress", 2), ("completed", 3), ("busy", 4)):
        assert (await caller.status(status, sequence)).status_code == 204

    call = await _call(db, caller.call_sid)
    assert call.status == "completed" and call.duration_seconds == 42
    assert call.ended_at is not None and call.answered_at is not None
    assert await _events(db, call.id) == ["call.started", "call.completed"]
    conversation = await api.get(f"{API}/conversations/{call.conversation_id}", headers=agent.owner)
    assert conversation.json()["status"] == "ended"
    # The call is over: a late gather callback hangs up.
    late = await caller.say("Noch etwas")
    assert late.action in ("hangup", "none", "gather")


async def test_recording_waits_for_the_callers_yes(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(api, db, twilio, phone={"record_calls": True})
    caller = Caller(api, agent)
    question = await caller.dial_in()
    assert "aufzeichnen" in question.text and question.action == "gather"
    assert "/twilio/voice/consent" in (question.gather_url or "")
    assert not twilio.of(agent.account, "POST", f"/Calls/{caller.call_sid}/Recordings.json")

    answered = await caller.say("Ja, gerne.")
    assert answered.action == "gather"
    assert "aufgezeichnet" in answered.text and "Lena" in answered.text
    started = twilio.of(agent.account, "POST", f"/Calls/{caller.call_sid}/Recordings.json")
    assert len(started) == 1
    assert started[0].form["RecordingStatusCallback"] == f"{PUBLIC}/twilio/recording/status"
    assert started[0].multi["RecordingStatusCallbackEvent"] == [
        "in-progress",
        "completed",
        "absent",
    ]

    # Twilio retrying the consent callback neither asks again nor records twice.
    again = await caller._post(question.gather_url or "", caller._params(SpeechResult="Ja"))
    assert again.text == answered.text
    assert len(twilio.of(agent.account, "POST", f"/Calls/{caller.call_sid}/Recordings.json")) == 1

    recording = sid("RE")
    params = caller._params(
        RecordingSid=recording,
        RecordingUrl=f"https://api.twilio.com/2010-04-01/Accounts/{agent.account.sid}/Recordings/{recording}",
        RecordingStatus="completed",
        RecordingDuration="37",
        RecordingChannels="1",
    )
    stored = await twilio_post(
        api, agent.account.auth_token, f"{PUBLIC}/twilio/recording/status", params
    )
    assert stored.status_code == 204
    call = await _call(db, caller.call_sid)
    detail = (await api.get(f"{API}/calls/{call.id}", headers=agent.owner)).json()
    assert detail["recording_consent"] is True
    assert detail["recording_status"] == "completed"
    assert detail["recording_duration_seconds"] == 37
    assert detail["recording_url"].endswith(recording)


async def test_no_or_silence_means_no_recording(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(api, db, twilio, phone={"record_calls": True})
    for answer in ("Nein, lieber nicht.", ""):
        caller = Caller(api, agent)
        await caller.dial_in()
        heard = await caller.say(answer)
        assert heard.action == "gather" and "nicht aufgezeichnet" in heard.text
        assert not twilio.of(agent.account, "POST", f"/Calls/{caller.call_sid}/Recordings.json")
        assert (await _call(db, caller.call_sid)).recording_consent is False
    keyed = Caller(api, agent)
    await keyed.dial_in()
    await keyed.press("1")
    assert (await _call(db, keyed.call_sid)).recording_consent is True


async def test_the_call_log_masks_numbers_in_lists(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(api, db, twilio)
    caller = Caller(api, agent, caller="+4917612345667")
    await caller.dial_in()
    client_id = agent.tenant.clients[0].id
    listed = await api.get(f"{API}/calls", params={"client_id": client_id}, headers=agent.owner)
    assert listed.status_code == 200, listed.text
    item = listed.json()["items"][0]
    assert item["from_number"] == "+49 *** *** 67"
    assert item["to_number"].startswith("+49 *** *** ")
    viewer = agent.tenant.headers("client_viewer")
    detail = await api.get(f"{API}/calls/{item['id']}", headers=viewer)
    assert detail.status_code == 200 and detail.json()["from_number"] == "+4917612345667"
