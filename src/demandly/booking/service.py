"""Booking rules: calendars, free slots, booking without double bookings, rescheduling and
cancelling with their e-mails, reminders and events. Never commits.

No double booking: ``book`` and ``reschedule`` lock the calendar row (``SELECT … FOR UPDATE``
on PostgreSQL; on SQLite every write transaction starts with BEGIN IMMEDIATE, which
serialises writers) and check the slot again against the appointments inside that same
transaction. Two requests for one slot therefore run one after the other, and the second
finds the slot taken.

Public functions used by the booking page, the engine tools and the dialogue (stable names):
``get_calendar_by_slug``, ``available_slots``, ``book``, ``reschedule``, ``cancel``,
``manage_token``, ``verify_manage_token``, ``appointment_by_token``, ``manage_url``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import holidays
import phonenumbers
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.agents.service import phone_region
from demandly.booking import ics
from demandly.booking import schemas as s
from demandly.booking.availability import Range, Rules, Slot, compute_slots, parse_ranges
from demandly.booking.links import (
    Claims,
    feed_token,
    manage_token,
    verify,
    verify_manage_token,
)
from demandly.booking.models import Appointment, AppointmentStatus, Calendar, EventType
from demandly.booking.repository import BookingRepository, CalendarContext
from demandly.config import get_settings
from demandly.integrations.email import (
    Attachment,
    Brand,
    OutgoingEmail,
    brand_for,
    branded_html,
    email_brand,
    queue_email,
)
from demandly.jobs.service import NewJob, cancel_job, emit, enqueue_many
from demandly.kit.db import system_scope
from demandly.kit.errors import Conflict, NotFound, ValidationFailed
from demandly.kit.ids import new_id, random_token
from demandly.kit.time import ensure_utc, utcnow
from demandly.leads.service import Person, get_contact, upsert_contact
from demandly.tenancy.branding import brand_of
from demandly.tenancy.models import Agency, Client
from demandly.tenancy.service import slugify

__all__ = [
    "Slot",
    "appointment_by_token",
    "available_slots",
    "book",
    "cancel",
    "get_calendar_by_slug",
    "manage_token",
    "manage_url",
    "reschedule",
    "verify_manage_token",
]

REMINDER_TASK = "booking.reminder"
NOTICE_TASK = "booking.notice"
_NOTICES = ("booked", "rescheduled", "cancelled")
BOOKED = "appointment.booked"
RESCHEDULED = "appointment.rescheduled"
CANCELLED = "appointment.cancelled"
MAX_RANGE = timedelta(days=62)
# Appointments this far around a requested range can still matter: per-day limits count
# whole local days, and buffers reach over range edges.
BUSY_MARGIN = timedelta(days=2)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


# --- calendars -----------------------------------------------------------------------------


async def create_calendar(
    session: AsyncSession, client: Client, data: s.CalendarCreate
) -> Calendar:
    repo = BookingRepository(session)
    async with system_scope(session):
        if data.slug is not None:
            if await repo.slug_taken(data.slug):
                raise _slug_taken(data.slug)
            slug = data.slug
        else:
            slug = await _free_slug(repo, slugify(data.name))
    calendar = Calendar(
        agency_id=client.agency_id,
        client_id=client.id,
        name=data.name,
        slug=slug,
        timezone=data.timezone or client.timezone,
        feed_version=1,
    )
    _apply_rules(calendar, data.model_dump(exclude={"client_id", "name", "slug", "timezone"}))
    session.add(calendar)
    await _flush_unique(session, slug)
    await _sync_event_types(session, calendar, data.event_types)
    return calendar


async def _free_slug(repo: BookingRepository, base: str) -> str:
    base = base[:50].rstrip("-") or "calendar"
    candidate = base
    while candidate in s.RESERVED_SLUGS or await repo.slug_taken(candidate):
        candidate = f"{base}-{random_token(nbytes=4).lower().replace('_', '').replace('-', '')}"
    return candidate


def _slug_taken(slug: str) -> Conflict:
    return Conflict(
        f"The address {slug!r} is taken; choose another.",
        code="slug_taken",
        details=[{"field": "slug", "message": "taken"}],
    )


async def _flush_unique(session: AsyncSession, slug: str) -> None:
    try:
        await session.flush()
    except IntegrityError:
        raise _slug_taken(slug) from None


_RULE_FIELDS = (
    "holiday_region",
    "buffer_before_minutes",
    "buffer_after_minutes",
    "minimum_notice_minutes",
    "booking_window_days",
    "slot_interval_minutes",
    "max_bookings_per_day",
    "reminder_offsets_minutes",
)


def _apply_rules(calendar: Calendar, changes: dict[str, Any]) -> None:
    """Copy the rule fields present in ``changes`` (a model dump) onto the calendar."""
    if "weekly_hours" in changes:
        calendar.weekly_hours = sorted(
            changes["weekly_hours"], key=lambda r: (r["weekday"], r["start"])
        )
    if "date_overrides" in changes:
        calendar.date_overrides = sorted(
            (
                {
                    "date": item["date"].isoformat(),
                    "ranges": sorted(item["ranges"], key=lambda r: r["start"]),
                }
                for item in changes["date_overrides"]
            ),
            key=lambda o: o["date"],
        )
    for name in _RULE_FIELDS:
        if name in changes and getattr(calendar, name) != changes[name]:
            setattr(calendar, name, changes[name])


async def _sync_event_types(
    session: AsyncSession, calendar: Calendar, items: list[s.EventTypeIn]
) -> None:
    """Make the calendar's event types the given list (see ``EventTypeIn``)."""
    existing = {e.id: e for e in await BookingRepository(session).event_types(calendar.id)}
    for position, item in enumerate(items):
        values = item.model_dump(exclude={"id"}) | {"position": position}
        if item.id is None:
            session.add(
                EventType(
                    agency_id=calendar.agency_id,
                    client_id=calendar.client_id,
                    calendar_id=calendar.id,
                    **values,
                )
            )
            continue
        event_type = existing.pop(item.id, None)
        if event_type is None:
            raise ValidationFailed("event_types", f"Unknown event type {item.id}.")
        for name, value in values.items():
            if getattr(event_type, name) != value:
                setattr(event_type, name, value)
    for removed in existing.values():
        await session.delete(removed)
    await session.flush()


async def get_calendar(session: AsyncSession, calendar_id: str) -> Calendar:
    calendar = await BookingRepository(session).calendar(calendar_id)
    if calendar is None:
        raise NotFound("Calendar not found.")
    return calendar


async def update_calendar(
    session: AsyncSession, calendar: Calendar, data: s.CalendarUpdate
) -> Calendar:
    # The fields sent, each whole: an override sent without "ranges" still has its default.
    changes = {k: v for k, v in data.model_dump().items() if k in data.model_fields_set}
    if "slug" in changes and changes["slug"] != calendar.slug:
        async with system_scope(session):
            if await BookingRepository(session).slug_taken(changes["slug"]):
                raise _slug_taken(changes["slug"])
        calendar.slug = changes["slug"]
    for name in ("name", "timezone"):
        if name in changes and getattr(calendar, name) != changes[name]:
            setattr(calendar, name, changes[name])
    _apply_rules(calendar, changes)
    await _flush_unique(session, calendar.slug)
    if data.event_types is not None:
        await _sync_event_types(session, calendar, data.event_types)
    return calendar


async def delete_calendar(session: AsyncSession, calendar: Calendar) -> None:
    """Refused while confirmed appointments lie ahead: cancel or move them first, so no
    attendee is left with an appointment nobody knows of."""
    if await BookingRepository(session).has_upcoming(calendar.id, utcnow()):
        raise Conflict("The calendar has upcoming appointments; cancel them first.")
    await session.delete(calendar)
    await session.flush()


async def rotate_feed(session: AsyncSession, calendar: Calendar) -> Calendar:
    """A new private feed URL; every earlier one stops working."""
    calendar.feed_version += 1
    await session.flush()
    return calendar


async def event_types(session: AsyncSession, calendar: Calendar) -> list[EventType]:
    return await BookingRepository(session).event_types(calendar.id)


async def get_calendar_by_slug(session: AsyncSession, slug: str) -> Calendar:
    """The calendar behind a public booking page (of an active client and agency), looked up
    across tenants; 404 otherwise. The session's scope is left as it was: the caller narrows
    it to the calendar's client before doing anything else."""
    if not slug or len(slug) > 63:
        raise NotFound("Calendar not found.")
    async with system_scope(session):
        calendar = await BookingRepository(session).calendar_by_slug(slug.lower())
    if calendar is None:
        raise NotFound("Calendar not found.")
    return calendar


async def calendar_by_feed_token(session: AsyncSession, token: str) -> Calendar:
    """The calendar a private feed token names (looked up across tenants); 404 for a
    forged, foreign-purpose or revoked token."""
    claims = verify(token, "feed")
    async with system_scope(session):
        calendar = await BookingRepository(session).calendar(claims.subject)
    if calendar is None or calendar.feed_version != claims.version:
        raise NotFound("This link is not valid.")
    return calendar


# --- availability --------------------------------------------------------------------------


def _zone(name: str, field: str = "tz") -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise ValidationFailed(field, "Unknown time zone; use an IANA name.") from None


def instant(value: datetime, field: str, zone: ZoneInfo | None = None) -> datetime:
    """``value`` as aware UTC (without an offset it is read in ``zone``; without a zone it
    is refused), within the years bookings can sensibly name: 422 naming ``field`` else."""
    if value.tzinfo is None:
        if zone is None:
            raise ValidationFailed(field, "Give the time with its UTC offset.")
        value = value.replace(tzinfo=zone)
    try:
        utc = ensure_utc(value)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise ValidationFailed(field, "The time is out of range.")
    return utc


@lru_cache(maxsize=256)
def _holidays(region: str, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("DE", subdiv=region, years=year))


def rules_of(calendar: Calendar, years: range) -> Rules:
    """The calendar's rules as the availability computation takes them."""
    weekly: dict[int, list[Range]] = {}
    for item in calendar.weekly_hours:
        weekly.setdefault(int(item["weekday"]), []).extend(parse_ranges([item]))
    overrides = {
        date.fromisoformat(item["date"]): parse_ranges(item["ranges"])
        for item in calendar.date_overrides
    }
    closed: frozenset[date] = frozenset()
    if calendar.holiday_region:
        for year in years:
            closed |= _holidays(calendar.holiday_region, year)
    return Rules(
        timezone=calendar.timezone,
        weekly=weekly,
        overrides=overrides,
        holidays=closed,
        buffer_before=timedelta(minutes=calendar.buffer_before_minutes),
        buffer_after=timedelta(minutes=calendar.buffer_after_minutes),
        minimum_notice=timedelta(minutes=calendar.minimum_notice_minutes),
        window_days=calendar.booking_window_days,
        interval=(
            timedelta(minutes=calendar.slot_interval_minutes)
            if calendar.slot_interval_minutes
            else None
        ),
        max_per_day=calendar.max_bookings_per_day,
    )


async def event_type_for(
    session: AsyncSession, calendar: Calendar, event_type_id: str | None
) -> EventType:
    """The named event type of the calendar, or its first one."""
    return _choose_kind(await BookingRepository(session).event_types(calendar.id), event_type_id)


def _choose_kind(kinds: list[EventType], event_type_id: str | None) -> EventType:
    if event_type_id is None and kinds:
        return kinds[0]
    for kind in kinds:
        if kind.id == event_type_id:
            return kind
    raise ValidationFailed("event_type_id", "The calendar has no such event type.")


async def _compute(
    session: AsyncSession,
    calendar: Calendar,
    duration: timedelta,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    exclude_id: str | None = None,
    with_appointments: bool = True,
) -> list[Slot]:
    busy: list[tuple[datetime, datetime]] = []
    if with_appointments:
        margin = _busy_margin(calendar, duration)
        busy = await BookingRepository(session).busy(
            calendar.id, start - margin, end + margin, exclude_id=exclude_id
        )
    years = range((start - BUSY_MARGIN).year, (end + BUSY_MARGIN).year + 1)
    return compute_slots(rules_of(calendar, years), duration, start, end, now=now, busy=busy)


def _busy_margin(calendar: Calendar, duration: timedelta) -> timedelta:
    """How far around a range appointments can matter: whole local days when the calendar
    limits bookings per day, else a slot's length and the buffers (a slot starting in the
    range ends at most ``duration`` after it and keeps the buffers clear around it)."""
    if calendar.max_bookings_per_day:
        return BUSY_MARGIN
    buffers = max(calendar.buffer_before_minutes, calendar.buffer_after_minutes)
    return duration + timedelta(minutes=buffers)


async def available_slots(
    session: AsyncSession,
    calendar: Calendar,
    start: datetime,
    end: datetime,
    *,
    event_type_id: str | None = None,
    tz: str | None = None,
    now: datetime | None = None,
) -> list[Slot]:
    """Free slots starting in [start, end), as aware UTC datetimes. ``start``/``end``
    without an offset are read in ``tz`` (default: the calendar's time zone)."""
    zone = _zone(tz or calendar.timezone)
    start, end = instant(start, "from", zone), instant(end, "to", zone)
    if end <= start:
        raise ValidationFailed("to", "Must be later than from.")
    if end - start > MAX_RANGE:
        raise ValidationFailed("to", f"At most {MAX_RANGE.days} days at a time.")
    kind = await event_type_for(session, calendar, event_type_id)
    duration = timedelta(minutes=kind.duration_minutes)
    return await _compute(session, calendar, duration, start, end, now=now or utcnow())


async def _check_free(
    session: AsyncSession,
    calendar: Calendar,
    start: datetime,
    duration: timedelta,
    *,
    now: datetime,
    exclude_id: str | None = None,
) -> None:
    """422 when ``start`` is no bookable time of the calendar at all (hours, notice, window,
    interval), 409 when it is but an appointment (or the day's limit) is in the way."""
    window = (start, start + timedelta(microseconds=1))
    free = await _compute(session, calendar, duration, *window, now=now, exclude_id=exclude_id)
    if any(slot.start == start for slot in free):
        return
    open_slots = await _compute(
        session, calendar, duration, *window, now=now, with_appointments=False
    )
    if any(slot.start == start for slot in open_slots):
        raise Conflict("This time has just been booked; choose another.", code="slot_taken")
    raise ValidationFailed("start", "This is not a bookable time of the calendar.")


# --- appointments --------------------------------------------------------------------------


def _phone(raw: str | None, calendar: Calendar) -> str | None:
    """E.164, national numbers read in the calendar's country."""
    if raw is None:
        return None
    try:
        number = phonenumbers.parse(raw, phone_region(calendar.timezone))
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise ValidationFailed("attendee.phone", "This is not a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


async def _context(
    session: AsyncSession,
    calendar_id: str,
    *,
    lock: bool = False,
    idempotency_key: str | None = None,
    owners: bool = True,
) -> CalendarContext:
    """The calendar with its event types, client and agency (unless ``owners=False``), in
    one statement; ``lock`` takes the calendar's row lock (PostgreSQL) that serialises its
    bookings."""
    context = await BookingRepository(session).calendar_context(
        calendar_id, for_update=lock, idempotency_key=idempotency_key, owners=owners
    )
    if context is None:
        raise NotFound("Calendar not found.")
    return context


def _uid(appointment_id: str) -> str:
    host = urlsplit(get_settings().base_url).hostname or "demandly"
    return f"{appointment_id}@{host}"


async def book(
    session: AsyncSession,
    calendar: Calendar,
    *,
    start: datetime,
    event_type_id: str | None,
    attendee: s.AttendeeIn,
    notes: str | None,
    source: str,
    conversation_id: str | None = None,
    idempotency_key: str | None = None,
    contact_id: str | None = None,
    now: datetime | None = None,
) -> Appointment:
    """Book ``start`` on the calendar: 422 if it is no bookable time, 409 if it is taken.
    With an ``idempotency_key`` a repeated request returns the first booking (409 if the
    key was used for another time)."""
    start = instant(start, "start")
    now = now or utcnow()
    context = await _context(
        session, calendar.id, lock=True, idempotency_key=idempotency_key, owners=False
    )
    calendar, earlier = context.calendar, context.keyed
    if earlier is not None:
        if earlier.start_at != start:
            raise Conflict("This Idempotency-Key was used for another booking.")
        return earlier
    kind = _choose_kind(context.event_types, event_type_id)
    duration = timedelta(minutes=kind.duration_minutes)
    phone = _phone(attendee.phone, calendar)
    await _check_free(session, calendar, start, duration, now=now)
    if contact_id is None:
        contact_id = await _attendee_contact(session, calendar, attendee, phone)
    elif (await get_contact(session, contact_id)).client_id != calendar.client_id:
        raise NotFound(
            "Contact not found.",
            details=[{"field": "contact_id", "message": "not a contact of the calendar's client"}],
        )
    appointment_id = new_id(Appointment.__id_prefix__)
    appointment = Appointment(
        id=appointment_id,
        agency_id=calendar.agency_id,
        client_id=calendar.client_id,
        calendar_id=calendar.id,
        event_type_id=kind.id,
        start_at=start,
        end_at=start + duration,
        status=AppointmentStatus.CONFIRMED,
        attendee_name=attendee.name,
        attendee_email=attendee.email,
        attendee_phone=phone,
        attendee_timezone=attendee.timezone,
        contact_id=contact_id,
        conversation_id=conversation_id,
        notes=notes,
        source=source,
        idempotency_key=idempotency_key,
        uid=_uid(appointment_id),
        sequence=0,
    )
    session.add(appointment)
    await session.flush()  # with the attendee's contact: one flush, one audit append
    await _emit(session, appointment, BOOKED)
    await enqueue_many(
        session, [*_reminder_jobs(appointment, calendar, now), *_notice(appointment, "booked")]
    )
    return appointment


async def _attendee_contact(
    session: AsyncSession, calendar: Calendar, attendee: s.AttendeeIn, phone: str | None
) -> str | None:
    """The attendee as the client's contact: the one with this e-mail or phone, else a new
    one (so the client sees who booked next to their leads)."""
    email = attendee.email.strip().lower() if attendee.email else None
    if not (email or phone):
        return None
    person = Person(name=attendee.name, email=email, phone=phone)
    contact, _ = await upsert_contact(
        session, calendar.agency_id, calendar.client_id, person, source="booking", flush=False
    )
    return contact.id


async def get_appointment(
    session: AsyncSession, appointment_id: str, *, for_update: bool = False
) -> Appointment:
    appointment = await BookingRepository(session).appointment(
        appointment_id, for_update=for_update
    )
    if appointment is None:
        raise NotFound("Appointment not found.")
    return appointment


def _require_confirmed(appointment: Appointment, verb: str) -> None:
    if appointment.status != AppointmentStatus.CONFIRMED:
        raise Conflict(
            f"Only confirmed appointments can be {verb}; this one is {appointment.status}.",
            code="appointment_not_confirmed",
        )


async def reschedule(
    session: AsyncSession, appt: Appointment, start: datetime, *, now: datetime | None = None
) -> Appointment:
    """Move a confirmed appointment (same length) to another free time: the invitation is
    updated (SEQUENCE + 1) and the reminders move with it."""
    start = instant(start, "start")
    now = now or utcnow()
    context = await _context(session, appt.calendar_id, lock=True, owners=False)
    calendar = context.calendar
    appt = await get_appointment(session, appt.id, for_update=True)
    _require_confirmed(appt, "rescheduled")
    if appt.start_at == start:
        return appt
    duration = appt.end_at - appt.start_at
    await _check_free(session, calendar, start, duration, now=now, exclude_id=appt.id)
    await _cancel_reminders(session, appt)
    previous = appt.start_at
    appt.start_at, appt.end_at = start, start + duration
    appt.sequence += 1
    await session.flush()
    await _emit(session, appt, RESCHEDULED, previous_start=previous.isoformat())
    await enqueue_many(
        session, [*_reminder_jobs(appt, calendar, now), *_notice(appt, "rescheduled")]
    )
    return appt


async def cancel(
    session: AsyncSession, appt: Appointment, reason: str | None, *, now: datetime | None = None
) -> Appointment:
    """Cancel a confirmed appointment (cancelling a cancelled one changes nothing): the
    attendee gets METHOD:CANCEL, the reminders are withdrawn, the time is free again."""
    appt = await get_appointment(session, appt.id, for_update=True)
    if appt.status == AppointmentStatus.CANCELLED:
        return appt
    _require_confirmed(appt, "cancelled")
    await _cancel_reminders(session, appt)
    appt.status = AppointmentStatus.CANCELLED
    appt.cancel_reason = reason
    appt.cancelled_at = now or utcnow()
    appt.sequence += 1
    await session.flush()
    await _emit(session, appt, CANCELLED, reason=reason)
    await enqueue_many(session, _notice(appt, "cancelled"))
    return appt


async def update_appointment(
    session: AsyncSession, appt: Appointment, data: s.AppointmentUpdate
) -> Appointment:
    """Notes, and the outcome (completed, no_show) of an appointment that was not cancelled."""
    changes = data.model_dump(exclude_unset=True)
    if "status" in changes and changes["status"] != appt.status:
        if appt.status == AppointmentStatus.CANCELLED:
            raise Conflict("A cancelled appointment stays cancelled; book a new one.")
        appt.status = changes["status"]
        if appt.status != AppointmentStatus.CONFIRMED:
            await _cancel_reminders(session, appt)
    if "notes" in changes and changes["notes"] != appt.notes:
        appt.notes = changes["notes"]
    await session.flush()
    return appt


def _kind_of(context: CalendarContext, appt: Appointment) -> EventType | None:
    if appt.event_type_id is None:
        return None
    return next((k for k in context.event_types if k.id == appt.event_type_id), None)


async def _emit(session: AsyncSession, appt: Appointment, event: str, **extra: Any) -> None:
    """Ids and times only: subscribers load what they need (no personal data in events)."""
    await emit(
        session,
        event,
        agency_id=appt.agency_id,
        client_id=appt.client_id,
        entity_type="appointment",
        entity_id=appt.id,
        payload={
            "appointment_id": appt.id,
            "calendar_id": appt.calendar_id,
            "event_type_id": appt.event_type_id,
            "start": appt.start_at.isoformat(),
            "end": appt.end_at.isoformat(),
            "status": appt.status,
            "source": appt.source,
            "sequence": appt.sequence,
            "contact_id": appt.contact_id,
            "conversation_id": appt.conversation_id,
            **extra,
        },
    )


# --- signed links --------------------------------------------------------------------------


def _base_url() -> str:
    return get_settings().base_url.rstrip("/")


def manage_url(appt: Appointment) -> str:
    return f"{_base_url()}/book/manage/{manage_token(appt)}"


def booking_url(calendar: Calendar) -> str:
    return f"{_base_url()}/book/{calendar.slug}"


def feed_url(calendar: Calendar) -> str:
    return f"{_base_url()}/api/v1/public/calendars/{feed_token(calendar)}.ics"


async def appointment_by_token(session: AsyncSession, token: str) -> Appointment:
    """The appointment a manage token names, looked up across tenants: 404 for a forged or
    foreign-purpose token, 410 for an expired one. The caller narrows the session's scope
    to the appointment's client before changing anything."""
    claims: Claims = verify_manage_token(token, "manage")
    async with system_scope(session):
        appt = await BookingRepository(session).appointment(claims.subject)
    if appt is None:
        raise NotFound("This link is not valid.")
    return appt


async def feed(session: AsyncSession, calendar: Calendar, now: datetime | None = None) -> bytes:
    """The private feed: appointments from 30 days ago on."""
    since = (now or utcnow()) - timedelta(days=30)
    repo = BookingRepository(session)
    appointments = await repo.feed_appointments(calendar.id, since)
    kinds = {k.id: k for k in await repo.event_types(calendar.id)}
    return ics.feed(calendar, appointments, kinds)


# --- reminders -----------------------------------------------------------------------------


def reminder_offsets(calendar: Calendar) -> list[int]:
    if calendar.reminder_offsets_minutes is not None:
        return sorted({int(m) for m in calendar.reminder_offsets_minutes}, reverse=True)
    raw = get_settings().reminder_offsets_minutes
    return sorted({int(p) for p in raw.split(",") if p.strip()}, reverse=True)


def _reminder_prefix(appt: Appointment) -> str:
    return f"{REMINDER_TASK}:{appt.id}:{appt.sequence}:"


def _reminder_jobs(appt: Appointment, calendar: Calendar, now: datetime) -> list[NewJob]:
    """One job per offset still ahead, keyed by the appointment's sequence: a reminder of an
    earlier sequence finds the appointment changed and does nothing."""
    return [
        NewJob(
            REMINDER_TASK,
            {"appointment_id": appt.id, "sequence": appt.sequence, "offset_minutes": offset},
            agency_id=appt.agency_id,
            client_id=appt.client_id,
            run_at=run_at,
            idempotency_key=f"{_reminder_prefix(appt)}{offset}",
        )
        for offset in reminder_offsets(calendar)
        if (run_at := appt.start_at - timedelta(minutes=offset)) > now
    ]


async def _cancel_reminders(session: AsyncSession, appt: Appointment) -> None:
    for job in await BookingRepository(session).queued_jobs(_reminder_prefix(appt)):
        try:
            await cancel_job(session, job)
        except Conflict:  # a worker claimed it meanwhile; it will find the sequence changed
            continue


async def send_reminder(session: AsyncSession, payload: dict[str, Any]) -> bool:
    """The reminder e-mail, unless the appointment was moved, cancelled or is gone since the
    job was queued. True if one was queued."""
    appt = await BookingRepository(session).appointment(str(payload.get("appointment_id")))
    if (
        appt is None
        or appt.status != AppointmentStatus.CONFIRMED
        or appt.sequence != payload.get("sequence")
    ):
        return False
    context = await _context(session, appt.calendar_id)
    return await _notify(session, appt, context, _kind_of(context, appt), "reminder")


# --- e-mails -------------------------------------------------------------------------------


def _notice(appt: Appointment, what: str) -> list[NewJob]:
    """The job that writes and sends the attendee's e-mail about this change (booked,
    rescheduled, cancelled) after the booking's transaction. It carries what the change set,
    so the e-mail shows the appointment as it was then even if it changed again before the
    job ran. Attendees without an e-mail address get none."""
    if not appt.attendee_email:
        return []
    return [
        NewJob(
            NOTICE_TASK,
            {
                "appointment_id": appt.id,
                "what": what,
                "sequence": appt.sequence,
                "status": appt.status,
                "start": appt.start_at.isoformat(),
                "end": appt.end_at.isoformat(),
            },
            agency_id=appt.agency_id,
            client_id=appt.client_id,
            idempotency_key=_mail_key(appt, what),
        )
    ]


async def notice_email(
    session: AsyncSession, payload: dict[str, Any]
) -> tuple[OutgoingEmail, Brand] | None:
    """The e-mail a ``_notice`` job stands for, with its .ics (the UID and SEQUENCE of that
    change), and the brand it goes out under; None when there is none to send."""
    appt = await BookingRepository(session).appointment(str(payload.get("appointment_id")))
    if appt is None or payload.get("what") not in _NOTICES:
        return None
    then = _as_of(appt, payload)
    context = await _context(session, appt.calendar_id)
    return await _email(session, then, context, _kind_of(context, then), str(payload["what"]))


def _as_of(appt: Appointment, payload: dict[str, Any]) -> Appointment:
    """The appointment as the notice's change left it: a detached copy (never flushed) with
    that change's times, status and sequence when it has changed again since."""
    if appt.sequence == payload["sequence"]:
        return appt
    columns = {a.key: getattr(appt, a.key) for a in sa_inspect(Appointment).column_attrs}
    columns.update(
        start_at=datetime.fromisoformat(payload["start"]),
        end_at=datetime.fromisoformat(payload["end"]),
        status=payload["status"],
        sequence=payload["sequence"],
    )
    return Appointment(**columns)


_WEEKDAYS = {
    "de": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_MONTHS = {
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
    "en": "January February March April May June July August September October November December",
}
_TEXTS = {
    "de": {
        "booked": ("Termin bestätigt", "Ihr Termin ist gebucht."),
        "rescheduled": ("Termin verschoben", "Ihr Termin wurde verschoben."),
        "cancelled": ("Termin abgesagt", "Ihr Termin wurde abgesagt."),
        "reminder": ("Erinnerung an Ihren Termin", "Wir erinnern Sie an Ihren Termin."),
        "greeting": "Guten Tag {name},",
        "when": "Wann",
        "what": "Was",
        "where": "Wo",
        "manage": "Termin verschieben oder absagen",
        "clock": "Uhr",
    },
    "en": {
        "booked": ("Appointment confirmed", "Your appointment is booked."),
        "rescheduled": ("Appointment moved", "Your appointment has been moved."),
        "cancelled": ("Appointment cancelled", "Your appointment has been cancelled."),
        "reminder": ("Appointment reminder", "This is a reminder of your appointment."),
        "greeting": "Hello {name},",
        "when": "When",
        "what": "What",
        "where": "Where",
        "manage": "Reschedule or cancel",
        "clock": "",
    },
}


def format_when(moment: datetime, timezone: str, language: str) -> str:
    """For people, e.g. Dienstag, 3. Dezember 2026, 10:00 Uhr (Europe/Berlin)."""
    lang = language if language in _TEXTS else "de"
    local = moment.astimezone(ZoneInfo(timezone))
    weekday = _WEEKDAYS[lang][local.weekday()]
    month = _MONTHS[lang].split()[local.month - 1]
    clock = f"{local:%H:%M}"
    if lang == "de":
        return f"{weekday}, {local.day}. {month} {local.year}, {clock} Uhr ({timezone})"
    return f"{weekday}, {month} {local.day}, {local.year}, {clock} ({timezone})"


@dataclass(frozen=True)
class _Mail:
    subject: str
    lines: list[tuple[str, str]]
    intro: str
    greeting: str
    link: tuple[str, str] | None


def _compose(
    appt: Appointment, calendar: Calendar, kind: EventType | None, what: str, language: str
) -> _Mail:
    texts = _TEXTS[language]
    title, intro = texts[what]
    when = format_when(appt.start_at, appt.attendee_timezone or calendar.timezone, language)
    lines = [(texts["when"], when), (texts["what"], kind.name if kind else calendar.name)]
    if kind is not None and kind.location_text:
        lines.append((texts["where"], kind.location_text))
    link = None
    if what != "cancelled" and appt.start_at > utcnow():
        link = (texts["manage"], manage_url(appt))
    return _Mail(
        subject=f"{title}: {when}",
        lines=lines,
        intro=intro,
        greeting=texts["greeting"].format(name=appt.attendee_name),
        link=link,
    )


def _text_body(mail: _Mail) -> str:
    parts = [mail.greeting, "", mail.intro, ""]
    parts += [f"{label}: {value}" for label, value in mail.lines]
    if mail.link is not None:
        parts += ["", f"{mail.link[0]}: {mail.link[1]}"]
    return "\n".join(parts) + "\n"


def _html_body(mail: _Mail) -> str:
    rows = "".join(
        f'<tr><td style="padding:2px 12px 2px 0;color:#6b7280">{html.escape(label)}</td>'
        f"<td>{html.escape(value)}</td></tr>"
        for label, value in mail.lines
    )
    link = ""
    if mail.link is not None:
        href = html.escape(mail.link[1], quote=True)
        link = f'<p><a href="{href}">{html.escape(mail.link[0])}</a></p>'
    return (
        f"<p>{html.escape(mail.greeting)}</p><p>{html.escape(mail.intro)}</p>"
        f'<table role="presentation">{rows}</table>{link}'
    )


async def _notify(
    session: AsyncSession,
    appt: Appointment,
    context: CalendarContext,
    kind: EventType | None,
    what: str,
) -> bool:
    """Queue the attendee's e-mail (a reminder). Attendees without an e-mail address get
    none."""
    mail = await _email(session, appt, context, kind, what)
    if mail is None:
        return False
    email, brand = mail
    await queue_email(
        session,
        email,
        brand=brand,
        agency_id=appt.agency_id,
        client_id=appt.client_id,
        idempotency_key=_mail_key(appt, what),
    )
    return True


def _mail_key(appt: Appointment, what: str) -> str:
    return f"booking.mail:{appt.id}:{appt.sequence}:{what}"


async def _email(
    session: AsyncSession,
    appt: Appointment,
    context: CalendarContext,
    kind: EventType | None,
    what: str,
) -> tuple[OutgoingEmail, Brand] | None:
    """The attendee's e-mail in the client's language and the agency's brand (with the
    invitation or cancellation .ics, except for reminders); None without an address."""
    if not appt.attendee_email:
        return None
    calendar, client = context.calendar, context.client
    language = client.locale if client is not None and client.locale in _TEXTS else "de"
    mail = _compose(appt, calendar, kind, what, language)
    attachments: tuple[Attachment, ...] = ()
    if what != "reminder":
        method = "CANCEL" if appt.status == AppointmentStatus.CANCELLED else "REQUEST"
        attachments = (
            Attachment(
                filename="invite.ics" if method == "REQUEST" else "cancel.ics",
                content=ics.invitation(appt, calendar, kind),
                content_type=f"text/calendar; method={method}; charset=utf-8",
            ),
        )
    brand = await _mail_brand(session, appt.agency_id, context.agency)
    email = OutgoingEmail(
        to=appt.attendee_email,
        subject=mail.subject,
        text=_text_body(mail),
        html=branded_html(brand, mail.subject, _html_body(mail)),
        attachments=attachments,
    )
    return email, brand


async def _mail_brand(session: AsyncSession, agency_id: str, agency: Agency | None) -> Brand:
    """The e-mail brand of the agency read with the calendar (``brand_for`` reads it again
    when the scope did not show it: that raises as before)."""
    if agency is None:
        return await brand_for(session, agency_id)
    return email_brand(brand_of(agency))


# --- views ---------------------------------------------------------------------------------


def calendar_view(calendar: Calendar, kinds: list[EventType]) -> s.Calendar:
    return s.Calendar(
        id=calendar.id,
        agency_id=calendar.agency_id,
        client_id=calendar.client_id,
        name=calendar.name,
        slug=calendar.slug,
        timezone=calendar.timezone,
        event_types=[
            s.EventType(
                id=k.id,
                name=k.name,
                duration_minutes=k.duration_minutes,
                location_kind=k.location_kind,
                location_text=k.location_text,
            )
            for k in kinds
        ],
        weekly_hours=[s.WeeklyRange.model_validate(r) for r in calendar.weekly_hours],
        date_overrides=[s.DateOverride.model_validate(o) for o in calendar.date_overrides],
        holiday_region=calendar.holiday_region,
        buffer_before_minutes=calendar.buffer_before_minutes,
        buffer_after_minutes=calendar.buffer_after_minutes,
        minimum_notice_minutes=calendar.minimum_notice_minutes,
        booking_window_days=calendar.booking_window_days,
        slot_interval_minutes=calendar.slot_interval_minutes,
        max_bookings_per_day=calendar.max_bookings_per_day,
        reminder_offsets_minutes=reminder_offsets(calendar),
        booking_url=booking_url(calendar),
        feed_url=feed_url(calendar),
        created_at=calendar.created_at,
        updated_at=calendar.updated_at,
    )


def appointment_view(appt: Appointment) -> s.Appointment:
    return s.Appointment(
        id=appt.id,
        agency_id=appt.agency_id,
        client_id=appt.client_id,
        calendar_id=appt.calendar_id,
        event_type_id=appt.event_type_id,
        start=appt.start_at,
        end=appt.end_at,
        status=appt.status,  # type: ignore[arg-type]
        attendee=s.Attendee(
            name=appt.attendee_name,
            email=appt.attendee_email,
            phone=appt.attendee_phone,
            timezone=appt.attendee_timezone,
        ),
        contact_id=appt.contact_id,
        conversation_id=appt.conversation_id,
        notes=appt.notes,
        source=appt.source,
        uid=appt.uid,
        sequence=appt.sequence,
        cancel_reason=appt.cancel_reason,
        cancelled_at=appt.cancelled_at,
        manage_url=manage_url(appt),
        created_at=appt.created_at,
        updated_at=appt.updated_at,
    )


def public_view(
    appt: Appointment, calendar: Calendar, kind: EventType | None, now: datetime | None = None
) -> s.PublicAppointment:
    return s.PublicAppointment(
        start=appt.start_at,
        end=appt.end_at,
        timezone=appt.attendee_timezone or calendar.timezone,
        status=appt.status,  # type: ignore[arg-type]
        calendar_name=calendar.name,
        calendar_slug=calendar.slug,
        event_type_name=kind.name if kind else None,
        location_kind=kind.location_kind if kind else None,
        location_text=kind.location_text if kind else None,
        attendee_name=appt.attendee_name,
        can_change=appt.status == AppointmentStatus.CONFIRMED and appt.start_at > (now or utcnow()),
    )


def local_time(moment: datetime, timezone: str) -> datetime:
    return moment.astimezone(ZoneInfo(timezone))
