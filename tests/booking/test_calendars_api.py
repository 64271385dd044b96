"""Calendars over the API: rules and event types, slots in any time zone, tenancy."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx

from tests.booking.helpers import (
    API,
    BERLIN,
    OWNER,
    at,
    book,
    calendar_body,
    create_calendar,
    future_day,
    slots,
    starts,
)
from tests.factories import World


async def test_a_calendar_is_created_with_its_rules_and_public_addresses(
    client: httpx.AsyncClient, world: World
) -> None:
    created = await create_calendar(
        client,
        world.a,
        holiday_region="BY",
        buffer_after_minutes=15,
        date_overrides=[{"date": "2027-12-24", "ranges": []}],
    )
    assert created["slug"].startswith("praxis-dr-weber")
    assert created["booking_url"].endswith(f"/book/{created['slug']}")
    assert "/api/v1/public/calendars/" in created["feed_url"]
    assert created["reminder_offsets_minutes"] == [1440, 60]
    assert created["event_types"][0]["name"] == "Erstberatung"
    again = await client.get(f"{API}/calendars/{created['id']}", headers=world.a.headers(OWNER))
    assert again.json()["date_overrides"] == [{"date": "2027-12-24", "ranges": []}]
    listed = await client.get(
        f"{API}/calendars",
        params={"client_id": world.a.clients[0].id},
        headers=world.a.headers("client_viewer"),
    )
    assert created["id"] in [c["id"] for c in listed.json()["items"]]


async def test_a_taken_slug_is_a_conflict_and_a_generated_one_is_made_unique(
    client: httpx.AsyncClient, world: World
) -> None:
    first = await create_calendar(client, world.a, name="Zahnarzt Süd")
    second = await create_calendar(client, world.b, name="Zahnarzt Süd")
    assert first["slug"] != second["slug"]
    taken = await client.post(
        f"{API}/calendars",
        json=calendar_body(world.b.clients[0].id, slug=first["slug"]),
        headers=world.b.headers(OWNER),
    )
    assert taken.status_code == 409


async def test_overlapping_ranges_and_bad_times_are_refused_with_the_field(
    client: httpx.AsyncClient, world: World
) -> None:
    for weekly in (
        [
            {"weekday": 0, "start": "09:00", "end": "12:00"},
            {"weekday": 0, "start": "11:00", "end": "13:00"},
        ],
        [{"weekday": 0, "start": "12:00", "end": "09:00"}],
        [{"weekday": 7, "start": "09:00", "end": "12:00"}],
        [{"weekday": 0, "start": "9 Uhr", "end": "12:00"}],
    ):
        response = await client.post(
            f"{API}/calendars",
            json=calendar_body(world.a.clients[0].id, weekly_hours=weekly),
            headers=world.a.headers(OWNER),
        )
        assert response.status_code == 422, weekly


async def test_event_types_are_replaced_by_the_list_sent(
    client: httpx.AsyncClient, world: World
) -> None:
    calendar = await create_calendar(client, world.a)
    kept = calendar["event_types"][0]
    response = await client.patch(
        f"{API}/calendars/{calendar['id']}",
        json={
            "event_types": [
                {"name": "Kontrolle", "duration_minutes": 15, "location_kind": "phone"},
                {
                    **{k: kept[k] for k in ("id", "location_kind")},
                    "name": "Beratung",
                    "duration_minutes": 45,
                },
            ]
        },
        headers=world.a.headers(OWNER),
    )
    assert response.status_code == 200, response.text
    kinds = response.json()["event_types"]
    assert [k["name"] for k in kinds] == ["Kontrolle", "Beratung"]
    assert kinds[1]["id"] == kept["id"] and kinds[1]["duration_minutes"] == 45
    day = future_day(30)
    offered = await slots(
        client,
        world.a,
        calendar,
        at(day, "09:00"),
        at(day, "11:00"),
        event_type_id=kinds[1]["id"],
    )
    assert starts(offered) == ["09:00", "09:45", "10:30"]


async def test_slots_are_given_in_utc_and_in_the_visitors_time_zone(
    client: httpx.AsyncClient, world: World
) -> None:
    calendar = await create_calendar(
        client,
        world.a,
        weekly_hours=[{"weekday": d, "start": "09:00", "end": "11:00"} for d in range(7)],
    )
    day = future_day(20)
    new_york = ZoneInfo("America/New_York")
    start = datetime.combine(day, datetime.min.time())  # midnight, read in tz
    response = await client.get(
        f"{API}/calendars/{calendar['id']}/slots",
        params={
            "from": start.isoformat(),
            "to": (start + timedelta(days=1)).isoformat(),
            "tz": "America/New_York",
        },
        headers=world.a.headers(OWNER),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["timezone"] == "America/New_York"
    first = body["slots"][0]
    berlin_nine = at(day + timedelta(days=1), "09:00")  # New York's day reaches into Berlin's next
    utc = datetime.fromisoformat(first["start"])
    local = datetime.fromisoformat(first["local_start"])
    assert utc == local and local.utcoffset() == new_york.utcoffset(local.replace(tzinfo=None))
    assert berlin_nine.astimezone(new_york).strftime("%H:%M") in [
        datetime.fromisoformat(s["local_start"]).strftime("%H:%M") for s in body["slots"]
    ]
    assert all(
        datetime.fromisoformat(s["start"]).astimezone(BERLIN).strftime("%H:%M")
        in ("09:00", "09:30", "10:00", "10:30")
        for s in body["slots"]
    )


async def test_dst_changes_in_berlin_keep_the_opening_hours_both_ways(
    client: httpx.AsyncClient, world: World
) -> None:
    calendar = await create_calendar(
        client,
        world.a,
        weekly_hours=[{"weekday": d, "start": "09:00", "end": "10:00"} for d in range(7)],
    )
    for before, after in (
        (date(2027, 3, 27), date(2027, 3, 28)),
        (date(2027, 10, 30), date(2027, 10, 31)),
    ):
        found = await slots(
            client,
            world.a,
            calendar,
            at(before, "00:00"),
            at(after + timedelta(days=1), "00:00"),
            tz="Europe/Berlin",
        )
        assert starts(found) == ["09:00", "09:30", "09:00", "09:30"]
        utc_hours = {datetime.fromisoformat(s["start"]).hour for s in found}
        assert utc_hours == {7, 8}  # 09:00 CEST is 07:00 UTC, 09:00 CET 08:00 UTC


async def test_booked_time_and_its_buffer_disappear_from_the_slots(
    client: httpx.AsyncClient, world: World
) -> None:
    calendar = await create_calendar(client, world.a, buffer_after_minutes=30)
    day = future_day(22)
    assert (await book(client, world.a, calendar, at(day, "10:00"))).status_code == 201
    found = starts(await slots(client, world.a, calendar, at(day, "09:00"), at(day, "12:00")))
    assert found == ["09:00", "11:00", "11:30"]


async def test_bad_slot_queries_are_clear_errors(client: httpx.AsyncClient, world: World) -> None:
    calendar = await create_calendar(client, world.a)
    url = f"{API}/calendars/{calendar['id']}/slots"
    day = future_day(5)
    for params in (
        {"from": at(day, "10:00").isoformat(), "to": at(day, "09:00").isoformat()},
        {
            "from": at(day, "10:00").isoformat(),
            "to": at(day + timedelta(days=90), "09:00").isoformat(),
        },
        {
            "from": at(day, "10:00").isoformat(),
            "to": at(day, "12:00").isoformat(),
            "tz": "Mars/Olympus",
        },
        {"from": "tomorrow", "to": at(day, "12:00").isoformat()},
        {
            "from": at(day, "10:00").isoformat(),
            "to": at(day, "12:00").isoformat(),
            "event_type_id": "evt_nope",
        },
    ):
        response = await client.get(url, params=params, headers=world.a.headers(OWNER))
        assert response.status_code == 422, (params, response.text)


async def test_other_tenants_get_404_and_viewers_cannot_write(
    client: httpx.AsyncClient, world: World
) -> None:
    calendar = await create_calendar(client, world.a)
    for method, path in (
        ("GET", f"/calendars/{calendar['id']}"),
        ("PATCH", f"/calendars/{calendar['id']}"),
        ("DELETE", f"/calendars/{calendar['id']}"),
    ):
        response = await client.request(
            method,
            f"{API}{path}",
            json={} if method == "PATCH" else None,
            headers=world.b.headers(OWNER),
        )
        assert response.status_code == 404, (method, path)
    day = future_day(6)
    foreign = await client.get(
        f"{API}/calendars/{calendar['id']}/slots",
        params={"from": at(day, "00:00").isoformat(), "to": at(day, "23:00").isoformat()},
        headers=world.b.headers(OWNER),
    )
    assert foreign.status_code == 404
    viewer = await client.patch(
        f"{API}/calendars/{calendar['id']}",
        json={"name": "X"},
        headers=world.a.headers("client_viewer"),
    )
    assert viewer.status_code == 403


async def test_a_calendar_with_upcoming_appointments_cannot_be_deleted(
    client: httpx.AsyncClient, world: World
) -> None:
    calendar = await create_calendar(client, world.a)
    booked = await book(client, world.a, calendar, at(future_day(9), "09:00"))
    url = f"{API}/calendars/{calendar['id']}"
    assert (await client.delete(url, headers=world.a.headers(OWNER))).status_code == 409
    await client.post(
        f"{API}/appointments/{booked.json()['id']}/cancel", json={}, headers=world.a.headers(OWNER)
    )
    assert (await client.delete(url, headers=world.a.headers(OWNER))).status_code == 204
    assert (await client.get(url, headers=world.a.headers(OWNER))).status_code == 404


async def test_the_booking_pages_own_paths_are_no_calendar_slugs(
    client: httpx.AsyncClient, world: World
) -> None:
    for reserved in ("manage", "static"):
        refused = await client.post(
            f"{API}/calendars",
            json=calendar_body(world.a.clients[0].id, slug=reserved),
            headers=world.a.headers(OWNER),
        )
        assert refused.status_code == 422, refused.text
    named = await create_calendar(client, world.a, name="Manage")
    assert named["slug"] != "manage" and named["slug"].startswith("manage-")


async def test_an_override_sent_without_ranges_closes_that_day(
    client: httpx.AsyncClient, world: World
) -> None:
    calendar = await create_calendar(client, world.a)
    day = future_day(9)
    patched = await client.patch(
        f"{API}/calendars/{calendar['id']}",
        json={"date_overrides": [{"date": day.isoformat()}]},
        headers=world.a.headers(OWNER),
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["date_overrides"] == [{"date": day.isoformat(), "ranges": []}]
