"""What the attendee receives: a confirmation e-mail with an invitation that calendar programs
understand (parsed with ``icalendar``), updates and cancellations of the same event, and
reminders that move or vanish with the appointment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import httpx
import pytest
from icalendar import Calendar as ICalendar
from sqlalchemy import select

from demandly.app import create_app
from demandly.booking.service import REMINDER_TASK
from demandly.config import Settings
from demandly.jobs.models import Job
from demandly.jobs.worker import Worker
from demandly.kit.context import Scope
from demandly.kit.db import Database
from tests.booking.helpers import API, OWNER, at, attendee, book, create_calendar, future_day
from tests.factories import Tenant, World, make_tenant, unique
from tests.integrations.smtp import SmtpServer
from tests.jobs.helpers import Clock


def invitation(message: EmailMessage) -> tuple[str, ICalendar]:
    for part in message.iter_attachments():
        if part.get_content_type() == "text/calendar":
            return part.get_param("method") or "", ICalendar.from_ical(part.get_content())
    raise AssertionError("no text/calendar attachment")


async def reminder_jobs(db: Database, appointment_id: str) -> list[Job]:
    async with db.session(Scope.for_system()) as session:
        found = await session.execute(
            select(Job)
            .where(Job.name == REMINDER_TASK, Job.idempotency_key.contains(appointment_id))
            .order_by(Job.run_at)
        )
        return list(found.scalars())


@pytest.fixture
async def isolated(
    fresh_db: tuple[Database, Settings],
) -> AsyncIterator[tuple[httpx.AsyncClient, Database, Tenant]]:
    """An app on a database of its own: the worker below runs with a clock weeks ahead and
    must not run other tests' jobs."""
    db, settings = fresh_db
    tenant = await make_tenant(db)
    transport = httpx.ASGITransport(app=create_app(settings, database=db))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client, db, tenant


async def test_confirmation_update_and_cancellation_arrive_with_parseable_invitations(
    isolated: tuple[httpx.AsyncClient, Database, Tenant], use_smtp: SmtpServer
) -> None:
    client, db, tenant = isolated
    email = f"{unique('anna').lower()}@example.com"
    calendar = await create_calendar(client, tenant)
    day = future_day(31)
    booked = (
        await book(client, tenant, calendar, at(day, "10:00"), attendee=attendee(email))
    ).json()
    await Worker(db).run_until_idle()
    [confirmation] = use_smtp.to(email)
    assert "Termin bestätigt" in str(confirmation["Subject"])
    assert booked["manage_url"] in confirmation.get_body(("plain",)).get_content()
    method, document = invitation(confirmation)
    assert method == "REQUEST" and str(document["METHOD"]) == "REQUEST"
    [timezone] = document.walk("VTIMEZONE")
    assert str(timezone["TZID"]) == "Europe/Berlin"
    [event] = document.walk("VEVENT")
    assert str(event["UID"]) == booked["uid"]
    assert int(event["SEQUENCE"]) == 0
    start = event.decoded("DTSTART")
    assert start == at(day, "10:00") and start.tzinfo == ZoneInfo("Europe/Berlin")
    assert event["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert event.decoded("DTEND") - start == timedelta(minutes=30)
    assert str(event["LOCATION"]) == "Hauptstr. 1, München"

    await client.post(
        f"{API}/appointments/{booked['id']}/reschedule",
        json={"start": at(day, "15:00").isoformat()},
        headers=tenant.headers(OWNER),
    )
    await client.post(
        f"{API}/appointments/{booked['id']}/cancel", json={}, headers=tenant.headers(OWNER)
    )
    await Worker(db).run_until_idle()
    confirmation, update, cancellation = use_smtp.to(email)
    method, document = invitation(update)
    [event] = document.walk("VEVENT")
    assert method == "REQUEST" and str(event["UID"]) == booked["uid"]
    assert int(event["SEQUENCE"]) == 1 and event.decoded("DTSTART") == at(day, "15:00")
    method, document = invitation(cancellation)
    [event] = document.walk("VEVENT")
    assert method == "CANCEL" and str(document["METHOD"]) == "CANCEL"
    assert str(event["UID"]) == booked["uid"] and int(event["SEQUENCE"]) == 2
    assert str(event["STATUS"]) == "CANCELLED"
    assert "abgesagt" in str(cancellation["Subject"])


async def test_e_mails_written_after_later_changes_still_show_their_own_change(
    isolated: tuple[httpx.AsyncClient, Database, Tenant], use_smtp: SmtpServer
) -> None:
    """The e-mails are written by jobs after the booking's transaction: booked, moved and
    cancelled before any of them ran, the attendee still gets each change as it was."""
    client, db, tenant = isolated
    email = f"{unique('carla').lower()}@example.com"
    calendar = await create_calendar(client, tenant)
    day = future_day(34)
    booked = (
        await book(client, tenant, calendar, at(day, "10:00"), attendee=attendee(email))
    ).json()
    await client.post(
        f"{API}/appointments/{booked['id']}/reschedule",
        json={"start": at(day, "15:00").isoformat()},
        headers=tenant.headers(OWNER),
    )
    await client.post(
        f"{API}/appointments/{booked['id']}/cancel", json={}, headers=tenant.headers(OWNER)
    )
    await Worker(db).run_until_idle()
    seen = []
    for message in use_smtp.to(email):
        method, document = invitation(message)
        [event] = document.walk("VEVENT")
        assert str(event["UID"]) == booked["uid"]
        seen.append((int(event["SEQUENCE"]), method, event.decoded("DTSTART"), message))
    seen.sort(key=lambda item: item[0])
    assert [(s, m, start) for s, m, start, _ in seen] == [
        (0, "REQUEST", at(day, "10:00")),
        (1, "REQUEST", at(day, "15:00")),
        (2, "CANCEL", at(day, "15:00")),
    ]
    assert "Termin bestätigt" in str(seen[0][3]["Subject"])
    assert booked["manage_url"] in seen[0][3].get_body(("plain",)).get_content()
    assert "abgesagt" in str(seen[2][3]["Subject"])


async def test_reminders_are_queued_moved_and_withdrawn_with_the_appointment(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    calendar = await create_calendar(client, world.a)
    day = future_day(32)
    booked = (await book(client, world.a, calendar, at(day, "10:00"))).json()
    jobs = await reminder_jobs(db, booked["id"])
    assert [j.run_at for j in jobs] == [at(day, "10:00") - timedelta(hours=24), at(day, "09:00")]
    assert {j.status for j in jobs} == {"queued"}

    await client.post(
        f"{API}/appointments/{booked['id']}/reschedule",
        json={"start": at(day, "14:00").isoformat()},
        headers=world.a.headers(OWNER),
    )
    jobs = await reminder_jobs(db, booked["id"])
    queued = [j.run_at for j in jobs if j.status == "queued"]
    assert queued == [at(day, "14:00") - timedelta(hours=24), at(day, "13:00")]
    assert len([j for j in jobs if j.status == "cancelled"]) == 2

    await client.post(
        f"{API}/appointments/{booked['id']}/cancel", json={}, headers=world.a.headers(OWNER)
    )
    assert {j.status for j in await reminder_jobs(db, booked["id"])} == {"cancelled"}


async def test_a_calendars_own_offsets_and_only_reminders_still_ahead(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    calendar = await create_calendar(client, world.a, reminder_offsets_minutes=[180, 60 * 24 * 30])
    booked = (await book(client, world.a, calendar, at(future_day(3), "10:00"))).json()
    jobs = await reminder_jobs(db, booked["id"])
    assert [j.run_at for j in jobs] == [at(future_day(3), "07:00")]  # 30 days before: past


async def test_a_due_reminder_is_sent_and_a_stale_one_does_nothing(
    isolated: tuple[httpx.AsyncClient, Database, Tenant], use_smtp: SmtpServer
) -> None:
    client, db, tenant = isolated
    email = f"{unique('ben').lower()}@example.com"
    calendar = await create_calendar(client, tenant, reminder_offsets_minutes=[60])
    day = future_day(33)
    booked = (
        await book(client, tenant, calendar, at(day, "10:00"), attendee=attendee(email))
    ).json()
    [stale] = await reminder_jobs(db, booked["id"])
    await client.post(
        f"{API}/appointments/{booked['id']}/reschedule",
        json={"start": at(day, "11:00").isoformat()},
        headers=tenant.headers(OWNER),
    )
    # The stale job runs anyway (as if a worker had claimed it before the move).
    async with db.session(Scope.for_system()) as session:
        job = await session.get(Job, stale.id)
        assert job is not None
        job.status = "queued"
        await session.commit()
    clock = Clock(at(day, "09:30"))  # the stale job (09:00) is due, the new one (10:00) not
    await Worker(db, clock=clock).run_until_idle()
    await Worker(db, clock=clock).run_until_idle()  # the e-mails queued by the first round
    subjects = [str(m["Subject"]) for m in use_smtp.to(email)]
    assert not any("Erinnerung" in s for s in subjects)
    assert len(subjects) == 2  # confirmation and update

    await Worker(db, clock=Clock(at(day, "10:01"))).run_until_idle()
    await Worker(db, clock=Clock(at(day, "10:01"))).run_until_idle()
    reminder = [m for m in use_smtp.to(email) if "Erinnerung" in str(m["Subject"])]
    assert len(reminder) == 1
    assert "11:00 Uhr" in reminder[0].get_body(("plain",)).get_content()
