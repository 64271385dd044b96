"""Booking tools for the engine: check_availability, book_appointment,
reschedule_appointment, cancel_appointment.

They book into the agent's calendar (``ctx.agent.calendar_id``) with the conversation's
session, whose scope is the conversation's client: a calendar or appointment of another client
is simply not found. Times go out in the calendar's time zone with a label in the agent's
language. Expected failures (a taken slot, an unknown appointment, an expired link) come back
as ``{"ok": false, "error": ...}`` with what the agent needs to carry on; anything else is
turned into such an answer by the registry.

An appointment is reachable by its id only from the conversation that booked it; any other
appointment needs the attendee's manage token (from the confirmation e-mail or link).

Results (besides ``ok``):
- check_availability: ``{timezone, slots: [{start, label}], more}``, plus ``next_available``
  (a slot or None) when the window has nothing; ``start`` is ISO 8601 in the calendar's zone.
- book_appointment, reschedule_appointment, cancel_appointment: ``{appointment_id, status,
  start, label, timezone, manage_url}``.
- failures: ``{ok: false, error, message?}`` with ``error`` "slot_taken" or "not_bookable"
  (both with ``alternatives: [{start, label}]``), "not_found", "link_expired",
  "appointment_not_confirmed", or a sentence (bad arguments, contact details).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, model_validator

from demandly.booking import links, service
from demandly.booking.availability import Slot
from demandly.booking.models import Appointment, Calendar
from demandly.booking.schemas import AttendeeIn
from demandly.engine.tools import ToolContext, tool
from demandly.kit.errors import Conflict, DemandlyError, Gone, NotFound, ValidationFailed
from demandly.kit.time import utcnow

INVALID_CONTACT = "invalid contact details: check the e-mail address or phone number"
DEFAULT_DAYS = 14
MAX_DAYS = 31
PARTS_OF_DAY: dict[str, tuple[time, time | None]] = {
    "morning": (time(0), time(12)),
    "afternoon": (time(12), time(17)),
    "evening": (time(17), None),
}


class CheckAvailability(BaseModel):
    date_from: date | None = Field(None, description="First day (default: today).")
    date_to: date | None = Field(
        None, description=f"Last day, inclusive (default: {DEFAULT_DAYS} days from date_from)."
    )
    part_of_day: Literal["morning", "afternoon", "evening"] | None = Field(
        None, description="morning: before 12:00, afternoon: 12-17, evening: from 17:00."
    )
    after_time: time | None = Field(
        None, description="Only slots starting later than this local time (HH:MM), every day."
    )
    limit: int = Field(3, ge=1, le=10, description="How many of the nearest free slots.")


class BookAppointment(BaseModel):
    start: datetime = Field(
        description="A start from check_availability (ISO; without offset: calendar time)."
    )
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=40)
    note: str | None = Field(None, max_length=2000)

    @model_validator(mode="after")
    def _reachable(self) -> BookAppointment:
        if not (self.email or self.phone):
            raise ValueError("an e-mail address or a phone number is needed")
        return self


class _Which(BaseModel):
    appointment_id: str | None = Field(
        None, max_length=40, description="An appointment booked in this conversation."
    )
    manage_token: str | None = Field(
        None, max_length=200, description="The token of the attendee's manage link."
    )

    @model_validator(mode="after")
    def _named(self) -> _Which:
        if not (self.appointment_id or self.manage_token):
            raise ValueError("appointment_id or manage_token is needed")
        return self


class RescheduleAppointment(_Which):
    start: datetime = Field(description="The new start, from check_availability.")


class CancelAppointment(_Which):
    reason: str | None = Field(None, max_length=500)


# --- helpers ---------------------------------------------------------------------------------


def _failure(error: str, **more: Any) -> dict[str, Any]:
    """An expected failure: ``ok`` false and what the agent can tell the visitor."""
    return {"ok": False, "error": error, **more}


async def _calendar(ctx: ToolContext) -> Calendar:
    if not ctx.agent.calendar_id:
        raise NotFound("This agent has no calendar.")
    return await service.get_calendar(ctx.session, ctx.agent.calendar_id)


def _slot_view(slot: Slot, calendar: Calendar, lang: str) -> dict[str, Any]:
    return {
        "start": slot.start.astimezone(ZoneInfo(calendar.timezone)).isoformat(),
        "label": service.format_when(slot.start, calendar.timezone, lang),
    }


def _appointment_view(appointment: Appointment, calendar: Calendar, lang: str) -> dict[str, Any]:
    return {
        "appointment_id": appointment.id,
        "status": appointment.status,
        "start": appointment.start_at.astimezone(ZoneInfo(calendar.timezone)).isoformat(),
        "label": service.format_when(appointment.start_at, calendar.timezone, lang),
        "timezone": calendar.timezone,
        "manage_url": service.manage_url(appointment),
    }


def _aware(moment: datetime, timezone: str) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment.astimezone(UTC)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _fits(slot: Slot, zone: ZoneInfo, args: CheckAvailability) -> bool:
    local = slot.start.astimezone(zone).time()
    if args.after_time is not None and local <= args.after_time.replace(tzinfo=None):
        return False
    if args.part_of_day is not None:
        begins, ends = PARTS_OF_DAY[args.part_of_day]
        return begins <= local and (ends is None or local < ends)
    return True


async def _free(
    ctx: ToolContext, calendar: Calendar, first: date, last: date, args: CheckAvailability
) -> list[Slot]:
    zone = ZoneInfo(calendar.timezone)
    slots = await service.available_slots(
        ctx.session,
        calendar,
        _midnight(first, zone),
        _midnight(last + timedelta(days=1), zone),
        tz=calendar.timezone,
    )
    return [s for s in slots if _fits(s, zone, args)]


async def _nearby(ctx: ToolContext, calendar: Calendar, around: datetime) -> list[dict[str, Any]]:
    """Up to three free slots from the day of ``around`` on: offered when a slot was taken."""
    zone = ZoneInfo(calendar.timezone)
    first = max(around.astimezone(zone).date(), utcnow().astimezone(zone).date())
    slots = await _free(
        ctx, calendar, first, first + timedelta(days=DEFAULT_DAYS), CheckAvailability()
    )
    return [_slot_view(s, calendar, ctx.agent.language) for s in slots[:3]]


async def _appointment(ctx: ToolContext, which: _Which) -> Appointment:
    """The appointment a tool call names: by id only if this conversation booked it."""
    if which.manage_token:
        claims = links.verify_manage_token(which.manage_token)
        return await service.get_appointment(ctx.session, claims.subject)
    appointment = await service.get_appointment(ctx.session, which.appointment_id or "")
    if appointment.conversation_id != ctx.conversation.id:
        raise NotFound("No such appointment in this conversation.")
    return appointment


async def _refused(
    ctx: ToolContext, calendar: Calendar, start: datetime, error: DemandlyError
) -> dict[str, Any]:
    """Why the service refused a time: taken meanwhile or no bookable time at all (both with
    nearby free slots to offer instead), contact details it could not use, or the
    appointment's state."""
    fields = [str(item.get("field", "")) for item in error.details or ()]
    if (isinstance(error, Conflict) and error.code == "slot_taken") or "start" in fields:
        reason = "slot_taken" if isinstance(error, Conflict) else "not_bookable"
        alternatives = await _nearby(ctx, calendar, start)
        return _failure(reason, message=error.message, alternatives=alternatives)
    if any(name.startswith("attendee.") for name in fields):
        return _failure(INVALID_CONTACT, message=error.message)
    return _expected(error)


def _expected(error: DemandlyError) -> dict[str, Any]:
    if isinstance(error, Gone):
        return _failure("link_expired", message=error.message)
    if isinstance(error, NotFound):
        return _failure("not_found", message=error.message)
    return _failure(error.code, message=error.message)


# --- the tools -------------------------------------------------------------------------------


@tool(
    "check_availability",
    "Find the nearest free appointment slots in the calendar, optionally within dates, a part "
    "of the day or after a time. Offer the visitor the labels; book with the start.",
)
async def check_availability(ctx: ToolContext, args: CheckAvailability) -> dict[str, Any]:
    try:
        calendar = await _calendar(ctx)
    except NotFound as error:
        return _expected(error)
    zone = ZoneInfo(calendar.timezone)
    today = utcnow().astimezone(zone).date()
    first = max(args.date_from or today, today)
    last = args.date_to or first + timedelta(days=DEFAULT_DAYS - 1)
    if last < first:
        return _failure("date_to is before date_from (or before today)")
    last = min(last, first + timedelta(days=MAX_DAYS - 1))
    found = await _free(ctx, calendar, first, last, args)
    lang = ctx.agent.language
    result: dict[str, Any] = {
        "timezone": calendar.timezone,
        "slots": [_slot_view(s, calendar, lang) for s in found[: args.limit]],
        "more": len(found) > args.limit,
    }
    if not found:
        # Nothing in the window: the first fitting slot after it, so the agent can offer it.
        horizon = today + timedelta(days=calendar.booking_window_days)
        after = last + timedelta(days=1)
        until = min(horizon, last + timedelta(days=MAX_DAYS))
        later = await _free(ctx, calendar, after, until, args) if after <= until else []
        result["next_available"] = _slot_view(later[0], calendar, lang) if later else None
    return result


@tool(
    "book_appointment",
    "Book a free slot (a start from check_availability) for the visitor. Needs the name and "
    "an e-mail address or a phone number. Tell the visitor the label and the manage link.",
)
async def book_appointment(ctx: ToolContext, args: BookAppointment) -> dict[str, Any]:
    try:
        calendar = await _calendar(ctx)
        attendee = AttendeeIn(name=args.name, email=args.email, phone=args.phone)
    except NotFound as error:
        return _expected(error)
    except ValueError:
        return _failure(INVALID_CONTACT)
    start = _aware(args.start, calendar.timezone)
    try:
        async with ctx.session.begin_nested():
            appointment = await service.book(
                ctx.session,
                calendar,
                start=start,
                event_type_id=None,
                attendee=attendee,
                notes=args.note,
                source="chat",
                conversation_id=ctx.conversation.id,
                # The same call repeated in this conversation books once.
                idempotency_key=f"chat:{ctx.conversation.id}:{start.isoformat()}",
            )
    except (Conflict, ValidationFailed) as error:
        return await _refused(ctx, calendar, start, error)
    return _appointment_view(appointment, calendar, ctx.agent.language)


@tool(
    "reschedule_appointment",
    "Move an appointment booked in this conversation (appointment_id) or named by the "
    "visitor's manage link (manage_token) to a new free start from check_availability.",
)
async def reschedule_appointment(ctx: ToolContext, args: RescheduleAppointment) -> dict[str, Any]:
    try:
        appointment = await _appointment(ctx, args)
        calendar = await service.get_calendar(ctx.session, appointment.calendar_id)
    except DemandlyError as error:
        return _expected(error)
    start = _aware(args.start, calendar.timezone)
    try:
        async with ctx.session.begin_nested():
            moved = await service.reschedule(ctx.session, appointment, start)
    except (Conflict, ValidationFailed) as error:
        return await _refused(ctx, calendar, start, error)
    return _appointment_view(moved, calendar, ctx.agent.language)


@tool(
    "cancel_appointment",
    "Cancel an appointment booked in this conversation (appointment_id) or named by the "
    "visitor's manage link (manage_token).",
)
async def cancel_appointment(ctx: ToolContext, args: CancelAppointment) -> dict[str, Any]:
    try:
        appointment = await _appointment(ctx, args)
        calendar = await service.get_calendar(ctx.session, appointment.calendar_id)
        async with ctx.session.begin_nested():
            cancelled = await service.cancel(ctx.session, appointment, args.reason)
    except DemandlyError as error:
        return _expected(error)
    return _appointment_view(cancelled, calendar, ctx.agent.language)
