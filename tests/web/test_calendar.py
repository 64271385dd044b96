"""The calendar screen: the week view in the calendar's zone, the availability editor (which
the slots API follows), event types, feed links, and an appointment's detail with cancel,
reschedule and outcome; roles and other agencies' ids."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

import httpx

from demandly.kit.db import Database
from tests.booking.helpers import (
    BERLIN,
    at,
    book,
    create_calendar,
    every_day,
    future_day,
    slots,
    starts,
)
from tests.factories import Tenant, make_tenant
from tests.web.support import browser, sign_in

API = "/api/v1"


def base_url(tenant: Tenant) -> str:
    return f"/app/clients/{tenant.clients[0].id}/calendar"


def day_column(html: str, day: date) -> str:
    """The HTML of one day's column of the week view."""
    start = html.index(f'aria-labelledby="day-{day.isoformat()}"')
    end = html.find("</section>", start)
    return html[start:end]


def next_dst_start() -> date:
    """The next last Sunday of March (clocks go forward in Berlin) a few days ahead."""
    today = datetime.now(BERLIN).date()
    for year in (today.year, today.year + 1):
        last = date(year, 3, 31)
        sunday = last - timedelta(days=(last.weekday() + 1) % 7)
        if sunday > today + timedelta(days=3):
            return sunday
    raise AssertionError("unreachable")


def next_weekday(weekday: int, days: int = 14) -> date:
    day = future_day(days)
    return day + timedelta(days=(weekday - day.weekday()) % 7)


async def appointment(
    client: httpx.AsyncClient, tenant: Tenant, calendar: dict[str, Any], start: datetime
) -> dict[str, Any]:
    response = await book(client, tenant, calendar, start)
    assert response.status_code == 201, response.text
    return response.json()


async def test_the_week_shows_appointments_on_their_local_day_across_dst(
    app, db: Database, client: httpx.AsyncClient
) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    calendar = await create_calendar(client, tenant, weekly_hours=every_day("00:00", "23:30"))
    sunday = next_dst_start()
    monday = sunday - timedelta(days=6)
    # 00:30 on Monday in Berlin is still Sunday in UTC; 10:00 on the Sunday is after the switch.
    await appointment(client, tenant, calendar, at(monday, "00:30"))
    await appointment(client, tenant, calendar, at(sunday, "10:00"))
    async with browser(app) as web:
        await sign_in(web, tenant.users["client_member"])
        page = await web.get(
            base_url(tenant), params={"calendar": calendar["id"], "week": sunday.isoformat()}
        )
        assert page.status_code == 200, page.text
        assert "00:30\u201301:00" in day_column(page.text, monday)
        assert "Anna Schmidt" in day_column(page.text, monday)
        assert "10:00\u201310:30" in day_column(page.text, sunday)
        assert "Anna Schmidt" not in day_column(page.text, sunday - timedelta(days=1))
        assert f"week={(monday - timedelta(days=7)).isoformat()}" in page.text
        assert f"week={(monday + timedelta(days=7)).isoformat()}" in page.text
        later = await web.get(
            base_url(tenant),
            params={"calendar": calendar["id"], "week": (monday + timedelta(days=7)).isoformat()},
        )
        assert "Anna Schmidt" not in later.text
        today = await web.get(base_url(tenant))
        assert today.status_code == 200
        assert 'class="day today"' in today.text


async def test_a_calendar_is_created_from_the_page(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as web:
        token = await sign_in(web, tenant.users["client_admin"])
        empty = await web.get(base_url(tenant))
        assert "No calendars yet." in empty.text
        bad = await web.post(
            base_url(tenant), data={"name": "", "timezone": "Mars/Base", "csrf_token": token}
        )
        assert bad.status_code == 422
        assert 'id="e-name"' in bad.text and 'id="e-timezone"' in bad.text
        made = await web.post(
            base_url(tenant),
            data={"name": "Praxis", "timezone": "Europe/Berlin", "csrf_token": token},
        )
        assert made.status_code == 303
        page = await web.get(made.headers["location"])
        assert "Praxis" in page.text and "Calendar created." in page.text


async def test_weekly_hours_saved_on_the_page_are_what_the_slots_api_offers(
    app, db: Database, client: httpx.AsyncClient
) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    calendar = await create_calendar(client, tenant)
    editor = f"{base_url(tenant)}/{calendar['id']}/availability"
    monday = next_weekday(0)
    async with browser(app) as web:
        token = await sign_in(web, tenant.users["agency_owner"])
        page = await web.get(editor)
        assert page.status_code == 200 and "/book/" in page.text
        saved = await web.post(
            editor + "/hours",
            data={
                "weekday": ["0", "0", "2"],
                "start": ["09:00", "14:00", ""],
                "end": ["10:00", "15:00", ""],
                "csrf_token": token,
            },
        )
        assert saved.status_code == 303, saved.text
    offered = await slots(client, tenant, calendar, at(monday, "00:00"), at(monday, "23:59"))
    assert starts(offered) == ["09:00", "09:30", "14:00", "14:30"]
    tuesday = monday + timedelta(days=1)
    assert await slots(client, tenant, calendar, at(tuesday, "00:00"), at(tuesday, "23:59")) == []


async def test_bad_ranges_are_refused_next_to_their_day(app, db: Database, client) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    calendar = await create_calendar(client, tenant)
    editor = f"{base_url(tenant)}/{calendar['id']}/availability"
    async with browser(app) as web:
        token = await sign_in(web, tenant.users["agency_owner"])
        backwards = await web.post(
            editor + "/hours",
            data={"weekday": "1", "start": "12:00", "end": "11:00", "csrf_token": token},
        )
        assert backwards.status_code == 422
        assert "must be later than start" in backwards.text
        assert 'value="12:00"' in backwards.text  # what was typed stays
        overlapping = await web.post(
            editor + "/hours",
            data={
                "weekday": ["3", "3"],
                "start": ["09:00", "11:00"],
                "end": ["12:00", "13:00"],
                "csrf_token": token,
            },
        )
        assert overlapping.status_code == 422
        assert "The ranges of this day overlap." in overlapping.text
        day = overlapping.text.index('data-weekday="3"')
        assert overlapping.text.index("The ranges of this day overlap.") > day
    kept = await get_calendar(client, tenant, calendar["id"])
    assert len(kept["weekly_hours"]) == 7  # nothing was saved


async def get_calendar(client: httpx.AsyncClient, tenant: Tenant, calendar_id: str) -> Any:
    response = await client.get(
        f"{API}/calendars/{calendar_id}", headers=tenant.headers("agency_owner")
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_date_override_closes_a_day_and_is_removed_again(
    app, db: Database, client: httpx.AsyncClient
) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    calendar = await create_calendar(client, tenant)
    editor = f"{base_url(tenant)}/{calendar['id']}/availability"
    day = future_day(20)
    window = (at(day, "00:00"), at(day, "23:59"))
    async with browser(app) as web:
        token = await sign_in(web, tenant.users["agency_owner"])
        closed = await web.post(
            editor + "/overrides", data={"date": day.isoformat(), "csrf_token": token}
        )
        assert closed.status_code == 303
        assert await slots(client, tenant, calendar, *window) == []
        special = future_day(21)
        short = await web.post(
            editor + "/overrides",
            data={"date": special.isoformat(), "start1": "10:00", "end1": "11:00",
                  "csrf_token": token},
        )  # fmt: skip
        assert short.status_code == 303
        offered = await slots(client, tenant, calendar, at(special, "00:00"), at(special, "23:59"))
        assert starts(offered) == ["10:00", "10:30"]
        twice = await web.post(
            editor + "/overrides", data={"date": day.isoformat(), "csrf_token": token}
        )
        assert twice.status_code == 422 and "There is already an entry for this date." in twice.text
        backwards = await web.post(
            editor + "/overrides",
            data={"date": future_day(22).isoformat(), "start1": "11:00", "end1": "10:00",
                  "csrf_token": token},
        )  # fmt: skip
        assert backwards.status_code == 422 and "must be later than start" in backwards.text
        removed = await web.post(
            editor + "/overrides/remove", data={"date": day.isoformat(), "csrf_token": token}
        )
        assert removed.status_code == 303
    assert await slots(client, tenant, calendar, *window)


async def test_rules_event_types_and_feed_are_edited(
    app, db: Database, client: httpx.AsyncClient
) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    calendar = await create_calendar(client, tenant)
    editor = f"{base_url(tenant)}/{calendar['id']}/availability"
    rules = {
        "name": "Praxis Dr. Weber",
        "timezone": "Europe/Berlin",
        "holiday_region": "BY",
        "buffer_before_minutes": "10",
        "buffer_after_minutes": "5",
        "minimum_notice_minutes": "60",
        "booking_window_days": "90",
        "slot_interval_minutes": "15",
        "max_bookings_per_day": "8",
        "reminder_offsets_minutes": "1440, 120",
    }
    async with browser(app) as web:
        token = await sign_in(web, tenant.users["client_admin"])
        saved = await web.post(editor + "/rules", data={**rules, "csrf_token": token})
        assert saved.status_code == 303, saved.text
        bad = await web.post(
            editor + "/rules", data={**rules, "buffer_before_minutes": "-5", "csrf_token": token}
        )
        assert bad.status_code == 422 and 'id="e-buffer_before_minutes"' in bad.text
        added = await web.post(
            editor.removesuffix("/availability") + "/event-types",
            data={"name": "Kontrolle", "duration_minutes": "15", "location_kind": "phone",
                  "csrf_token": token},
        )  # fmt: skip
        assert added.status_code == 303
        too_short = await web.post(
            editor.removesuffix("/availability") + "/event-types",
            data={"name": "Blitz", "duration_minutes": "1", "csrf_token": token},
        )
        assert too_short.status_code == 422 and "Enter 5 or more." in too_short.text
        first_id = calendar["event_types"][0]["id"]
        renamed = await web.post(
            f"{editor[: -len('/availability')]}/event-types/{first_id}",
            data={"name": "Erstgespräch", "duration_minutes": "45",
                  "location_kind": "video", "csrf_token": token},
        )  # fmt: skip
        assert renamed.status_code == 303
        old_feed = (await get_calendar(client, tenant, calendar["id"]))["feed_url"]
        rotated = await web.post(
            f"{editor[: -len('/availability')]}/feed/rotate", data={"csrf_token": token}
        )
        assert rotated.status_code == 303
    saved_calendar = await get_calendar(client, tenant, calendar["id"])
    assert saved_calendar["holiday_region"] == "BY"
    assert saved_calendar["buffer_before_minutes"] == 10
    assert saved_calendar["reminder_offsets_minutes"] == [1440, 120]
    kinds = {k["name"]: k for k in saved_calendar["event_types"]}
    assert kinds["Erstgespräch"]["duration_minutes"] == 45
    assert kinds["Kontrolle"]["location_kind"] == "phone"
    assert saved_calendar["feed_url"] != old_feed
    async with browser(app) as web:
        token = await sign_in(web, tenant.users["client_admin"])
        deleted = await web.post(
            f"{base_url(tenant)}/{calendar['id']}/event-types/{kinds['Kontrolle']['id']}/delete",
            data={"csrf_token": token},
        )
        assert deleted.status_code == 303
        last = await web.post(
            f"{base_url(tenant)}/{calendar['id']}/event-types/{first_id}/delete",
            data={"csrf_token": token},
        )
        assert last.status_code == 422  # a calendar keeps at least one event type
    assert [
        k["name"] for k in (await get_calendar(client, tenant, calendar["id"]))["event_types"]
    ] == ["Erstgespräch"]


async def test_an_appointment_is_moved_marked_and_cancelled_from_its_page(
    app, db: Database, client: httpx.AsyncClient
) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    calendar = await create_calendar(client, tenant)
    day = future_day(15)
    booked = await appointment(client, tenant, calendar, at(day, "10:00"))
    detail = f"{base_url(tenant)}/appointments/{booked['id']}"
    async with browser(app) as web:
        token = await sign_in(web, tenant.users["client_member"])
        page = await web.get(detail, params={"day": day.isoformat()})
        assert page.status_code == 200
        assert "Anna Schmidt" in page.text and "10:00\u201310:30" in page.text
        eleven = at(day, "11:00").astimezone(BERLIN).isoformat()
        assert re.search(r'name="start" value="[^"]+"', page.text)
        taken = await web.post(
            detail + "/reschedule",
            data={"start": at(day, "03:00").isoformat(), "day": day.isoformat(),
                  "csrf_token": token},
        )  # fmt: skip
        assert taken.status_code == 422
        assert "not a bookable time" in taken.text
        moved = await web.post(detail + "/reschedule", data={"start": eleven, "csrf_token": token})
        assert moved.status_code == 303, moved.text
        page = await web.get(detail)
        assert "11:00\u201311:30" in page.text and "Appointment moved." in page.text
        cancelled = await web.post(
            detail + "/cancel", data={"reason": "krank", "csrf_token": token}
        )
        assert cancelled.status_code == 303
        page = await web.get(detail)
        assert "Cancelled" in page.text and "krank" in page.text
        assert "Move appointment" not in page.text
        again = await web.post(
            detail + "/status", data={"status": "completed", "csrf_token": token}
        )
        assert again.status_code == 422
        assert "stays cancelled" in again.text
    api = await client.get(
        f"{API}/appointments/{booked['id']}", headers=tenant.headers("agency_owner")
    )
    assert api.json()["status"] == "cancelled"
    assert datetime.fromisoformat(api.json()["start"]) == at(day, "11:00")


async def test_an_outcome_is_recorded(app, db: Database, client: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    calendar = await create_calendar(client, tenant)
    booked = await appointment(client, tenant, calendar, at(future_day(16), "09:00"))
    detail = f"{base_url(tenant)}/appointments/{booked['id']}"
    async with browser(app) as web:
        token = await sign_in(web, tenant.users["client_admin"])
        done = await web.post(detail + "/status", data={"status": "no_show", "csrf_token": token})
        assert done.status_code == 303
        page = await web.get(detail)
        assert "No-show" in page.text


async def test_a_viewer_reads_but_cannot_change(app, db: Database, client) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    calendar = await create_calendar(client, tenant)
    booked = await appointment(client, tenant, calendar, at(future_day(17), "09:00"))
    base = base_url(tenant)
    async with browser(app) as web:
        token = await sign_in(web, tenant.users["client_viewer"])
        week = await web.get(base)
        assert week.status_code == 200 and "New calendar" not in week.text
        editor = await web.get(f"{base}/{calendar['id']}/availability")
        assert editor.status_code == 200 and "Save weekly hours" not in editor.text
        detail = await web.get(f"{base}/appointments/{booked['id']}")
        assert detail.status_code == 200 and "Cancel appointment" not in detail.text
        for path, data in (
            (base, {"name": "X"}),
            (f"{base}/{calendar['id']}/availability/hours", {"weekday": "0"}),
            (f"{base}/{calendar['id']}/availability/rules", {"name": "X"}),
            (f"{base}/{calendar['id']}/feed/rotate", {}),
            (f"{base}/appointments/{booked['id']}/cancel", {}),
        ):
            refused = await web.post(path, data={**data, "csrf_token": token})
            assert refused.status_code == 403, path
    api = await client.get(
        f"{API}/appointments/{booked['id']}", headers=tenant.headers("agency_owner")
    )
    assert api.json()["status"] == "confirmed"


async def test_another_agencys_calendar_and_appointment_are_not_found(
    app, db: Database, client: httpx.AsyncClient
) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = await make_tenant(db), await make_tenant(db)
    calendar = await create_calendar(client, theirs)
    booked = await appointment(client, theirs, calendar, at(future_day(18), "09:00"))
    async with browser(app) as web:
        token = await sign_in(web, ours.users["agency_owner"])
        own = base_url(ours)
        for path in (
            f"{base_url(theirs)}",
            f"{own}?calendar={calendar['id']}",
            f"{own}/{calendar['id']}/availability",
            f"{own}/appointments/{booked['id']}",
            f"{base_url(theirs)}/appointments/{booked['id']}",
        ):
            response = await web.get(path)
            assert response.status_code == 404, path
            assert "Anna Schmidt" not in response.text
        refused = await web.post(
            f"{own}/appointments/{booked['id']}/cancel", data={"csrf_token": token}
        )
        assert refused.status_code == 404
        other_client = await web.get(f"/app/clients/{ours.clients[1].id}/calendar")
        assert other_client.status_code == 200
        assert "No calendars yet." in other_client.text


async def test_the_calendar_speaks_german(app, db: Database, client) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    calendar = await create_calendar(client, tenant)
    async with browser(app) as web:
        token = await sign_in(web, tenant.users["agency_owner"])
        await web.post("/app/language", data={"lang": "de", "next": "/app", "csrf_token": token})
        week = await web.get(base_url(tenant))
        assert "Vorherige Woche" in week.text and "Montag" in week.text
        editor = await web.get(f"{base_url(tenant)}/{calendar['id']}/availability")
        assert "Wöchentliche Zeiten" in editor.text and "Ereignistypen" in editor.text
        bad = await web.post(
            f"{base_url(tenant)}/{calendar['id']}/availability/hours",
            data={"weekday": "1", "start": "12:00", "end": "11:00", "csrf_token": token},
        )
        assert "muss nach dem Beginn liegen" in bad.text
