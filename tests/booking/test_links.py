"""Signed links: the attendee's manage link (view, reschedule, cancel without login) and
the calendar's private feed; expired, tampered and foreign-purpose tokens are refused."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest
from icalendar import Calendar as ICalendar

from demandly.booking import links
from demandly.booking.models import Appointment
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.kit.errors import Gone, NotFound
from demandly.kit.time import utcnow
from tests.booking.helpers import API, OWNER, at, attendee, book, create_calendar, future_day
from tests.factories import World

PUBLIC = f"{API}/public"


def token_of(manage_url: str) -> str:
    return manage_url.rsplit("/", 1)[1]


async def load(db: Database, appointment_id: str) -> Appointment:
    async with db.session(Scope.for_system()) as session:
        appointment = await session.get(Appointment, appointment_id)
        assert appointment is not None
        return appointment


async def test_the_attendee_sees_moves_and_cancels_through_the_link(
    client: httpx.AsyncClient, world: World
) -> None:
    calendar = await create_calendar(client, world.a)
    day = future_day(26)
    booked = (await book(client, world.a, calendar, at(day, "09:00"))).json()
    token = token_of(booked["manage_url"])
    seen = await client.get(f"{PUBLIC}/appointments/{token}")
    assert seen.status_code == 200
    assert seen.json()["calendar_name"] == "Praxis Dr. Weber"
    assert seen.json()["can_change"] is True and "id" not in seen.json()
    moved = await client.post(
        f"{PUBLIC}/appointments/{token}/reschedule", json={"start": at(day, "13:00").isoformat()}
    )
    assert moved.status_code == 200, moved.text
    assert datetime.fromisoformat(moved.json()["start"]) == at(day, "13:00")
    taken = await book(
        client, world.a, calendar, at(day, "14:00"), attendee=attendee("x@example.com")
    )
    assert taken.status_code == 201
    clash = await client.post(
        f"{PUBLIC}/appointments/{token}/reschedule", json={"start": at(day, "14:00").isoformat()}
    )
    assert clash.status_code == 409
    cancelled = await client.post(
        f"{PUBLIC}/appointments/{token}/cancel", json={"reason": "Termin passt nicht"}
    )
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["can_change"] is False
    staff = await client.get(f"{API}/appointments/{booked['id']}", headers=world.a.headers(OWNER))
    assert staff.json()["cancel_reason"] == "Termin passt nicht"


async def test_tampered_and_foreign_tokens_are_not_found(
    client: httpx.AsyncClient, world: World
) -> None:
    calendar = await create_calendar(client, world.a)
    booked = (await book(client, world.a, calendar, at(future_day(27), "09:00"))).json()
    token = token_of(booked["manage_url"])
    subject, expires, version, signature = token.split(".")
    other = (await book(client, world.a, calendar, at(future_day(27), "10:00"))).json()
    forged = [
        f"{subject}.{int(expires) + 86400}.{version}.{signature}",  # longer life
        f"{other['id']}.{expires}.{version}.{signature}",  # someone else's appointment
        f"{subject}.{expires}.{version}.{'0' * len(signature)}",
        token[:-1] + ("a" if token[-1] != "a" else "b"),
        "garbage",
        token_of(calendar["feed_url"].removesuffix(".ics")),  # a feed token is no manage token
    ]
    for bad in forged:
        response = await client.get(f"{PUBLIC}/appointments/{bad}")
        assert response.status_code == 404, bad
        cancel = await client.post(f"{PUBLIC}/appointments/{bad}/cancel", json={})
        assert cancel.status_code == 404
    assert (await client.get(f"{PUBLIC}/calendars/{token}.ics")).status_code == 404


async def test_an_expired_link_is_gone(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    calendar = await create_calendar(client, world.a)
    booked = (await book(client, world.a, calendar, at(future_day(28), "09:00"))).json()
    appointment = await load(db, booked["id"])
    expired = links.manage_token(appointment, expires_at=utcnow() - timedelta(seconds=1))
    response = await client.get(f"{PUBLIC}/appointments/{expired}")
    assert response.status_code == 410
    assert (
        await client.post(f"{PUBLIC}/appointments/{expired}/cancel", json={})
    ).status_code == 410
    # By default a link lives until a day after the appointment's start.
    claims = links.verify_manage_token(token_of(booked["manage_url"]))
    assert claims.expires_at == appointment.start_at + timedelta(days=1)
    with pytest.raises(Gone):
        links.verify(token_of(booked["manage_url"]), "manage", now=claims.expires_at)
    with pytest.raises(NotFound):
        links.verify(token_of(booked["manage_url"]), "feed")


async def test_the_private_feed_lists_appointments_until_rotated(
    client: httpx.AsyncClient, world: World
) -> None:
    calendar = await create_calendar(client, world.a)
    booked = (await book(client, world.a, calendar, at(future_day(29), "09:00"))).json()
    feed_path = calendar["feed_url"].split("/api/v1", 1)[1]
    response = await client.get(f"{API}{feed_path}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/calendar")
    document = ICalendar.from_ical(response.content)
    events = [c for c in document.walk("VEVENT")]
    assert [str(e["UID"]) for e in events] == [booked["uid"]]
    assert "METHOD" not in document
    rotated = await client.post(
        f"{API}/calendars/{calendar['id']}/feed/rotate", headers=world.a.headers(OWNER)
    )
    assert rotated.json()["feed_url"] != calendar["feed_url"]
    assert (await client.get(f"{API}{feed_path}")).status_code == 404
    new_path = rotated.json()["feed_url"].split("/api/v1", 1)[1]
    assert (await client.get(f"{API}{new_path}")).status_code == 200


async def test_an_appointment_with_an_outcome_can_no_longer_be_changed_by_the_attendee(
    client: httpx.AsyncClient, world: World
) -> None:
    calendar = await create_calendar(client, world.a)
    day = future_day(34)
    booked = (await book(client, world.a, calendar, at(day, "09:00"))).json()
    await client.patch(
        f"{API}/appointments/{booked['id']}",
        json={"status": "completed"},
        headers=world.a.headers(OWNER),
    )
    token = token_of(booked["manage_url"])
    assert (await client.get(f"{PUBLIC}/appointments/{token}")).json()["can_change"] is False
    cancel = await client.post(f"{PUBLIC}/appointments/{token}/cancel", json={})
    move = await client.post(
        f"{PUBLIC}/appointments/{token}/reschedule", json={"start": at(day, "10:00").isoformat()}
    )
    assert cancel.status_code == move.status_code == 409
