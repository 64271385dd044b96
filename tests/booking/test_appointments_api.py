"""Appointments over the API: booking only free times, idempotency, moving, cancelling,
listing, outcomes, events, tenancy."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
from sqlalchemy import select

from demandly.jobs.models import DomainEvent
from demandly.kit.context import Scope
from demandly.kit.db import Database
from tests.booking.helpers import API, OWNER, at, attendee, book, create_calendar, future_day
from tests.factories import World


async def events_of(db: Database, appointment_id: str) -> list[str]:
    async with db.session(Scope.for_system()) as session:
        found = await session.execute(
            select(DomainEvent.type)
            .where(DomainEvent.entity_id == appointment_id)
            .order_by(DomainEvent.id)
        )
        return list(found.scalars())


async def test_booking_a_free_slot_confirms_it_with_a_normalised_phone(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    calendar = await create_calendar(client, world.a)
    start = at(future_day(10), "11:30")
    response = await book(client, world.a, calendar, start, notes="Bitte Röntgenbilder")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "confirmed"
    assert datetime.fromisoformat(body["start"]) == start
    assert datetime.fromisoformat(body["end"]) == start + timedelta(minutes=30)
    assert body["attendee"]["phone"] == "+491712345678"
    assert body["event_type_id"] == calendar["event_types"][0]["id"]
    assert "/book/manage/" in body["manage_url"]
    assert body["sequence"] == 0 and body["uid"].startswith(body["id"])
    assert await events_of(db, body["id"]) == ["appointment.booked"]


async def test_a_taken_slot_is_a_conflict_and_a_closed_time_is_invalid(
    client: httpx.AsyncClient, world: World
) -> None:
    calendar = await create_calendar(client, world.a)
    day = future_day(11)
    assert (await book(client, world.a, calendar, at(day, "09:00"))).status_code == 201
    taken = await book(
        client, world.a, calendar, at(day, "09:00"), attendee=attendee("b@example.com")
    )
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "slot_taken"
    overlapping = await book(client, world.a, calendar, at(day, "08:45"))
    assert overlapping.status_code == 422  # before opening, and not on the grid
    for closed in (
        at(day, "20:00"),
        at(day, "09:10"),
        datetime.now().astimezone() - timedelta(days=1),
    ):
        response = await book(client, world.a, calendar, closed)
        assert response.status_code == 422, closed
        assert response.json()["error"]["details"][0]["field"] == "start"


async def test_a_long_appointment_and_its_buffer_keep_later_times_taken(
    client: httpx.AsyncClient, world: World
) -> None:
    calendar = await create_calendar(
        client,
        world.a,
        buffer_after_minutes=30,
        slot_interval_minutes=15,
        event_types=[
            {"name": "Kurz", "duration_minutes": 30},
            {"name": "Behandlung", "duration_minutes": 240},
        ],
    )
    long_kind = calendar["event_types"][1]["id"]
    day = future_day(14)
    long = await book(client, world.a, calendar, at(day, "09:00"), event_type_id=long_kind)
    assert long.status_code == 201, long.text
    # Three hours into the four-hour appointment, and within its buffer after 13:00.
    for taken in ("12:00", "13:15"):
        response = await book(client, world.a, calendar, at(day, taken))
        assert response.status_code == 409, taken
        assert response.json()["error"]["code"] == "slot_taken"
    assert (await book(client, world.a, calendar, at(day, "13:30"))).status_code == 201


async def test_the_same_idempotency_key_returns_the_first_booking(
    client: httpx.AsyncClient, world: World
) -> None:
    calendar = await create_calendar(client, world.a)
    day = future_day(12)
    first = await book(client, world.a, calendar, at(day, "10:00"), key="form-42")
    again = await book(client, world.a, calendar, at(day, "10:00"), key="form-42")
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    other_time = await book(client, world.a, calendar, at(day, "11:00"), key="form-42")
    assert other_time.status_code == 409
    listed = await client.get(
        f"{API}/appointments",
        params={"calendar_id": calendar["id"]},
        headers=world.a.headers(OWNER),
    )
    assert len(listed.json()["items"]) == 1


async def test_an_attendee_needs_a_way_to_be_reached_and_a_real_phone_number(
    client: httpx.AsyncClient, world: World
) -> None:
    calendar = await create_calendar(client, world.a)
    start = at(future_day(13), "10:00")
    nobody = await book(client, world.a, calendar, start, attendee={"name": "Anna"})
    assert nobody.status_code == 422
    bad_phone = await book(
        client, world.a, calendar, start, attendee={"name": "Anna", "phone": "12"}
    )
    assert bad_phone.status_code == 422
    assert bad_phone.json()["error"]["details"][0]["field"] == "attendee.phone"
    naive = await client.post(
        f"{API}/appointments",
        json={
            "calendar_id": calendar["id"],
            "start": "2030-01-01T10:00:00",
            "attendee": attendee(),
        },
        headers=world.a.headers(OWNER),
    )
    assert naive.status_code == 422


async def test_rescheduling_moves_the_appointment_and_frees_the_old_time(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    calendar = await create_calendar(client, world.a)
    day = future_day(14)
    booked = (await book(client, world.a, calendar, at(day, "09:00"))).json()
    moved = await client.post(
        f"{API}/appointments/{booked['id']}/reschedule",
        json={"start": at(day, "15:00").isoformat()},
        headers=world.a.headers(OWNER),
    )
    assert moved.status_code == 200, moved.text
    assert datetime.fromisoformat(moved.json()["start"]) == at(day, "15:00")
    assert moved.json()["sequence"] == 1
    other = await book(
        client, world.a, calendar, at(day, "09:00"), attendee=attendee("c@example.com")
    )
    assert other.status_code == 201  # the old time is free again
    clash = await client.post(
        f"{API}/appointments/{booked['id']}/reschedule",
        json={"start": at(day, "09:00").isoformat()},
        headers=world.a.headers(OWNER),
    )
    assert clash.status_code == 409
    assert await events_of(db, booked["id"]) == ["appointment.booked", "appointment.rescheduled"]


async def test_cancelling_frees_the_time_and_cannot_be_undone_by_rescheduling(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    calendar = await create_calendar(client, world.a)
    start = at(future_day(15), "10:00")
    booked = (await book(client, world.a, calendar, start)).json()
    url = f"{API}/appointments/{booked['id']}"
    cancelled = await client.post(
        f"{url}/cancel", json={"reason": "Krank"}, headers=world.a.headers(OWNER)
    )
    assert cancelled.status_code == 200
    assert (
        cancelled.json()["status"] == "cancelled" and cancelled.json()["cancel_reason"] == "Krank"
    )
    twice = await client.post(f"{url}/cancel", json={}, headers=world.a.headers(OWNER))
    assert twice.status_code == 200 and twice.json()["sequence"] == 1
    moved = await client.post(
        f"{url}/reschedule",
        json={"start": (start + timedelta(hours=1)).isoformat()},
        headers=world.a.headers(OWNER),
    )
    assert moved.status_code == 409
    again = await book(client, world.a, calendar, start, attendee=attendee("d@example.com"))
    assert again.status_code == 201
    assert await events_of(db, booked["id"]) == ["appointment.booked", "appointment.cancelled"]


async def test_outcomes_and_notes_are_recorded(client: httpx.AsyncClient, world: World) -> None:
    calendar = await create_calendar(client, world.a)
    booked = (await book(client, world.a, calendar, at(future_day(16), "10:00"))).json()
    url = f"{API}/appointments/{booked['id']}"
    done = await client.patch(
        url, json={"status": "no_show", "notes": "Nicht erschienen"}, headers=world.a.headers(OWNER)
    )
    assert done.status_code == 200
    assert done.json()["status"] == "no_show" and done.json()["notes"] == "Nicht erschienen"
    cancel = await client.post(f"{url}/cancel", json={}, headers=world.a.headers(OWNER))
    assert cancel.status_code == 409
    bad = await client.patch(url, json={"status": "cancelled"}, headers=world.a.headers(OWNER))
    assert bad.status_code == 422


async def test_listing_filters_by_calendar_status_time_and_contact(
    client: httpx.AsyncClient, world: World
) -> None:
    calendar = await create_calendar(client, world.a)
    day = future_day(17)
    contact = await client.post(
        f"{API}/contacts",
        json={"client_id": world.a.clients[0].id, "name": "Ct One", "email": "ct1@example.com"},
        headers=world.a.headers(OWNER),
    )
    contact_id = contact.json()["id"]
    first = (await book(client, world.a, calendar, at(day, "09:00"), contact_id=contact_id)).json()
    other = attendee("b.other@example.com", phone="0171 9999999")
    second = (await book(client, world.a, calendar, at(day, "14:00"), attendee=other)).json()
    await client.post(
        f"{API}/appointments/{second['id']}/cancel", json={}, headers=world.a.headers(OWNER)
    )

    async def ids(**params: str) -> list[str]:
        response = await client.get(
            f"{API}/appointments",
            params={"calendar_id": calendar["id"], **params},
            headers=world.a.headers("client_viewer"),
        )
        assert response.status_code == 200, response.text
        return [a["id"] for a in response.json()["items"]]

    assert await ids() == [second["id"], first["id"]]
    assert await ids(status="confirmed") == [first["id"]]
    assert await ids(contact_id=contact_id) == [first["id"]]
    assert await ids(**{"from": at(day, "12:00").isoformat()}) == [second["id"]]
    assert await ids(**{"to": at(day, "12:00").isoformat()}) == [first["id"]]


async def test_other_tenants_get_404_for_appointments_and_their_calendars(
    client: httpx.AsyncClient, world: World
) -> None:
    calendar = await create_calendar(client, world.a)
    booked = (await book(client, world.a, calendar, at(future_day(18), "10:00"))).json()
    foreign = world.b.headers(OWNER)
    url = f"{API}/appointments/{booked['id']}"
    assert (await client.get(url, headers=foreign)).status_code == 404
    assert (await client.post(f"{url}/cancel", json={}, headers=foreign)).status_code == 404
    assert (
        await client.post(
            f"{url}/reschedule",
            json={"start": at(future_day(18), "11:00").isoformat()},
            headers=foreign,
        )
    ).status_code == 404
    listed = await client.get(f"{API}/appointments", headers=foreign)
    assert booked["id"] not in [a["id"] for a in listed.json()["items"]]
    stolen = await book(client, world.b, calendar, at(future_day(18), "12:00"))
    assert stolen.status_code == 404
    viewer = await book(
        client, world.a, calendar, at(future_day(18), "13:00"), role="client_viewer"
    )
    assert viewer.status_code == 403
