"""Outbound calls and campaigns: Calls.json with Twilio's parameters, answering-machine
detection, do-not-call, and the dialer's window and retries on a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from demandly.channels.phone import service
from demandly.channels.phone.models import Call
from demandly.config import Settings
from demandly.kit.context import Scope
from demandly.kit.db import Database
from tests.channels.phone.conftest import API, PUBLIC, PhoneAgent, make_phone_agent, twilio_post
from tests.channels.phone.twilio_rest import TwilioRest

# Monday 1 December 2025 in Berlin (UTC+1).
MONDAY_0730 = datetime(2025, 12, 1, 6, 30, tzinfo=UTC)
MONDAY_1000 = datetime(2025, 12, 1, 9, 0, tzinfo=UTC)
SATURDAY_1000 = datetime(2025, 12, 6, 9, 0, tzinfo=UTC)


async def _contact(api: httpx.AsyncClient, agent: PhoneAgent, phone: str, **flags: bool) -> str:
    body = {
        "client_id": agent.tenant.clients[0].id,
        "name": "Erika Muster",
        "phone": phone,
        **flags,
    }
    created = await api.post(f"{API}/contacts", json=body, headers=agent.owner)
    assert created.status_code in (200, 201), created.text
    return created.json()["id"]


async def _call(db: Database, call_id: str) -> Call:
    async with db.session(Scope.for_system()) as session:
        found = await session.get(Call, call_id)
    assert found is not None
    return found


async def _callback(
    api: httpx.AsyncClient, agent: PhoneAgent, call: Call, status: str, seq: int, **extra: str
) -> None:
    params = {
        "CallSid": call.twilio_call_sid or "",
        "AccountSid": agent.account.sid,
        "CallStatus": status,
        "SequenceNumber": str(seq),
        **extra,
    }
    url = f"{PUBLIC}/twilio/voice/status?call={call.id}"
    response = await twilio_post(api, agent.account.auth_token, url, params)
    assert response.status_code == 204, response.text


async def test_an_outbound_call_goes_through_twilio_with_machine_detection(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(
        api, db, twilio, phone={"voicemail_message": "Hier ist die Praxis, bitte rufen Sie zurück."}
    )
    placed = await api.post(
        f"{API}/calls",
        json={"agent_id": agent.agent_id, "to": "+4917699887766", "context": {"reason": "Recall"}},
        headers=agent.owner,
    )
    assert placed.status_code == 201, placed.text
    call = placed.json()
    assert call["direction"] == "outbound" and call["status"] == "queued"
    request = twilio.of(agent.account, "POST", "/Calls.json")[-1]
    assert request.form["To"] == "+4917699887766" and request.form["From"] == agent.number
    assert request.form["Url"] == f"{PUBLIC}/twilio/voice/outbound?call={call['id']}"
    assert request.form["StatusCallback"] == f"{PUBLIC}/twilio/voice/status?call={call['id']}"
    assert request.multi["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert request.form["MachineDetection"] == "DetectMessageEnd"

    stored = await _call(db, call["id"])
    answer_url = request.form["Url"]
    base = {"CallSid": stored.twilio_call_sid or "", "AccountSid": agent.account.sid}
    machine = await twilio_post(
        api, agent.account.auth_token, answer_url, {**base, "AnsweredBy": "machine_end_beep"}
    )
    assert machine.status_code == 200, machine.text
    assert "bitte rufen Sie zurück" in machine.text and "<Hangup" in machine.text
    await _callback(api, agent, stored, "completed", 4, CallDuration="12")
    detail = (await api.get(f"{API}/calls/{call['id']}", headers=agent.owner)).json()
    assert detail["answered_by"] == "machine_end_beep" and detail["outcome"] == "voicemail"
    assert detail["context"] == {"reason": "Recall"}


async def test_a_person_answering_hears_the_agent(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(api, db, twilio)
    placed = await api.post(
        f"{API}/calls",
        json={"agent_id": agent.agent_id, "to": "+4917699887755"},
        headers=agent.owner,
    )
    assert placed.status_code == 201, placed.text
    request = twilio.of(agent.account, "POST", "/Calls.json")[-1]
    assert request.form["MachineDetection"] == "Enable"
    stored = await _call(db, placed.json()["id"])
    params = {
        "CallSid": stored.twilio_call_sid or "",
        "AccountSid": agent.account.sid,
        "AnsweredBy": "human",
    }
    answered = await twilio_post(api, agent.account.auth_token, request.form["Url"], params)
    assert answered.status_code == 200 and "<Gather" in answered.text
    assert "Lena" in answered.text


async def test_do_not_call_and_twilio_refusals_are_clear(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(api, db, twilio)
    blocked = await _contact(api, agent, "+4917611112222", do_not_call=True)
    refused = await api.post(
        f"{API}/calls",
        json={"agent_id": agent.agent_id, "to": "+4917611112222", "contact_id": blocked},
        headers=agent.owner,
    )
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "do_not_call"

    twilio.refuse_calls = 400
    try:
        failed = await api.post(
            f"{API}/calls",
            json={"agent_id": agent.agent_id, "to": "+4917611113333"},
            headers=agent.owner,
        )
    finally:
        twilio.refuse_calls = None
    assert failed.status_code == 502
    listed = await api.get(
        f"{API}/calls", params={"agent_id": agent.agent_id, "status": "failed"}, headers=agent.owner
    )
    assert [c["end_reason"] for c in listed.json()["items"]] == ["twilio_error"]


async def _dial(db: Database, settings: Settings, now: datetime) -> int:
    async with db.session(Scope.for_system()) as session:
        placed = await service.run_dialer(session, settings, now)
        await session.commit()
    return placed


def _in_window_from(moment: datetime) -> datetime:
    """The first Monday 10:00 in Berlin at or after ``moment``: the retry's backoff runs from
    the real clock (the status callback's time), whatever hour the test runs at."""
    monday = MONDAY_1000 + timedelta(weeks=max(0, (moment - MONDAY_1000).days // 7))
    return monday if monday >= moment else monday + timedelta(weeks=1)


async def _campaign(api: httpx.AsyncClient, agent: PhoneAgent, campaign_id: str) -> dict[str, Any]:
    found = await api.get(f"{API}/campaigns/{campaign_id}", headers=agent.owner)
    assert found.status_code == 200, found.text
    return found.json()


async def test_a_campaign_calls_within_its_window_and_retries_with_backoff(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest, phone_settings: Settings
) -> None:
    agent = await make_phone_agent(api, db, twilio)
    reachable = await _contact(api, agent, "+4917620000001")
    blocked = await _contact(api, agent, "+4917620000002", do_not_call=True)
    restricted = await _contact(api, agent, "+4917620000003", processing_restricted=True)
    created = await api.post(
        f"{API}/campaigns",
        json={
            "agent_id": agent.agent_id,
            "name": "Recall",
            "contact_ids": [reachable, blocked, restricted],
            "window_start": "09:00",
            "window_end": "17:00",
            "max_concurrent": 2,
            "max_attempts": 2,
            "retry_minutes": 30,
        },
        headers=agent.owner,
    )
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    assert await _dial(db, phone_settings, MONDAY_1000) == 0  # still a draft
    started = await api.patch(
        f"{API}/campaigns/{campaign_id}", json={"status": "running"}, headers=agent.owner
    )
    assert started.status_code == 200, started.text

    assert await _dial(db, phone_settings, SATURDAY_1000) == 0
    assert await _dial(db, phone_settings, MONDAY_0730) == 0
    assert await _dial(db, phone_settings, MONDAY_1000) == 1
    assert await _dial(db, phone_settings, MONDAY_1000) == 0  # skips the rest, calls nobody twice
    targets = {t["contact_id"]: t for t in (await _campaign(api, agent, campaign_id))["targets"]}
    assert targets[blocked]["status"] == "skipped" and targets[restricted]["status"] == "skipped"
    first = targets[reachable]
    assert first["status"] == "calling" and first["attempts"] == 1
    dialled = twilio.of(agent.account, "POST", "/Calls.json")
    assert [r.form["To"] for r in dialled] == ["+4917620000001"]

    call = await _call(db, first["last_call_id"])
    await _callback(api, agent, call, "busy", 2)
    target = (await _campaign(api, agent, campaign_id))["targets"]
    retry = next(t for t in target if t["contact_id"] == reachable)
    assert retry["status"] == "pending" and retry["last_result"] == "busy"
    assert await _dial(db, phone_settings, MONDAY_1000.replace(minute=20)) == 0  # backing off
    due = _in_window_from(datetime.fromisoformat(retry["next_attempt_at"]))
    assert await _dial(db, phone_settings, due) == 1

    second = (await _campaign(api, agent, campaign_id))["targets"]
    again = next(t for t in second if t["contact_id"] == reachable)
    assert again["attempts"] == 2 and again["last_call_id"] != first["last_call_id"]
    await _callback(api, agent, await _call(db, again["last_call_id"]), "no-answer", 2)
    done = await _campaign(api, agent, campaign_id)
    assert done["status"] == "completed"
    assert next(t for t in done["targets"] if t["contact_id"] == reachable)["status"] == "failed"


async def test_a_calling_window_that_ends_before_it_starts_names_its_end(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(api, db, twilio)
    refused = await api.post(
        f"{API}/campaigns",
        json={
            "agent_id": agent.agent_id,
            "name": "Backwards",
            "window_start": "17:00",
            "window_end": "09:00",
        },
        headers=agent.owner,
    )
    assert refused.status_code == 422
    [detail] = refused.json()["error"]["details"]
    assert detail["field"] == "window_end" and "window_start" in detail["message"]
