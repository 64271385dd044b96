"""Gather mode through TwiML, as Twilio runs it: the opening <Gather>, each SpeechResult (or
keys) posted to its action is one engine turn, silence re-prompts and finally hangs up."""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET

import httpx
from sqlalchemy import select

from demandly.channels.phone.models import Call
from demandly.kit.context import Scope
from demandly.kit.db import Database
from tests.channels.phone.conftest import API, Caller, make_phone_agent, twilio_post
from tests.channels.phone.twilio_rest import TwilioRest

ENGLISH = {
    "language": "en",
    "persona_name": "Emma",
    "greeting": "Hello, this is Emma from the practice. How can I help?",
    "qualification": [
        {"key": "name", "label": {"en": "Name"}, "type": "text"},
        {"key": "email", "label": {"en": "E-mail"}, "type": "email"},
    ],
    "faq": [
        {"question": "Do you offer teeth cleaning?", "answer": "Yes, cleaning costs 89 euros."}
    ],
}


async def _call(db: Database, call_sid: str) -> Call:
    async with db.session(Scope.for_system()) as session:
        call = (
            await session.execute(select(Call).where(Call.twilio_call_sid == call_sid))
        ).scalar_one()
    return call


async def test_a_german_caller_is_greeted_and_qualified(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(api, db, twilio, phone={"say_voice": "Polly.Vicki"})
    caller = Caller(api, agent)
    opening = await caller.dial_in()
    gather = ET.fromstring(caller.last_xml).find("Gather")
    assert gather is not None
    assert gather.get("input") == "speech dtmf" and gather.get("language") == "de-DE"
    assert gather.get("speechTimeout") == "auto" and gather.get("actionOnEmptyResult") == "true"
    say = gather.find("Say")
    assert say is not None and say.get("voice") == "Polly.Vicki" and say.get("language") == "de-DE"
    assert opening.text.startswith("Guten Tag, hier ist Lena")

    asked = await caller.say("Hallo, ich hätte gern einen Termin.")
    assert asked.action == "gather" and "Name" in asked.text
    assert asked.gather_url != opening.gather_url

    await caller.say("Ich bin Max Muster, max.muster@example.com")
    call = await _call(db, caller.call_sid)
    detail = await api.get(f"{API}/calls/{call.id}", headers=agent.owner)
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert body["direction"] == "inbound" and body["status"] == "in-progress"
    assert body["from_number"] == "+4917612345678"
    said = [line["content"] for line in body["transcript"] if line["role"] == "user"]
    assert said == [
        "Hallo, ich hätte gern einen Termin.",
        "Ich bin Max Muster, max.muster@example.com",
    ]
    conversation = await api.get(f"{API}/conversations/{call.conversation_id}", headers=agent.owner)
    assert conversation.json()["lead_fields"]["email"] == "max.muster@example.com"
    assert conversation.json()["channel"] == "phone"


async def test_an_english_caller_hears_english_and_gets_answers(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(api, db, twilio, **ENGLISH)
    caller = Caller(api, agent)
    await caller.dial_in()
    gather = ET.fromstring(caller.last_xml).find("Gather")
    assert gather is not None and gather.get("language") == "en-US"
    answer = await caller.say("Do you offer teeth cleaning?")
    assert "89" in answer.text and answer.action == "gather"
    goodbye = await caller.say("Thanks, goodbye!")
    assert goodbye.action == "hangup"
    after = await caller._post(
        caller.last.gather_url or caller.heard[-2].gather_url or "", caller._params()
    )
    assert after.action == "hangup"  # the conversation ended: whatever comes next hangs up


async def test_silence_is_reprompted_then_the_call_ends_politely(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(api, db, twilio, phone={"silence_reprompts": 2})
    caller = Caller(api, agent)
    await caller.dial_in()
    first = await caller.say("")
    assert first.action == "gather" and "noch da" in first.text
    second = await caller.say("")
    assert second.action == "gather"
    third = await caller.say("")
    assert third.action == "hangup" and "Wiederhören" in third.text
    call = await _call(db, caller.call_sid)
    conversation = await api.get(f"{API}/conversations/{call.conversation_id}", headers=agent.owner)
    assert conversation.json()["status"] == "ended"


async def test_speaking_again_resets_the_silence_count(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(api, db, twilio, phone={"silence_reprompts": 1})
    caller = Caller(api, agent)
    await caller.dial_in()
    assert (await caller.say("")).action == "gather"
    assert (await caller.say("Hallo")).action == "gather"
    assert (await caller.say("")).action == "gather"
    assert (await caller.say("")).action == "hangup"


async def test_keys_are_a_turn_too(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(api, db, twilio)
    caller = Caller(api, agent)
    await caller.dial_in()
    answer = await caller.press("1")
    assert answer.action == "gather"
    call = await _call(db, caller.call_sid)
    detail = (await api.get(f"{API}/calls/{call.id}", headers=agent.owner)).json()
    assert [line["content"] for line in detail["transcript"] if line["role"] == "user"] == ["1"]


async def test_a_retried_gather_callback_is_one_turn_with_the_same_answer(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(api, db, twilio)
    caller = Caller(api, agent)
    await caller.dial_in()
    action = caller.last.gather_url or ""
    params = caller._params(SpeechResult="Hallo, ich hätte gern einen Termin.")
    first = await caller._post(action, params)
    first_xml = caller.last_xml
    again = await caller._post(action, params)
    assert caller.last_xml == first_xml and again.gather_url == first.gather_url
    call = await _call(db, caller.call_sid)
    detail = (await api.get(f"{API}/calls/{call.id}", headers=agent.owner)).json()
    assert [line["role"] for line in detail["transcript"]].count("user") == 1


async def test_a_new_auth_token_takes_effect_at_once_for_gather_turns(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(api, db, twilio)
    caller = Caller(api, agent)
    await caller.dial_in()
    await caller.say("Hallo")  # the webhook's token is now known to this process
    old, new = agent.account.auth_token, secrets.token_hex(16)
    agent.account.auth_token = new  # rotated at Twilio, then here
    changed = await api.patch(
        f"{API}/twilio-connections/{agent.connection_id}",
        json={"auth_token": new},
        headers=agent.owner,
    )
    assert changed.status_code == 200, changed.text
    params = caller._params(SpeechResult="Noch da?")
    url = caller.last.gather_url or ""
    stale = await twilio_post(api, old, url, params)
    assert stale.status_code == 403
    fresh = await twilio_post(api, new, url, params)
    assert fresh.status_code == 200 and "<Gather" in fresh.text


async def test_the_first_turn_is_checked_like_every_other_one(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    """The answer leaves the call and its Auth Token in the process's cache for the first
    turn: a forged signature is still refused, and so is a token rotated since the answer."""
    agent = await make_phone_agent(api, db, twilio)
    caller = Caller(api, agent)
    await caller.dial_in()
    url = caller.last.gather_url or ""
    params = caller._params(SpeechResult="Hallo")
    forged = await twilio_post(api, "0" * 32, url, params)
    assert forged.status_code == 403
    old, new = agent.account.auth_token, secrets.token_hex(16)
    agent.account.auth_token = new
    changed = await api.patch(
        f"{API}/twilio-connections/{agent.connection_id}",
        json={"auth_token": new},
        headers=agent.owner,
    )
    assert changed.status_code == 200, changed.text
    assert (await twilio_post(api, old, url, params)).status_code == 403
    call = await _call(db, caller.call_sid)
    detail = (await api.get(f"{API}/calls/{call.id}", headers=agent.owner)).json()
    assert [line["role"] for line in detail["transcript"]] == ["assistant"]
    heard = await caller.say("Hallo")
    assert heard.action == "gather"
