"""The booking tools as the turn loop runs them (``engine.tools.run_tool``) in a real
conversation of a published agent with a calendar: free slots by window, part of the day and
time; booking once; moving and cancelling; and nothing of another client within reach."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from itertools import count
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from demandly.agents import service as agents
from demandly.conversations import service as conversations
from demandly.engine.providers.base import AgentContext, ToolCall
from demandly.engine.tools import ToolContext, registered, run_tool
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.kit.time import utcnow
from demandly.tenancy.models import Client
from tests.booking.helpers import API
from tests.booking.test_booking_page import make_calendar, visitor_client
from tests.conversations.conftest import publish_agent, start
from tests.factories import Tenant, make_tenant

BOOKING_TOOLS = (
    "check_availability",
    "book_appointment",
    "reschedule_appointment",
    "cancel_appointment",
)
ENABLED = frozenset(BOOKING_TOOLS)
BERLIN = ZoneInfo("Europe/Berlin")
_calls = count(1)


@dataclass
class Chat:
    """A visitor's conversation with an agent that books into ``calendar``."""

    db: Database
    tenant: Tenant
    calendar: dict[str, Any]
    conversation_id: str
    context: AgentContext

    async def call(
        self, tool: str, /, context: AgentContext | None = None, **arguments: Any
    ) -> dict[str, Any]:
        """Run one tool call as the turn loop does: in the conversation's client scope."""
        scope = Scope.for_client(self.tenant.agency.id, self.tenant.clients[0].id)
        async with self.db.session(scope) as session:
            conversation = await conversations.get(session, self.conversation_id)
            ctx = ToolContext(
                session=session, conversation=conversation, agent=context or self.context
            )
            call = ToolCall(id=f"call_{next(_calls)}", name=tool, arguments=arguments)
            result = await run_tool(ctx, call, ENABLED)
            await session.commit()
        return result


@pytest.fixture
async def tenant(db: Database) -> Tenant:
    return await make_tenant(db)


@pytest.fixture
async def visitor(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with visitor_client(app) as http:
        yield http


async def open_chat(
    db: Database,
    client: httpx.AsyncClient,
    visitor: httpx.AsyncClient,
    tenant: Tenant,
    language: str = "de",
    calendar: dict[str, Any] | None = None,
) -> Chat:
    calendar = calendar or await make_calendar(client, tenant)
    agent = await publish_agent(
        client,
        tenant,
        language=language,
        calendar_id=calendar["id"],
        tools=["save_lead_details", *BOOKING_TOOLS],
    )
    started = await start(visitor, agent.public_key)
    async with db.session(Scope.for_system()) as session:
        found = await agents.agent_by_public_key(session, agent.public_key)
        assert found is not None
        owner = await session.get(Client, found.agent.client_id)
        assert owner is not None
        context = agents.agent_context(found.version, owner)
    assert context.calendar_id == calendar["id"]
    return Chat(db, tenant, calendar, started["conversation_id"], context)


@pytest.fixture
async def chat(
    db: Database, client: httpx.AsyncClient, visitor: httpx.AsyncClient, tenant: Tenant
) -> Chat:
    return await open_chat(db, client, visitor, tenant)


def local(iso: str) -> datetime:
    moment = datetime.fromisoformat(iso)
    assert moment.utcoffset() == moment.astimezone(BERLIN).utcoffset()  # in the calendar's zone
    return moment


async def stored(client: httpx.AsyncClient, chat: Chat, appointment_id: str) -> dict[str, Any]:
    response = await client.get(
        f"{API}/appointments/{appointment_id}", headers=chat.tenant.headers("agency_owner")
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_the_booking_tools_are_registered() -> None:
    assert set(BOOKING_TOOLS) <= set(registered())


# --- check_availability --------------------------------------------------------------------


async def test_availability_gives_the_nearest_slots_in_the_calendars_zone(chat: Chat) -> None:
    result = await chat.call("check_availability")
    assert result["ok"] is True
    assert result["timezone"] == "Europe/Berlin"
    slots = result["slots"]
    assert len(slots) == 3 and result["more"] is True
    starts = [local(slot["start"]) for slot in slots]
    assert starts == sorted(starts) and starts[0] > utcnow()
    assert re.fullmatch(
        r"(Montag|Dienstag|Mittwoch|Donnerstag|Freitag|Samstag|Sonntag), \d{1,2}\. \w+ \d{4}, "
        r"\d{2}:\d{2} Uhr \(Europe/Berlin\)",
        slots[0]["label"],
    )
    assert len((await chat.call("check_availability", limit=7))["slots"]) == 7


async def test_availability_by_day_part_of_day_and_time(chat: Chat) -> None:
    tomorrow = (utcnow().astimezone(BERLIN) + timedelta(days=1)).date()
    afternoon = await chat.call(
        "check_availability",
        date_from=tomorrow.isoformat(),
        date_to=tomorrow.isoformat(),
        part_of_day="afternoon",
        limit=10,
    )
    hours = [local(s["start"]).hour for s in afternoon["slots"]]
    assert hours == [12, 13, 14, 15, 16]
    assert {local(s["start"]).date() for s in afternoon["slots"]} == {tomorrow}
    evening = await chat.call(
        "check_availability", date_from=tomorrow.isoformat(), part_of_day="evening"
    )
    assert [local(s["start"]).hour for s in evening["slots"]] == [17, 18, 19]
    later = await chat.call(
        "check_availability", date_from=tomorrow.isoformat(), after_time="10:00", limit=2
    )
    assert [local(s["start"]).time() for s in later["slots"]] == [time(11), time(12)]


async def test_an_empty_window_points_to_the_next_free_slot(
    db: Database, client: httpx.AsyncClient, visitor: httpx.AsyncClient, tenant: Tenant
) -> None:
    mondays = [{"weekday": 0, "start": "09:00", "end": "12:00"}]
    calendar = await make_calendar(client, tenant, weekly_hours=mondays)
    chat = await open_chat(db, client, visitor, tenant, calendar=calendar)
    today = utcnow().astimezone(BERLIN).date()
    tuesday = today + timedelta(days=(1 - today.weekday()) % 7 or 7)
    result = await chat.call(
        "check_availability", date_from=tuesday.isoformat(), date_to=tuesday.isoformat()
    )
    assert result["ok"] is True and result["slots"] == []
    following = local(result["next_available"]["start"])
    assert following.weekday() == 0 and following.hour == 9
    assert following.date() == tuesday + timedelta(days=6)


async def test_bad_windows_are_answers_not_crashes(chat: Chat) -> None:
    today = utcnow().astimezone(BERLIN).date()
    backwards = await chat.call(
        "check_availability",
        date_from=(today + timedelta(days=5)).isoformat(),
        date_to=today.isoformat(),
    )
    assert backwards["ok"] is False and "date_to" in backwards["error"]
    for arguments in (
        {"part_of_day": "night"},
        {"limit": 0},
        {"date_from": "morgen"},
        {"after_time": "25:00"},
    ):
        result = await chat.call("check_availability", **arguments)
        assert result["ok"] is False and result["error"].startswith("invalid arguments")


# --- book_appointment ----------------------------------------------------------------------


async def test_booking_returns_the_date_and_manage_link_and_books_once(
    client: httpx.AsyncClient, chat: Chat
) -> None:
    [slot] = (await chat.call("check_availability", limit=1))["slots"]
    details = {"start": slot["start"], "name": "Max Muster", "phone": "030 1234567"}
    booked = await chat.call("book_appointment", **details, note="Erstgespräch")
    assert booked["ok"] is True, booked
    assert booked["label"] == slot["label"]
    assert booked["manage_url"].startswith("http") and "/book/manage/" in booked["manage_url"]
    again = await chat.call("book_appointment", **details)
    assert again["appointment_id"] == booked["appointment_id"]
    appointment = await stored(client, chat, booked["appointment_id"])
    assert appointment["conversation_id"] == chat.conversation_id
    assert appointment["source"] == "chat"
    assert appointment["attendee"]["phone"] == "+49301234567"
    assert appointment["notes"] == "Erstgespräch"
    listed = await client.get(
        f"{API}/appointments",
        params={"calendar_id": chat.calendar["id"]},
        headers=chat.tenant.headers("agency_owner"),
    )
    assert len(listed.json()["items"]) == 1


async def test_booking_needs_a_way_to_reach_the_visitor(chat: Chat) -> None:
    [slot] = (await chat.call("check_availability", limit=1))["slots"]
    nameless = await chat.call("book_appointment", start=slot["start"], name="Max")
    assert nameless["ok"] is False and "e-mail address or a phone number" in nameless["error"]
    wrong = await chat.call(
        "book_appointment", start=slot["start"], name="Max", email="not-an-address"
    )
    assert wrong["ok"] is False and "invalid contact details" in wrong["error"]
    # A number the schema lets through but the service cannot read.
    unreadable = await chat.call("book_appointment", start=slot["start"], name="Max", phone="123")
    assert unreadable["ok"] is False and "invalid contact details" in unreadable["error"]


async def test_a_taken_slot_is_reported_with_alternatives(
    client: httpx.AsyncClient, chat: Chat
) -> None:
    [slot] = (await chat.call("check_availability", limit=1))["slots"]
    taken = await client.post(
        f"{API}/appointments",
        json={
            "calendar_id": chat.calendar["id"],
            "start": slot["start"],
            "attendee": {"name": "Schneller", "email": "schnell@beispiel.de"},
        },
        headers=chat.tenant.headers("agency_owner"),
    )
    assert taken.status_code == 201, taken.text
    late = await chat.call(
        "book_appointment", start=slot["start"], name="Max", email="max@beispiel.de"
    )
    assert late["ok"] is False and late["error"] == "slot_taken"
    alternatives = [a["start"] for a in late["alternatives"]]
    assert alternatives and slot["start"] not in alternatives
    night = local(slot["start"]).replace(hour=3) + timedelta(days=1)
    outside = await chat.call(
        "book_appointment", start=night.isoformat(), name="Max", email="max@beispiel.de"
    )
    assert outside["ok"] is False and outside["error"] == "not_bookable"
    assert outside["alternatives"]


async def test_an_english_agent_gets_english_labels(
    db: Database, client: httpx.AsyncClient, visitor: httpx.AsyncClient, tenant: Tenant
) -> None:
    chat = await open_chat(db, client, visitor, tenant, language="en")
    [slot] = (await chat.call("check_availability", limit=1))["slots"]
    assert re.match(r"(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), ", slot["label"])
    booked = await chat.call(
        "book_appointment", start=slot["start"], name="Jane Doe", email="jane@beispiel.de"
    )
    assert booked["label"] == slot["label"]


# --- reschedule and cancel -----------------------------------------------------------------


async def test_the_visitor_moves_and_cancels_the_appointment(
    client: httpx.AsyncClient, chat: Chat
) -> None:
    first, _, third = (await chat.call("check_availability"))["slots"]
    booked = await chat.call(
        "book_appointment", start=first["start"], name="Max", email="max@beispiel.de"
    )
    moved = await chat.call(
        "reschedule_appointment", appointment_id=booked["appointment_id"], start=third["start"]
    )
    assert moved["ok"] is True and moved["label"] == third["label"]
    appointment = await stored(client, chat, booked["appointment_id"])
    assert datetime.fromisoformat(appointment["start"]) == local(third["start"])
    assert appointment["sequence"] == 1
    token = moved["manage_url"].rsplit("/", 1)[1]
    cancelled = await chat.call("cancel_appointment", manage_token=token, reason="verhindert")
    assert cancelled["ok"] is True and cancelled["status"] == "cancelled"
    appointment = await stored(client, chat, booked["appointment_id"])
    assert appointment["status"] == "cancelled" and appointment["cancel_reason"] == "verhindert"
    # Nothing to move any more; cancelling twice changes nothing.
    refused = await chat.call(
        "reschedule_appointment", appointment_id=booked["appointment_id"], start=first["start"]
    )
    assert refused["ok"] is False and refused["error"] == "appointment_not_confirmed"
    again = await chat.call("cancel_appointment", appointment_id=booked["appointment_id"])
    assert again["ok"] is True and again["status"] == "cancelled"


async def test_tools_name_the_appointment_or_fail_clearly(chat: Chat) -> None:
    neither = await chat.call("cancel_appointment")
    assert neither["ok"] is False and "appointment_id or manage_token" in neither["error"]
    unknown = await chat.call("cancel_appointment", appointment_id="apt_nonexistent")
    assert unknown == {"ok": False, "error": "not_found", "message": "Appointment not found."}
    forged = await chat.call("cancel_appointment", manage_token="apt_x.0.0.abc")
    assert forged["ok"] is False and forged["error"] == "not_found"


# --- tenancy -------------------------------------------------------------------------------


async def test_an_appointment_of_another_conversation_needs_its_manage_link(
    db: Database,
    client: httpx.AsyncClient,
    visitor: httpx.AsyncClient,
    tenant: Tenant,
    chat: Chat,
) -> None:
    [slot] = (await chat.call("check_availability", limit=1))["slots"]
    booked = await chat.call(
        "book_appointment", start=slot["start"], name="Max", email="max@beispiel.de"
    )
    stranger = await open_chat(db, client, visitor, tenant, calendar=chat.calendar)
    by_id = await stranger.call("cancel_appointment", appointment_id=booked["appointment_id"])
    assert by_id["ok"] is False and by_id["error"] == "not_found"
    assert (await stored(client, chat, booked["appointment_id"]))["status"] == "confirmed"


async def test_nothing_of_another_client_is_reachable(
    db: Database, client: httpx.AsyncClient, chat: Chat
) -> None:
    other = await make_tenant(db)
    foreign_calendar = await make_calendar(client, other)
    foreign_slot = await client.get(
        f"{API}/calendars/{foreign_calendar['id']}/slots",
        params={
            "from": utcnow().isoformat(),
            "to": (utcnow() + timedelta(days=3)).isoformat(),
        },
        headers=other.headers("agency_owner"),
    )
    start = foreign_slot.json()["slots"][0]["start"]
    foreign = await client.post(
        f"{API}/appointments",
        json={
            "calendar_id": foreign_calendar["id"],
            "start": start,
            "attendee": {"name": "Fremd", "email": "fremd@beispiel.de"},
        },
        headers=other.headers("agency_owner"),
    )
    assert foreign.status_code == 201, foreign.text
    # An agent context pointing at the other client's calendar (whatever a model asks).
    hijacked = replace(chat.context, calendar_id=foreign_calendar["id"])
    for name, arguments in (
        ("check_availability", {}),
        ("book_appointment", {"start": start, "name": "X", "email": "x@beispiel.de"}),
    ):
        result = await chat.call(name, context=hijacked, **arguments)
        assert result["ok"] is False and result["error"] == "not_found", result
    token = foreign.json()["manage_url"].rsplit("/", 1)[1]
    by_token = await chat.call("cancel_appointment", manage_token=token)
    assert by_token["ok"] is False and by_token["error"] == "not_found"
    by_id = await chat.call("cancel_appointment", appointment_id=foreign.json()["id"])
    assert by_id["ok"] is False and by_id["error"] == "not_found"
    check = await client.get(
        f"{API}/appointments/{foreign.json()['id']}", headers=other.headers("agency_owner")
    )
    assert check.json()["status"] == "confirmed"
