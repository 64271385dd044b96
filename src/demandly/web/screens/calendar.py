"""Dashboard screen: calendar. A client's calendars with a week view, the availability editor
(rules, weekly hours, date overrides, event types, links) and the appointment detail with
cancel, reschedule and outcome. Every change goes through ``booking.service`` with the
API's schemas and the API's permission checks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from demandly.auth.permissions import Permission
from demandly.booking import schemas as s
from demandly.booking import service
from demandly.booking.models import Appointment, AppointmentStatus, Calendar, EventType
from demandly.booking.repository import BookingRepository
from demandly.kit.errors import DemandlyError, NotFound
from demandly.kit.pagination import PageParams, paginate
from demandly.kit.time import utcnow
from demandly.tenancy.models import Client
from demandly.web.deps import Page, PageDep, PageRoute
from demandly.web.forms import (
    FORM_ERROR,
    FormInvalid,
    errors_of,
    fields,
    message_of,
    parse,
    service_errors,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

BASE = "/app/clients/{client_id}/calendar"
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
STATUS_LABELS = {
    "confirmed": "Confirmed",
    "cancelled": "Cancelled",
    "completed": "Completed",
    "no_show": "No-show",
}
SOURCE_LABELS = {"api": "API", "page": "Booking page", "chat": "Chat", "phone": "Phone call"}
STATUS_BADGE = {"confirmed": "ok", "cancelled": "danger", "completed": "", "no_show": "warn"}
LOCATION_KINDS = (("in_person", "In person"), ("phone", "Phone"), ("video", "Video"))
HOLIDAY_REGIONS = (
    ("BW", "Baden-Württemberg"), ("BY", "Bayern"), ("BE", "Berlin"), ("BB", "Brandenburg"),
    ("HB", "Bremen"), ("HH", "Hamburg"), ("HE", "Hessen"), ("MV", "Mecklenburg-Vorpommern"),
    ("NI", "Niedersachsen"), ("NW", "Nordrhein-Westfalen"), ("RP", "Rheinland-Pfalz"),
    ("SL", "Saarland"), ("SN", "Sachsen"), ("ST", "Sachsen-Anhalt"),
    ("SH", "Schleswig-Holstein"), ("TH", "Thüringen"),
)  # fmt: skip
RULE_FIELDS = (
    "name",
    "timezone",
    "buffer_before_minutes",
    "buffer_after_minutes",
    "minimum_notice_minutes",
    "booking_window_days",
)
CLEARABLE_RULES = ("holiday_region", "slot_interval_minutes", "max_bookings_per_day")
MAX_WEEK_ROWS = 500
DASH = "\u2013"  # between the start and end of a time range


def _base(client_id: str) -> str:
    return BASE.format(client_id=client_id)


def _fmt_date(day: date, lang: str) -> str:
    return day.strftime("%d.%m.%Y" if lang == "de" else "%Y-%m-%d")


def _fmt_time(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%H:%M")


async def _calendar_of(page: Page, client: Client, calendar_id: str) -> Calendar:
    """The client's calendar; another client's (or agency's) is not found."""
    calendar = await service.get_calendar(page.session, calendar_id[:64])
    if calendar.client_id != client.id:
        raise NotFound()
    return calendar


async def _appointment_of(page: Page, client: Client, appointment_id: str) -> Appointment:
    appointment = await service.get_appointment(page.session, appointment_id[:64])
    if appointment.client_id != client.id:
        raise NotFound()
    return appointment


def _refusal(error: DemandlyError) -> dict[str, str]:
    """A service's 409/422 as messages on the form; anything else stays an error page."""
    if error.status_code not in (409, 422):
        raise error
    if error.code == "slug_taken":
        return {"slug": error.message}
    return service_errors(error)


# --- week view -----------------------------------------------------------------------------


def week_of(value: str | None, zone: ZoneInfo) -> date:
    """The Monday of the week holding ``value`` (an ISO date), else of today in ``zone``."""
    today = datetime.now(zone).date()
    try:
        day = date.fromisoformat(value) if value else today
    except ValueError:
        day = today
    return day - timedelta(days=day.weekday())


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


@dataclass
class DayColumn:
    day: date
    name: str
    label: str
    is_today: bool
    items: list[dict[str, Any]]


async def _week(page: Page, calendar: Calendar, monday: date) -> list[DayColumn]:
    zone = ZoneInfo(calendar.timezone)
    rows = await BookingRepository(page.session).week_appointments(
        calendar.id,
        local_midnight(monday, zone),
        local_midnight(monday + timedelta(days=7), zone),
        limit=MAX_WEEK_ROWS,
    )
    kinds = {k.id: k.name for k in await service.event_types(page.session, calendar)}
    today = datetime.now(zone).date()
    columns = [
        DayColumn(
            day=monday + timedelta(days=i),
            name=page.t(WEEKDAYS[i]),
            label=_fmt_date(monday + timedelta(days=i), page.lang),
            is_today=monday + timedelta(days=i) == today,
            items=[],
        )
        for i in range(7)
    ]
    for appt in rows:
        local = appt.start_at.astimezone(zone)
        columns[(local.date() - monday).days].items.append(
            {
                "id": appt.id,
                "time": f"{local:%H:%M}{DASH}{_fmt_time(appt.end_at, zone)}",
                "attendee": appt.attendee_name,
                "event_type": kinds.get(appt.event_type_id or "", ""),
                "status": appt.status,
                "status_label": STATUS_LABELS.get(appt.status, appt.status),
                "badge": STATUS_BADGE.get(appt.status, ""),
            }
        )
    return columns


async def _calendars(page: Page, client: Client) -> list[Calendar]:
    repo = BookingRepository(page.session)
    statement = repo.calendars(client.id, page.auth.scope_where(Permission.CONTENT_READ))
    rows, _ = await paginate(page.session, statement, Calendar.id, PageParams(limit=50))
    return list(reversed(rows))  # oldest first: the first calendar made stays the default


@router.get("/app/clients/{client_id}/calendar")
async def calendar_index(
    page: PageDep, client_id: str, calendar: str = "", week: str = ""
) -> Response:
    client = await page.client(client_id, Permission.CONTENT_READ)
    return await _render_index(page, client, calendar, week)


async def _render_index(
    page: Page,
    client: Client,
    calendar_id: str = "",
    week: str = "",
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    calendars = await _calendars(page, client)
    chosen = None
    if calendar_id:
        chosen = await _calendar_of(page, client, calendar_id)
    elif calendars:
        chosen = calendars[0]
    context: dict[str, Any] = {}
    if chosen is not None:
        zone = ZoneInfo(chosen.timezone)
        monday = week_of(week, zone)
        context = {
            "days": await _week(page, chosen, monday),
            "week_label": page.t(
                "Week of {start} to {end}",
                start=_fmt_date(monday, page.lang),
                end=_fmt_date(monday + timedelta(days=6), page.lang),
            ),
            "prev_week": (monday - timedelta(days=7)).isoformat(),
            "next_week": (monday + timedelta(days=7)).isoformat(),
            "this_week": week_of(None, zone).isoformat(),
            "is_this_week": monday == week_of(None, zone),
        }
    return page.render(
        "calendar/index.html",
        status_code=status_code,
        title=page.t("Calendar"),
        section="calendar",
        client=client,
        base=_base(client.id),
        calendars=calendars,
        chosen=chosen,
        can_write=page.can(Permission.CONTENT_WRITE, client.id),
        errors=errors or {},
        values=values or {},
        default_timezone=client.timezone,
        **context,
    )


@router.post("/app/clients/{client_id}/calendar")
async def create_calendar(page: PageDep, client_id: str) -> Response:
    client = await page.client(client_id, Permission.CONTENT_WRITE)
    values = fields(await page.request.form(), "name", "slug", "timezone")
    try:
        data = parse(s.CalendarCreate, {"client_id": client.id, **values})
        calendar = await service.create_calendar(page.session, client, data)
    except FormInvalid as invalid:
        errors = {k: page.t(v) for k, v in invalid.errors.items()}
        return await _render_index(page, client, errors=errors, values=values, status_code=422)
    except DemandlyError as error:
        errors = _refusal(error)
        return await _render_index(page, client, errors=errors, values=values, status_code=422)
    return page.redirect(f"{_base(client.id)}?calendar={calendar.id}", notice="Calendar created.")


# --- availability editor -------------------------------------------------------------------


@dataclass
class EditorState:
    """What the editor shows besides the calendar: the posted values and errors of the one
    form that failed (the other forms show the saved values)."""

    hours: list[dict[str, Any]] | None = None
    hours_errors: dict[str, str] | None = None
    override: dict[str, str] | None = None
    override_errors: dict[str, str] | None = None
    rules: dict[str, Any] | None = None
    rules_errors: dict[str, str] | None = None
    event_type_id: str = ""
    event_type: dict[str, str] | None = None
    event_type_errors: dict[str, str] | None = None


def _hour_rows(raw: list[dict[str, Any]]) -> list[tuple[int, list[tuple[int, dict[str, Any]]]]]:
    """Weekly ranges grouped by weekday, each with its index in the posted list."""
    days: list[tuple[int, list[tuple[int, dict[str, Any]]]]] = [(d, []) for d in range(7)]
    for index, row in enumerate(raw):
        weekday = int(row["weekday"])
        if 0 <= weekday <= 6:
            days[weekday][1].append((index, row))
    return days


def _rules_values(calendar: Calendar) -> dict[str, Any]:
    offsets = service.reminder_offsets(calendar)
    return {
        "name": calendar.name,
        "timezone": calendar.timezone,
        "holiday_region": calendar.holiday_region or "",
        "buffer_before_minutes": calendar.buffer_before_minutes,
        "buffer_after_minutes": calendar.buffer_after_minutes,
        "minimum_notice_minutes": calendar.minimum_notice_minutes,
        "booking_window_days": calendar.booking_window_days,
        "slot_interval_minutes": calendar.slot_interval_minutes,
        "max_bookings_per_day": calendar.max_bookings_per_day,
        "reminder_offsets_minutes": ", ".join(str(m) for m in offsets),
    }


def _public_links(page: Page, calendar: Calendar) -> tuple[str, str]:
    """The booking page and the feed on the host the user is on (the agency's own domain
    keeps its brand), with the paths the booking service makes."""
    origin = page.public_url
    booking = urlsplit(service.booking_url(calendar)).path
    feed = urlsplit(service.feed_url(calendar)).path
    return origin + booking, origin + feed


async def _render_editor(
    page: Page,
    client: Client,
    calendar: Calendar,
    state: EditorState | None = None,
    status_code: int = 200,
) -> Response:
    state = state or EditorState()
    kinds = await service.event_types(page.session, calendar)
    booking_link, feed_link = _public_links(page, calendar)
    hours = state.hours if state.hours is not None else list(calendar.weekly_hours)
    overrides = [
        {
            "date": item["date"],
            "label": _fmt_date(date.fromisoformat(item["date"]), page.lang),
            "ranges": item.get("ranges") or [],
        }
        for item in calendar.date_overrides
    ]
    return page.render(
        "calendar/availability.html",
        status_code=status_code,
        title=page.t("Availability of {name}", name=calendar.name),
        section="calendar",
        client=client,
        base=_base(client.id),
        calendar=calendar,
        weekdays=WEEKDAYS,
        hour_days=_hour_rows(hours),
        hours_errors=state.hours_errors or {},
        overrides=overrides,
        override=state.override or {},
        override_errors=state.override_errors or {},
        rules=state.rules if state.rules is not None else _rules_values(calendar),
        rules_errors=state.rules_errors or {},
        regions=HOLIDAY_REGIONS,
        location_kinds=LOCATION_KINDS,
        event_types=kinds,
        event_type_id=state.event_type_id,
        event_type=state.event_type or {},
        event_type_errors=state.event_type_errors or {},
        booking_link=booking_link,
        feed_link=feed_link,
        can_write=page.can(Permission.CONTENT_WRITE, client.id),
    )


async def _save(page: Page, calendar: Calendar, data: s.CalendarUpdate) -> None:
    await service.update_calendar(page.session, calendar, data)


@router.get("/app/clients/{client_id}/calendar/{calendar_id}/availability")
async def availability(page: PageDep, client_id: str, calendar_id: str) -> Response:
    client = await page.client(client_id, Permission.CONTENT_READ)
    calendar = await _calendar_of(page, client, calendar_id)
    return await _render_editor(page, client, calendar)


async def _writable(page: Page, client_id: str, calendar_id: str) -> tuple[Client, Calendar]:
    client = await page.client(client_id, Permission.CONTENT_WRITE)
    return client, await _calendar_of(page, client, calendar_id)


def _editor_url(client: Client, calendar: Calendar, anchor: str = "") -> str:
    return f"{_base(client.id)}/{calendar.id}/availability{anchor}"


def _posted_hours(form: FormData) -> list[dict[str, Any]]:
    """The weekly ranges of the form (parallel lists); a row without times is left out."""
    rows = []
    for weekday, start, end in zip(
        form.getlist("weekday"), form.getlist("start"), form.getlist("end"), strict=False
    ):
        start, end = str(start).strip(), str(end).strip()
        if (start or end) and str(weekday).isdigit():
            rows.append({"weekday": int(weekday), "start": start, "end": end})
    return rows[: s.MAX_RANGES + 1]


def _hours_errors(page: Page, error: ValidationError, rows: list[dict[str, Any]]) -> dict[str, str]:
    """Messages per range (``row.<index>``) and per day (``day.<weekday>``, for overlaps:
    each day is checked on its own with the same schema to find the one at fault)."""
    errors: dict[str, str] = {}
    for item in error.errors():
        loc = item["loc"]
        if len(loc) >= 2 and loc[0] == "weekly_hours" and isinstance(loc[1], int):
            errors.setdefault(f"row.{loc[1]}", page.t(message_of(item)))
        elif len(loc) == 1 and loc[0] == "weekly_hours":
            errors.setdefault(FORM_ERROR, page.t(message_of(item)))
    for weekday in range(7):
        try:
            s.CalendarUpdate.model_validate(
                {"weekly_hours": [r for r in rows if r["weekday"] == weekday]}
            )
        except ValidationError as day_error:
            if any(not e["loc"] for e in day_error.errors()):
                errors[f"day.{weekday}"] = page.t("The ranges of this day overlap.")
    return errors or {FORM_ERROR: page.t("Please check the form.")}


@router.post("/app/clients/{client_id}/calendar/{calendar_id}/availability/hours")
async def save_hours(page: PageDep, client_id: str, calendar_id: str) -> Response:
    client, calendar = await _writable(page, client_id, calendar_id)
    rows = _posted_hours(await page.request.form())
    try:
        data = s.CalendarUpdate.model_validate({"weekly_hours": rows})
    except ValidationError as error:
        state = EditorState(hours=rows, hours_errors=_hours_errors(page, error, rows))
        return await _render_editor(page, client, calendar, state, status_code=422)
    await _save(page, calendar, data)
    return page.redirect(_editor_url(client, calendar, "#hours"), notice="Saved.")


def _override_errors(page: Page, error: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for item in error.errors():
        loc = [part for part in item["loc"] if part != "date_overrides"]
        message = message_of(item)
        if loc and loc[-1] == "date":
            errors.setdefault("date", page.t(message))
        elif "ranges" in loc and len(loc) >= 3 and isinstance(loc[2], int):
            errors.setdefault(f"range{loc[2] + 1}", page.t(message))
        elif "overlap" in message:
            errors.setdefault("range2", page.t("The ranges overlap."))
        elif "one entry per date" in message:
            errors.setdefault("date", page.t("There is already an entry for this date."))
        else:
            errors.setdefault(FORM_ERROR, page.t(message))
    return errors


@router.post("/app/clients/{client_id}/calendar/{calendar_id}/availability/overrides")
async def add_override(page: PageDep, client_id: str, calendar_id: str) -> Response:
    client, calendar = await _writable(page, client_id, calendar_id)
    posted = fields(await page.request.form(), "date", "start1", "end1", "start2", "end2")
    ranges = [
        {"start": posted.get(f"start{i}", ""), "end": posted.get(f"end{i}", "")}
        for i in (1, 2)
        if posted.get(f"start{i}") or posted.get(f"end{i}")
    ]
    new = {"date": posted.get("date", ""), "ranges": ranges}
    try:
        data = s.CalendarUpdate.model_validate({"date_overrides": [*calendar.date_overrides, new]})
    except ValidationError as error:
        state = EditorState(override=posted, override_errors=_override_errors(page, error))
        return await _render_editor(page, client, calendar, state, status_code=422)
    await _save(page, calendar, data)
    return page.redirect(_editor_url(client, calendar, "#overrides"), notice="Saved.")


@router.post("/app/clients/{client_id}/calendar/{calendar_id}/availability/overrides/remove")
async def remove_override(page: PageDep, client_id: str, calendar_id: str) -> Response:
    client, calendar = await _writable(page, client_id, calendar_id)
    day = str((await page.request.form()).get("date") or "")
    kept = [o for o in calendar.date_overrides if o["date"] != day]
    data = s.CalendarUpdate.model_validate({"date_overrides": kept})
    await _save(page, calendar, data)
    return page.redirect(_editor_url(client, calendar, "#overrides"), notice="Removed.")


def _posted_rules(form: FormData) -> dict[str, Any]:
    data = fields(form, *RULE_FIELDS)
    for name in CLEARABLE_RULES:
        data[name] = str(form.get(name) or "").strip() or None
    reminders = str(form.get("reminder_offsets_minutes") or "")
    parts = [part.strip() for part in reminders.replace(";", ",").split(",") if part.strip()]
    data["reminder_offsets_minutes"] = parts or None
    return data


@router.post("/app/clients/{client_id}/calendar/{calendar_id}/availability/rules")
async def save_rules(page: PageDep, client_id: str, calendar_id: str) -> Response:
    client, calendar = await _writable(page, client_id, calendar_id)
    form = await page.request.form()
    data = _posted_rules(form)
    shown = {**data, "reminder_offsets_minutes": str(form.get("reminder_offsets_minutes") or "")}
    try:
        await _save(page, calendar, parse(s.CalendarUpdate, data))
    except FormInvalid as invalid:
        errors = {k: page.t(v) for k, v in invalid.errors.items()}
        state = EditorState(rules=shown, rules_errors=errors)
        return await _render_editor(page, client, calendar, state, status_code=422)
    except DemandlyError as error:
        state = EditorState(rules=shown, rules_errors=_refusal(error))
        return await _render_editor(page, client, calendar, state, status_code=422)
    return page.redirect(_editor_url(client, calendar, "#rules"), notice="Saved.")


def _event_type_item(kind: EventType) -> dict[str, Any]:
    return {
        "id": kind.id,
        "name": kind.name,
        "duration_minutes": kind.duration_minutes,
        "location_kind": kind.location_kind,
        "location_text": kind.location_text,
    }


async def _save_event_types(
    page: Page,
    client: Client,
    calendar: Calendar,
    items: list[dict[str, Any]],
    failed: tuple[str, dict[str, str]],
) -> Response:
    """Save the calendar's whole list of event types (as the API's PATCH does); a refusal
    shows next to the event type that was being changed (``failed``: its id, its values)."""
    try:
        data = s.CalendarUpdate.model_validate({"event_types": items})
        await _save(page, calendar, data)
    except (ValidationError, DemandlyError) as error:
        if isinstance(error, ValidationError):
            errors = {
                key.removeprefix("event_types."): page.t(msg)
                for key, msg in errors_of(error).items()
            }
            if "event_types" in errors:  # the list itself: it may not become empty
                errors = {FORM_ERROR: page.t("A calendar needs at least one event type.")}
        else:
            errors = _refusal(error)
        state = EditorState(event_type_id=failed[0], event_type=failed[1], event_type_errors=errors)
        return await _render_editor(page, client, calendar, state, status_code=422)
    return page.redirect(_editor_url(client, calendar, "#event-types"), notice="Saved.")


def _posted_event_type(form: FormData) -> dict[str, str]:
    values = fields(form, "name", "duration_minutes", "location_kind", "location_text")
    values.setdefault("name", "")
    values.setdefault("duration_minutes", "")
    return values


@router.post("/app/clients/{client_id}/calendar/{calendar_id}/event-types")
async def add_event_type(page: PageDep, client_id: str, calendar_id: str) -> Response:
    client, calendar = await _writable(page, client_id, calendar_id)
    values = _posted_event_type(await page.request.form())
    existing = [_event_type_item(k) for k in await service.event_types(page.session, calendar)]
    return await _save_event_types(page, client, calendar, [*existing, values], ("new", values))


@router.post("/app/clients/{client_id}/calendar/{calendar_id}/event-types/{event_type_id}")
async def edit_event_type(
    page: PageDep, client_id: str, calendar_id: str, event_type_id: str
) -> Response:
    client, calendar = await _writable(page, client_id, calendar_id)
    values = _posted_event_type(await page.request.form())
    existing = [_event_type_item(k) for k in await service.event_types(page.session, calendar)]
    if event_type_id not in {item["id"] for item in existing}:
        raise NotFound()
    items = [
        {**values, "id": item["id"]} if item["id"] == event_type_id else item for item in existing
    ]
    return await _save_event_types(page, client, calendar, items, (event_type_id, values))


@router.post("/app/clients/{client_id}/calendar/{calendar_id}/event-types/{event_type_id}/delete")
async def delete_event_type(
    page: PageDep, client_id: str, calendar_id: str, event_type_id: str
) -> Response:
    client, calendar = await _writable(page, client_id, calendar_id)
    existing = [_event_type_item(k) for k in await service.event_types(page.session, calendar)]
    if event_type_id not in {item["id"] for item in existing}:
        raise NotFound()
    kept = [item for item in existing if item["id"] != event_type_id]
    return await _save_event_types(page, client, calendar, kept, (event_type_id, {}))


@router.post("/app/clients/{client_id}/calendar/{calendar_id}/feed/rotate")
async def rotate_feed(page: PageDep, client_id: str, calendar_id: str) -> Response:
    client, calendar = await _writable(page, client_id, calendar_id)
    await service.rotate_feed(page.session, calendar)
    return page.redirect(
        _editor_url(client, calendar, "#links"),
        notice="A new feed address was made; the old one no longer works.",
    )


# --- appointment detail --------------------------------------------------------------------


def _reschedule_day(value: str, appointment: Appointment, zone: ZoneInfo) -> date:
    today = datetime.now(zone).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        return max(appointment.start_at.astimezone(zone).date(), today)


async def _free_slots(page: Page, calendar: Calendar, appt: Appointment, day: date) -> list[Any]:
    """The calendar's free slots on ``day`` for the appointment's event type (its first one
    if that type is gone), as the slots API computes them."""
    kinds = {k.id for k in await service.event_types(page.session, calendar)}
    kind_id = appt.event_type_id if appt.event_type_id in kinds else None
    start = datetime.combine(day, time(0))
    try:
        return await service.available_slots(
            page.session, calendar, start, start + timedelta(days=1), event_type_id=kind_id
        )
    except DemandlyError:
        return []


async def _render_appointment(
    page: Page,
    client: Client,
    appt: Appointment,
    day: str = "",
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    calendar = await service.get_calendar(page.session, appt.calendar_id)
    zone = ZoneInfo(calendar.timezone)
    kinds = {k.id: k for k in await service.event_types(page.session, calendar)}
    chosen_day = _reschedule_day(day, appt, zone)
    changeable = appt.status == AppointmentStatus.CONFIRMED
    slots = await _free_slots(page, calendar, appt, chosen_day) if changeable else []
    local_start = appt.start_at.astimezone(zone)
    contact_query = appt.attendee_email or appt.attendee_phone or appt.attendee_name
    return page.render(
        "calendar/appointment.html",
        status_code=status_code,
        title=page.t("Appointment with {name}", name=appt.attendee_name),
        section="calendar",
        client=client,
        base=_base(client.id),
        appt=appt,
        calendar=calendar,
        kind=kinds.get(appt.event_type_id or ""),
        when=f"{_fmt_date(local_start.date(), page.lang)} {local_start:%H:%M}{DASH}"
        f"{_fmt_time(appt.end_at, zone)}",
        week=(local_start.date() - timedelta(days=local_start.weekday())).isoformat(),
        badge=STATUS_BADGE.get(appt.status, ""),
        status_label=STATUS_LABELS.get(appt.status, appt.status),
        source_label=SOURCE_LABELS.get(appt.source, appt.source),
        contact_url=(
            f"/app/clients/{client.id}/leads?q={quote(contact_query)}" if appt.contact_id else None
        ),
        changeable=changeable,
        outcomes=[v for v in ("confirmed", "completed", "no_show") if v != appt.status],
        day=chosen_day.isoformat(),
        slots=[
            {"value": slot.start.isoformat(), "label": _fmt_time(slot.start, zone)}
            for slot in slots
        ],
        errors=errors or {},
        can_write=page.can(Permission.CONTENT_WRITE, client.id),
        is_past=appt.end_at <= utcnow(),
    )


@router.get("/app/clients/{client_id}/calendar/appointments/{appointment_id}")
async def appointment_detail(
    page: PageDep, client_id: str, appointment_id: str, day: str = ""
) -> Response:
    client = await page.client(client_id, Permission.CONTENT_READ)
    appt = await _appointment_of(page, client, appointment_id)
    return await _render_appointment(page, client, appt, day)


async def _act(
    page: Page, client_id: str, appointment_id: str
) -> tuple[Client, Appointment, FormData]:
    client = await page.client(client_id, Permission.CONTENT_WRITE)
    appt = await _appointment_of(page, client, appointment_id)
    return client, appt, await page.request.form()


def _detail_url(client: Client, appt: Appointment) -> str:
    return f"{_base(client.id)}/appointments/{appt.id}"


@router.post("/app/clients/{client_id}/calendar/appointments/{appointment_id}/cancel")
async def cancel_appointment(page: PageDep, client_id: str, appointment_id: str) -> Response:
    client, appt, form = await _act(page, client_id, appointment_id)
    try:
        data = parse(s.Cancel, fields(form, "reason"))
        await service.cancel(page.session, appt, data.reason)
    except FormInvalid as invalid:
        return await _render_appointment(page, client, appt, errors=invalid.errors, status_code=422)
    except DemandlyError as error:
        if error.status_code not in (409, 422):
            raise
        errors = {"cancel": page.t(error.message)}
        return await _render_appointment(page, client, appt, errors=errors, status_code=422)
    return page.redirect(_detail_url(client, appt), notice="Appointment cancelled.")


@router.post("/app/clients/{client_id}/calendar/appointments/{appointment_id}/reschedule")
async def reschedule_appointment(page: PageDep, client_id: str, appointment_id: str) -> Response:
    client, appt, form = await _act(page, client_id, appointment_id)
    day = str(form.get("day") or "")
    try:
        data = parse(s.Reschedule, fields(form, "start"))
        await service.reschedule(page.session, appt, data.start)
    except FormInvalid as invalid:
        errors = {"start": page.t("Choose a free time.")} if invalid.errors else {}
        return await _render_appointment(page, client, appt, day, errors, status_code=422)
    except DemandlyError as error:
        if error.status_code not in (409, 422):
            raise
        errors = {"start": page.t(error.message)}
        return await _render_appointment(page, client, appt, day, errors, status_code=422)
    return page.redirect(_detail_url(client, appt), notice="Appointment moved.")


@router.post("/app/clients/{client_id}/calendar/appointments/{appointment_id}/status")
async def set_outcome(page: PageDep, client_id: str, appointment_id: str) -> Response:
    client, appt, form = await _act(page, client_id, appointment_id)
    try:
        data = parse(s.AppointmentUpdate, fields(form, "status"))
        await service.update_appointment(page.session, appt, data)
    except FormInvalid as invalid:
        return await _render_appointment(page, client, appt, errors=invalid.errors, status_code=422)
    except DemandlyError as error:
        if error.status_code not in (409, 422):
            raise
        errors = {"status": page.t(error.message)}
        return await _render_appointment(page, client, appt, errors=errors, status_code=422)
    return page.redirect(_detail_url(client, appt), notice="Saved.")
