# ruff: noqa: RUF001 (typographic dashes as the engine writes them)
"""Booking by dialogue through the public chat API: the offline engine, the real booking tools
and a real calendar, German and English. Days are chosen ahead of today (the tools and the
engine both use the real clock)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import httpx

from tests.booking.helpers import BERLIN, create_calendar
from tests.conversations.conftest import API, PublishedAgent, publish_agent, replies, say, start
from tests.factories import Tenant

BOOKING_TOOLS = [
    "save_lead_details",
    "request_handoff",
    "end_conversation",
    "check_availability",
    "book_appointment",
    "reschedule_appointment",
    "cancel_appointment",
]
WEEKDAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


async def booking_agent(
    client: httpx.AsyncClient, tenant: Tenant, language: str
) -> tuple[PublishedAgent, dict[str, Any]]:
    calendar = await create_calendar(client, tenant)
    agent = await publish_agent(
        client,
        tenant,
        language=language,
        greeting=None,
        tools=BOOKING_TOOLS,
        calendar_id=calendar["id"],
    )
    return agent, calendar


def last_reply(answer: dict[str, Any]) -> dict[str, Any]:
    return [m for m in answer["messages"] if m["role"] == "assistant"][-1]


async def appointments(
    client: httpx.AsyncClient, tenant: Tenant, calendar: dict[str, Any]
) -> list[dict[str, Any]]:
    response = await client.get(
        f"{API}/appointments",
        params={"calendar_id": calendar["id"]},
        headers=tenant.headers("agency_owner"),
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]


def ahead(days: int) -> date:
    return datetime.now(BERLIN).date() + timedelta(days=days)


async def test_a_german_visitor_books_by_dialogue(
    client: httpx.AsyncClient, visitor: httpx.AsyncClient, tenant: Tenant
) -> None:
    agent, calendar = await booking_agent(client, tenant, "de")
    day = ahead(10)
    started = await start(visitor, agent.public_key)

    asked = await say(visitor, started, f"Ich hätte gern einen Termin am {day:%d.%m.} vormittags")
    assert "Namen" in " ".join(replies(asked))
    await say(visitor, started, "Max Muster")
    offered = last_reply(await say(visitor, started, "max.muster@example.com"))
    label = f"{day:%d.%m.}"
    assert offered["quick_replies"][:3] == [
        f"{_short_de(day)} {label} um 9:00 Uhr",
        f"{_short_de(day)} {label} um 9:30 Uhr",
        f"{_short_de(day)} {label} um 10:00 Uhr",
    ]
    assert offered["quick_replies"][3] == "Keiner passt"

    more = last_reply(await say(visitor, started, "Keiner passt"))
    assert more["quick_replies"][0] == f"{_short_de(day)} {label} um 10:30 Uhr"
    confirm = last_reply(await say(visitor, started, "den zweiten"))
    assert "um 11:00 Uhr für Sie buchen?" in confirm["content"]
    assert confirm["quick_replies"] == ["Ja", "Nein"]

    booked = last_reply(await say(visitor, started, "Ja"))
    assert booked["content"].startswith(f"Ihr Termin ist gebucht: {_long_de(day)} um 11:00 Uhr.")
    [appointment] = await appointments(client, tenant, calendar)
    assert booked["content"].endswith(
        f"Hier können Sie den Termin verschieben oder absagen: {appointment['manage_url']} "
        "Kann ich sonst noch etwas für Sie tun?"
    )
    assert appointment["status"] == "confirmed"
    assert datetime.fromisoformat(appointment["start"]).astimezone(BERLIN).hour == 11
    assert appointment["conversation_id"] == started["conversation_id"]


async def test_an_english_visitor_books_reschedules_and_cancels(
    client: httpx.AsyncClient, visitor: httpx.AsyncClient, tenant: Tenant
) -> None:
    agent, calendar = await booking_agent(client, tenant, "en")
    day = ahead(3)
    started = await start(visitor, agent.public_key)
    weekday = WEEKDAYS_EN[day.weekday()]

    confirm = last_reply(
        await say(
            visitor,
            started,
            f"I'm Jane Doe, jane@example.com. Can I book an appointment on {weekday} at 3pm?",
        )
    )
    assert confirm["content"].endswith(
        f"Shall I book {weekday}, {_long_en(day)} at 3:00 pm for you?"
    )
    booked = last_reply(await say(visitor, started, "yes"))
    assert booked["content"].startswith("Your appointment is booked:")
    assert "You can reschedule or cancel it here: http" in booked["content"]

    next_day = WEEKDAYS_EN[(day + timedelta(days=1)).weekday()]
    asked = last_reply(await say(visitor, started, f"Could I move it to {next_day} at 10?"))
    assert asked["content"].startswith("Shall I move your appointment to")
    moved = last_reply(await say(visitor, started, "yes"))
    assert moved["content"].startswith("Done – your appointment is now on")
    [appointment] = await appointments(client, tenant, calendar)
    assert datetime.fromisoformat(appointment["start"]).astimezone(
        BERLIN
    ).date() == day + timedelta(days=1)

    await say(visitor, started, "Actually, please cancel the appointment")
    cancelled = last_reply(await say(visitor, started, "yes"))
    assert "is cancelled" in cancelled["content"]
    [appointment] = await appointments(client, tenant, calendar)
    assert appointment["status"] == "cancelled"


def _short_de(day: date) -> str:
    return ("Mo", "Di", "Mi", "Do", "Fr", "Sa", "So")[day.weekday()]


def _long_de(day: date) -> str:
    names = ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag")
    return f"{names[day.weekday()]}, {day:%d.%m.%Y}"


def _long_en(day: date) -> str:
    return f"{day.day} {day:%B} {day.year}"


async def test_looking_for_slots_counts_as_progress_for_the_handoff_rule(
    client: httpx.AsyncClient, visitor: httpx.AsyncClient, tenant: Tenant
) -> None:
    calendar = await create_calendar(client, tenant)
    agent = await publish_agent(
        client,
        tenant,
        language="de",
        greeting=None,
        tools=BOOKING_TOOLS,
        calendar_id=calendar["id"],
        handoff={"keywords": [], "after_turns_without_progress": 2},
    )
    day = ahead(10)
    started = await start(visitor, agent.public_key)
    await say(visitor, started, "Max Muster, max.muster@example.com")
    answer = await say(visitor, started, f"Ich hätte gern einen Termin am {day:%d.%m.} vormittags")
    for _ in range(3):
        answer = await say(visitor, started, "Keiner passt")
        assert last_reply(answer)["quick_replies"], answer
    assert answer["status"] == "active"
