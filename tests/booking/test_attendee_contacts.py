"""Whoever books becomes a contact of the client: matched by e-mail or phone, never twice."""

from __future__ import annotations

import secrets

import httpx

from tests.booking.helpers import API, OWNER, at, attendee, book, create_calendar, future_day
from tests.factories import World, unique


async def test_bookings_of_one_person_share_one_contact(
    client: httpx.AsyncClient, world: World
) -> None:
    calendar = await create_calendar(client, world.a)
    day = future_day(12)
    # A person of this test's own: other tests book for the helper's default attendee in
    # the same shared client, and a contact is matched by e-mail or phone.
    local = unique("anna.schmidt")
    digits = f"{secrets.randbelow(10**7):07d}"
    person = attendee(f"{local}@example.com", phone=f"0171 {digits}")
    first = await book(client, world.a, calendar, at(day, "09:00"), attendee=person)
    again = await book(
        client,
        world.a,
        calendar,
        at(day, "10:00"),
        attendee={**person, "email": person["email"].upper()},
    )
    assert first.status_code == 201 and again.status_code == 201, again.text
    contact_id = first.json()["contact_id"]
    assert contact_id and again.json()["contact_id"] == contact_id

    contacts = await client.get(
        f"{API}/contacts",
        params={"client_id": world.a.clients[0].id, "q": local},
        headers=world.a.headers(OWNER),
    )
    [contact] = contacts.json()["items"]
    assert contact["id"] == contact_id
    assert contact["email"] == f"{local}@example.com"
    assert contact["phone"] == f"+49171{digits}"
    assert contact["source"] == "booking"


async def test_a_contact_of_another_tenant_cannot_be_linked(
    client: httpx.AsyncClient, world: World
) -> None:
    calendar = await create_calendar(client, world.a)
    foreign = await client.post(
        f"{API}/contacts",
        json={"client_id": world.b.clients[0].id, "name": "B", "email": "b@example.com"},
        headers=world.b.headers(OWNER),
    )
    linked = await book(
        client, world.a, calendar, at(future_day(13), "09:00"), contact_id=foreign.json()["id"]
    )
    assert linked.status_code == 404
