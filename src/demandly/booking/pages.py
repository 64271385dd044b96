"""The public booking page ``/book/{slug}`` and the attendee's manage page
``/book/manage/{token}``: server-rendered HTML in the agency's brand, German or English.

The whole flow works without JavaScript: days, weeks and slots are plain links; booking,
cancelling and rescheduling are POST forms. Every form carries a signed token
(``links.sign("form", "{calendar_id}:{nonce}", expires)``): a forged or stale form books
nothing, and the nonce is the booking's idempotency key, so a double submit books once.
POSTs are rate-limited per IP. The pages set no cookies and keep the strict CSP (no inline
script or style): the brand colours come as CSS variables from a stylesheet of their own
(``/book/{slug}/brand.css``), and the optional script only stops double clicks.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.auth.dependencies import get_database, request_actor
from demandly.booking import links, service
from demandly.booking.availability import Slot
from demandly.booking.models import Appointment, AppointmentStatus, Calendar, EventType
from demandly.booking.schemas import AttendeeIn
from demandly.kit.context import Actor, Scope
from demandly.kit.errors import Conflict, DemandlyError, Gone, NotFound, ValidationFailed
from demandly.kit.http import client_ip
from demandly.kit.ratelimit import RateLimiter
from demandly.kit.time import utcnow
from demandly.tenancy.branding import Brand, brand_of, contrast_color
from demandly.tenancy.models import Agency, Client

router = APIRouter(include_in_schema=False)
HERE = Path(__file__).parent
STATIC = HERE / "static"
STATIC_TYPES = {"booking.css": "text/css; charset=utf-8", "booking.js": "text/javascript"}
WINDOW_DAYS = 14
FORM_TTL = timedelta(hours=2)
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
MAX_NOTE = 2000
MAX_REASON = 500

# Per client IP: every POST of these pages (book, cancel, reschedule).
form_posts_per_ip = RateLimiter(rate_per_minute=20, burst=10)

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


# --- language ------------------------------------------------------------------------------

WEEKDAYS = {
    "de": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
MONTHS = {
    "de": (
        "Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September",
        "Oktober", "November", "Dezember",
    ),
    "en": (
        "January", "February", "March", "April", "May", "June", "July", "August", "September",
        "October", "November", "December",
    ),
}  # fmt: skip

TEXTS: dict[str, dict[str, str]] = {
    "de": {
        "book_title": "Termin buchen",
        "pick_day": "Tag wählen",
        "pick_time": "Uhrzeit wählen",
        "times_in": "Alle Zeiten in der Zeitzone {tz}.",
        "minutes": "{n} Minuten",
        "free": "{n} frei",
        "full": "belegt",
        "no_slots_day": "An diesem Tag ist kein Termin mehr frei.",
        "no_slots_window": "In diesen zwei Wochen ist kein Termin frei. "
        "Bitte sehen Sie in den nächsten Wochen nach.",
        "weeks": "Wochen",
        "prev_week": "Vorherige Woche",
        "next_week": "Nächste Woche",
        "event_types": "Terminart",
        "your_details": "Ihre Angaben",
        "chosen": "Ihr Termin",
        "other_time": "Andere Uhrzeit wählen",
        "name": "Name",
        "email": "E-Mail",
        "phone": "Telefon (optional)",
        "note": "Nachricht (optional)",
        "book_button": "Termin verbindlich buchen",
        "privacy_hint": "Wir verwenden Ihre Angaben nur für diesen Termin.",
        "privacy": "Datenschutz",
        "imprint": "Impressum",
        "errors_title": "Bitte prüfen Sie Ihre Angaben.",
        "err_name": "Bitte geben Sie Ihren Namen an.",
        "err_email": "Bitte geben Sie eine gültige E-Mail-Adresse an.",
        "err_phone": "Bitte geben Sie eine gültige Telefonnummer an.",
        "err_note": "Die Nachricht ist zu lang (höchstens 2000 Zeichen).",
        "err_reason": "Der Grund ist zu lang (höchstens 500 Zeichen).",
        "slot_taken": "Dieser Termin ist leider gerade vergeben worden. "
        "Bitte wählen Sie einen anderen.",
        "form_expired": "Das Formular war zu lange offen. Bitte bestätigen Sie noch einmal.",
        "booked_title": "Ihr Termin ist gebucht",
        "booked_text": "Eine Bestätigung geht an {email}.",
        "manage_hint": "Über diesen Link können Sie den Termin später verschieben oder absagen:",
        "manage_title": "Ihr Termin",
        "when": "Wann",
        "what": "Was",
        "where": "Wo",
        "who": "Für",
        "status": "Status",
        "status_confirmed": "bestätigt",
        "status_cancelled": "abgesagt",
        "status_completed": "stattgefunden",
        "status_no_show": "nicht erschienen",
        "reschedule": "Termin verschieben",
        "reschedule_title": "Neuen Termin wählen",
        "move_question": "Termin auf {when} verschieben?",
        "move_button": "Ja, verschieben",
        "back": "Zurück",
        "cancel_title": "Termin absagen",
        "cancel_reason": "Grund (optional)",
        "cancel_button": "Termin absagen",
        "cancelled_notice": "Der Termin ist abgesagt.",
        "moved_notice": "Der Termin ist verschoben.",
        "not_changeable": "Dieser Termin kann hier nicht mehr geändert werden.",
        "link_invalid_title": "Dieser Link ist ungültig",
        "link_invalid_text": "Bitte prüfen Sie, ob Sie den Link vollständig übernommen haben.",
        "link_expired_title": "Dieser Link ist abgelaufen",
        "link_expired_text": "Der Termin liegt zu lange zurück, um ihn hier noch zu ändern.",
        "not_found_title": "Seite nicht gefunden",
        "not_found_text": "Unter dieser Adresse gibt es keine Terminbuchung.",
        "too_many_title": "Zu viele Versuche",
        "too_many_text": "Bitte warten Sie {seconds} Sekunden und versuchen Sie es dann erneut.",
        "bad_request_title": "Das hat nicht geklappt",
        "bad_request_text": "Die Anfrage war unvollständig. Bitte beginnen Sie von vorn.",
        "start_over": "Zur Terminauswahl",
        "in_person": "vor Ort",
        "phone_call": "Telefon",
        "video": "Video",
        "clock": "{h:02d}:{m:02d}",
        "day_short": "{weekday_short}, {day}. {month_short}",
        "day_long": "{weekday}, {day}. {month} {year}",
    },
    "en": {
        "book_title": "Book an appointment",
        "pick_day": "Choose a day",
        "pick_time": "Choose a time",
        "times_in": "All times in the {tz} time zone.",
        "minutes": "{n} minutes",
        "free": "{n} free",
        "full": "full",
        "no_slots_day": "No time is free on this day any more.",
        "no_slots_window": "No time is free in these two weeks. Please look at the next weeks.",
        "weeks": "Weeks",
        "prev_week": "Previous week",
        "next_week": "Next week",
        "event_types": "Appointment type",
        "your_details": "Your details",
        "chosen": "Your appointment",
        "other_time": "Choose another time",
        "name": "Name",
        "email": "E-mail",
        "phone": "Phone (optional)",
        "note": "Message (optional)",
        "book_button": "Book this appointment",
        "privacy_hint": "We use your details for this appointment only.",
        "privacy": "Privacy policy",
        "imprint": "Legal notice",
        "errors_title": "Please check your details.",
        "err_name": "Please enter your name.",
        "err_email": "Please enter a valid e-mail address.",
        "err_phone": "Please enter a valid phone number.",
        "err_note": "The message is too long (2000 characters at most).",
        "err_reason": "The reason is too long (500 characters at most).",
        "slot_taken": "Sorry, this time has just been taken. Please choose another one.",
        "form_expired": "The form was open for too long. Please confirm once more.",
        "booked_title": "Your appointment is booked",
        "booked_text": "A confirmation is on its way to {email}.",
        "manage_hint": "With this link you can reschedule or cancel the appointment later:",
        "manage_title": "Your appointment",
        "when": "When",
        "what": "What",
        "where": "Where",
        "who": "For",
        "status": "Status",
        "status_confirmed": "confirmed",
        "status_cancelled": "cancelled",
        "status_completed": "took place",
        "status_no_show": "missed",
        "reschedule": "Reschedule",
        "reschedule_title": "Choose a new time",
        "move_question": "Move the appointment to {when}?",
        "move_button": "Yes, move it",
        "back": "Back",
        "cancel_title": "Cancel the appointment",
        "cancel_reason": "Reason (optional)",
        "cancel_button": "Cancel appointment",
        "cancelled_notice": "The appointment is cancelled.",
        "moved_notice": "The appointment has been moved.",
        "not_changeable": "This appointment can no longer be changed here.",
        "link_invalid_title": "This link is not valid",
        "link_invalid_text": "Please check that you copied the whole link.",
        "link_expired_title": "This link has expired",
        "link_expired_text": "The appointment is too long ago to change it here.",
        "not_found_title": "Page not found",
        "not_found_text": "There is no appointment booking at this address.",
        "too_many_title": "Too many attempts",
        "too_many_text": "Please wait {seconds} seconds and try again.",
        "bad_request_title": "That did not work",
        "bad_request_text": "The request was incomplete. Please start again.",
        "start_over": "Back to the times",
        "in_person": "in person",
        "phone_call": "phone",
        "video": "video",
        "clock": "{h12}:{m:02d} {ampm}",
        "day_short": "{weekday_short} {day} {month_short}",
        "day_long": "{weekday}, {day} {month} {year}",
    },
}
LOCATION_TEXT = {"in_person": "in_person", "phone": "phone_call", "video": "video"}


def language(wanted: str | None, default: str | None) -> str:
    """ "de" or "en": the ``?lang=`` override if it names one, else the client's locale."""
    for code in (wanted, default):
        if code and code[:2].lower() in TEXTS:
            return code[:2].lower()
    return "de"


def _clock(moment: datetime, lang: str) -> str:
    return TEXTS[lang]["clock"].format(
        h=moment.hour,
        h12=moment.hour % 12 or 12,
        m=moment.minute,
        ampm="am" if moment.hour < 12 else "pm",
    )


def human_day(day: date, lang: str) -> str:
    """ "Dienstag, 8. Dezember 2026" / "Tuesday, 8 December 2026"."""
    return TEXTS[lang]["day_long"].format(
        weekday=WEEKDAYS[lang][day.weekday()],
        day=day.day,
        month=MONTHS[lang][day.month - 1],
        year=day.year,
    )


def day_label(day: date, lang: str) -> str:
    """Short: "Di, 8. Dez" / "Tue 8 Dec"."""
    return TEXTS[lang]["day_short"].format(
        weekday_short=WEEKDAYS[lang][day.weekday()][: 2 if lang == "de" else 3],
        day=day.day,
        month_short=MONTHS[lang][day.month - 1][:3],
    )


# --- static files and the brand stylesheet --------------------------------------------------


@lru_cache(maxsize=4)
def _static(name: str) -> bytes:
    return (STATIC / name).read_bytes()


@router.get("/book/static/{name}")
async def static_file(name: str) -> Response:
    if name not in STATIC_TYPES:
        return Response(status_code=404)
    return Response(
        _static(name),
        media_type=STATIC_TYPES[name],
        headers={"Cache-Control": "public, max-age=300"},
    )


@router.get("/book/{slug}/brand.css")
async def brand_css(slug: str, request: Request) -> Response:
    found = await _find_calendar(request, slug)
    if found is None:
        return Response(status_code=404)
    brand = brand_of(found.agency, found.client)
    body = (
        ":root {\n"
        f"  --brand: {brand.primary};\n  --brand-text: {contrast_color(brand.primary)};\n"
        f"  --accent: {brand.accent};\n  --accent-text: {contrast_color(brand.accent)};\n}}\n"
    )
    return Response(
        body, media_type="text/css; charset=utf-8", headers={"Cache-Control": "public, max-age=60"}
    )


# --- loading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    calendar: Calendar
    event_types: list[EventType]
    client: Client
    agency: Agency

    @property
    def scope(self) -> Scope:
        return Scope.for_client(self.calendar.agency_id, self.calendar.client_id)

    def event_type(self, wanted: str | None) -> EventType | None:
        for event_type in self.event_types:
            if event_type.id == wanted:
                return event_type
        return self.event_types[0] if self.event_types else None


async def _find_calendar(request: Request, slug: str) -> Found | None:
    async with get_database(request).session(Scope.for_system()) as session:
        try:
            calendar = await service.get_calendar_by_slug(session, slug)
        except NotFound:
            return None
        return await _found(session, calendar)


async def _found(session: AsyncSession, calendar: Calendar) -> Found:
    client = await session.get(Client, calendar.client_id)
    agency = await session.get(Agency, calendar.agency_id)
    assert client is not None and agency is not None  # foreign keys
    event_types = await service.event_types(session, calendar)
    return Found(calendar=calendar, event_types=event_types, client=client, agency=agency)


def _visitor(request: Request) -> Actor:
    return request_actor(request, kind="visitor")


# --- rendering -----------------------------------------------------------------------------


def render(
    template: str,
    lang: str,
    brand: Brand | None,
    status: int = 200,
    *,
    slug: str | None = None,
    **values: Any,
) -> HTMLResponse:
    page = templates.get_template(template).render(
        t=TEXTS[lang], lang=lang, brand=brand, slug=slug, **values
    )
    return HTMLResponse(page, status_code=status, headers=NO_STORE)


def message_page(
    lang: str,
    brand: Brand | None,
    status: int,
    key: str,
    *,
    slug: str | None = None,
    back_url: str | None = None,
    **values: Any,
) -> HTMLResponse:
    """A plain page that says what went wrong ("{key}_title", "{key}_text")."""
    texts = TEXTS[lang]
    return render(
        "message.html",
        lang,
        brand,
        status,
        slug=slug,
        title=texts[f"{key}_title"],
        text=texts[f"{key}_text"].format(**values),
        back_url=back_url,
    )


def _error_page(error: DemandlyError, lang: str, brand: Brand | None, **kw: Any) -> HTMLResponse:
    if isinstance(error, Gone):
        return message_page(lang, brand, 410, "link_expired", **kw)
    if error.status_code == 429:
        seconds = (error.details or {}).get("retry_after", 60)
        page = message_page(lang, brand, 429, "too_many", seconds=seconds, **kw)
        page.headers.update(error.headers)
        return page
    if isinstance(error, NotFound):
        return message_page(lang, brand, 404, "link_invalid", **kw)
    return message_page(lang, brand, error.status_code, "bad_request", **kw)


def _request_lang(request: Request) -> str:
    accept = request.headers.get("accept-language", "")
    return language(request.query_params.get("lang"), accept or None)


# --- the day and slot picker ---------------------------------------------------------------


@dataclass(frozen=True)
class DayCell:
    label: str
    free: int
    url: str | None
    selected: bool


@dataclass(frozen=True)
class SlotLink:
    label: str
    url: str


@dataclass
class Picker:
    days: list[DayCell] = field(default_factory=list)
    slots: list[SlotLink] = field(default_factory=list)
    day_title: str | None = None
    prev_url: str | None = None
    next_url: str | None = None
    any_free: bool = False


def _parse_date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value and len(value) == 10 else None
    except ValueError:
        return None


def parse_start(value: str | None, timezone: str) -> datetime | None:
    """An ISO start from a form or a link; a naive one is in the calendar's time zone."""
    if not value or len(value) > 40:
        return None
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ZoneInfo(timezone))
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):  # not a time, or one at the edge of the calendar
        return None


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


async def build_picker(
    session: AsyncSession,
    found: Found,
    event_type: EventType,
    lang: str,
    *,
    window_from: str | None,
    selected: str | None,
    nav_url: Callable[[date, date | None], str],
    slot_url: Callable[[Slot], str],
) -> Picker:
    """Fourteen days from ``window_from`` (today by default), with their free slots; the
    selected day (or the first with free slots) lists its times."""
    calendar = found.calendar
    zone = ZoneInfo(calendar.timezone)
    today = utcnow().astimezone(zone).date()
    last = today + timedelta(days=calendar.booking_window_days)
    start_day = min(max(_parse_date(window_from) or today, today), last)
    days = [start_day + timedelta(days=i) for i in range(WINDOW_DAYS)]
    slots = await service.available_slots(
        session,
        calendar,
        _local_midnight(days[0], zone),
        _local_midnight(days[-1] + timedelta(days=1), zone),
        event_type_id=event_type.id,
        tz=calendar.timezone,
    )
    by_day: dict[date, list[Slot]] = {}
    for slot in slots:
        by_day.setdefault(slot.start.astimezone(zone).date(), []).append(slot)
    chosen = _parse_date(selected)
    if chosen not in by_day:
        chosen = min(by_day) if by_day else None
    picker = Picker(any_free=bool(by_day))
    for day in days:
        free = len(by_day.get(day, ()))
        picker.days.append(
            DayCell(
                label=day_label(day, lang),
                free=free,
                url=nav_url(start_day, day) if free else None,
                selected=day == chosen,
            )
        )
    if chosen is not None:
        picker.day_title = human_day(chosen, lang)
        picker.slots = [
            SlotLink(label=_clock(s.start.astimezone(zone), lang), url=slot_url(s))
            for s in by_day[chosen]
        ]
    if start_day > today:
        picker.prev_url = nav_url(max(today, start_day - timedelta(days=7)), None)
    if start_day + timedelta(days=7) <= last:
        picker.next_url = nav_url(start_day + timedelta(days=7), None)
    return picker


def _query(**values: str | None) -> str:
    present = {k: v for k, v in values.items() if v}
    return f"?{urlencode(present)}" if present else ""


def _iso_local(moment: datetime, timezone: str) -> str:
    return moment.astimezone(ZoneInfo(timezone)).isoformat()


# --- form tokens ---------------------------------------------------------------------------


def form_token(calendar_id: str) -> str:
    """A fresh signed form token: the calendar, a nonce, two hours of validity."""
    nonce = secrets.token_urlsafe(12)
    return links.sign("form", f"{calendar_id}:{nonce}", utcnow() + FORM_TTL)


def check_form_token(token: str, calendar_id: str) -> str | None:
    """The nonce of a genuine, unexpired token for this calendar; None otherwise."""
    try:
        claims = links.verify(token, "form")
    except (NotFound, Gone):
        return None
    owner, _, nonce = claims.subject.partition(":")
    return nonce if owner == calendar_id and nonce else None


def _rate_limit(request: Request) -> None:
    form_posts_per_ip.check(f"ip:{client_ip(request)}")


# --- the booking page ----------------------------------------------------------------------


@dataclass(frozen=True)
class Details:
    """What the visitor typed (kept for re-rendering) and what was wrong with it."""

    name: str = ""
    email: str = ""
    phone: str = ""
    note: str = ""
    errors: dict[str, str] = field(default_factory=dict)
    attendee: AttendeeIn | None = None


def _details(form: Mapping[str, Any], lang: str) -> Details:
    """The form's fields, checked by the booking schema's own rules; messages in ``lang``."""

    def text(key: str, limit: int) -> str:
        value = form.get(key)
        return value.strip()[:limit] if isinstance(value, str) else ""

    name, email, phone, note = (
        text("name", 300),
        text("email", 400),
        text("phone", 60),
        text("note", MAX_NOTE + 1),
    )
    texts = TEXTS[lang]
    errors: dict[str, str] = {}
    attendee = None
    try:
        attendee = AttendeeIn(name=name, email=email or None, phone=phone or None)
    except ValidationError as exc:
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else "email"
            errors.setdefault(key, texts.get(f"err_{key}", ""))
    if not email:  # the page sends the confirmation and the manage link by e-mail
        errors["email"] = texts["err_email"]
    if len(note) > MAX_NOTE:
        errors["note"] = texts["err_note"]
    errors = {key: message for key, message in errors.items() if message}
    return Details(
        name=name,
        email=email,
        phone=phone,
        note=note,
        errors=errors,
        attendee=None if errors else attendee,
    )


@router.get("/book/{slug}")
async def booking_page(slug: str, request: Request) -> HTMLResponse:
    found = await _find_calendar(request, slug)
    if found is None:
        return message_page(_request_lang(request), None, 404, "not_found")
    lang = language(request.query_params.get("lang"), found.client.locale)
    event_type = found.event_type(request.query_params.get("event"))
    if event_type is None:
        return message_page(lang, brand_of(found.agency, found.client), 404, "not_found")
    return await _render_booking(
        request,
        found,
        event_type,
        lang,
        window_from=request.query_params.get("from"),
        selected=request.query_params.get("day"),
    )


async def _render_booking(
    request: Request,
    found: Found,
    event_type: EventType,
    lang: str,
    *,
    window_from: str | None,
    selected: str | None,
    notice: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    slug = found.calendar.slug
    event = event_type.id if len(found.event_types) > 1 else None

    def nav_url(start: date, day: date | None) -> str:
        return f"/book/{slug}" + _query(
            lang=lang, event=event, day=day and day.isoformat(), **{"from": start.isoformat()}
        )

    def slot_url(slot: Slot) -> str:
        start = _iso_local(slot.start, found.calendar.timezone)
        return f"/book/{slug}/details" + _query(lang=lang, event=event, start=start)

    async with get_database(request).session(found.scope) as session:
        picker = await build_picker(
            session,
            found,
            event_type,
            lang,
            window_from=window_from,
            selected=selected,
            nav_url=nav_url,
            slot_url=slot_url,
        )
    types = [
        {
            "name": e.name,
            "url": f"/book/{slug}" + _query(lang=lang, event=e.id),
            "current": e is event_type,
        }
        for e in found.event_types
    ]
    return render(
        "book.html",
        lang,
        brand_of(found.agency, found.client),
        status,
        slug=slug,
        calendar=found.calendar,
        client=found.client,
        event_type=event_type,
        event_types=types if len(types) > 1 else [],
        picker=picker,
        notice=notice,
        location=_location(event_type, lang),
    )


def _location(event_type: EventType, lang: str) -> str:
    kind = TEXTS[lang][LOCATION_TEXT.get(event_type.location_kind, "in_person")]
    return f"{kind}: {event_type.location_text}" if event_type.location_text else kind


@router.get("/book/{slug}/details")
async def details_page(slug: str, request: Request) -> HTMLResponse:
    found = await _find_calendar(request, slug)
    if found is None:
        return message_page(_request_lang(request), None, 404, "not_found")
    lang = language(request.query_params.get("lang"), found.client.locale)
    event_type = found.event_type(request.query_params.get("event"))
    start = parse_start(request.query_params.get("start"), found.calendar.timezone)
    brand = brand_of(found.agency, found.client)
    if event_type is None or start is None:
        return message_page(lang, brand, 400, "bad_request", back_url=f"/book/{slug}?lang={lang}")
    return _render_details(found, event_type, lang, start, Details(), form_token(found.calendar.id))


def _render_details(
    found: Found,
    event_type: EventType,
    lang: str,
    start: datetime,
    details: Details,
    token: str,
    *,
    notice: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    calendar = found.calendar
    event = event_type.id if len(found.event_types) > 1 else None
    local = start.astimezone(ZoneInfo(calendar.timezone))
    back = f"/book/{calendar.slug}" + _query(
        lang=lang, event=event, day=local.date().isoformat(), **{"from": local.date().isoformat()}
    )
    return render(
        "details.html",
        lang,
        brand_of(found.agency, found.client),
        status,
        slug=calendar.slug,
        calendar=calendar,
        client=found.client,
        event_type=event_type,
        location=_location(event_type, lang),
        when=service.format_when(start, calendar.timezone, lang),
        start=local.isoformat(),
        event=event_type.id,
        token=token,
        details=details,
        back_url=back,
        notice=notice,
    )


@router.post("/book/{slug}")
async def book(slug: str, request: Request) -> Response:
    """Book the chosen slot; answers with a redirect to the manage page (which confirms)."""
    lang = _request_lang(request)
    try:
        _rate_limit(request)
    except DemandlyError as error:
        return _error_page(error, lang, None)
    found = await _find_calendar(request, slug)
    if found is None:
        return message_page(lang, None, 404, "not_found")
    form = await request.form()
    lang = language(_field(form, "lang"), found.client.locale)
    brand = brand_of(found.agency, found.client)
    event_type = found.event_type(_field(form, "event"))
    start = parse_start(_field(form, "start"), found.calendar.timezone)
    if event_type is None or start is None:
        return message_page(lang, brand, 400, "bad_request", back_url=f"/book/{slug}?lang={lang}")
    details = _details(form, lang)
    nonce = check_form_token(_field(form, "token") or "", found.calendar.id)
    fresh = form_token(found.calendar.id)
    if details.errors:
        return _render_details(found, event_type, lang, start, details, fresh, status=422)
    if nonce is None:
        notice = TEXTS[lang]["form_expired"]
        return _render_details(found, event_type, lang, start, details, fresh, notice=notice)
    try:
        appointment = await _book(request, found, event_type, start, details, nonce)
    except ValidationFailed as error:
        wrong = _attendee_field(error)
        if wrong is None:
            return await _slot_taken(request, found, event_type, lang, start)
        details = replace(details, errors={wrong: TEXTS[lang][f"err_{wrong}"]})
        return _render_details(found, event_type, lang, start, details, fresh, status=422)
    except Conflict:
        return await _slot_taken(request, found, event_type, lang, start)
    token = links.manage_token(appointment)
    return RedirectResponse(
        f"/book/manage/{token}" + _query(lang=lang, booked="1"), status_code=303, headers=NO_STORE
    )


def _attendee_field(error: ValidationFailed) -> str | None:
    """The attendee field a service validation error names ("attendee.phone" -> "phone")."""
    for item in error.details or ():
        name = str(item.get("field", ""))
        if name.startswith("attendee.") and f"err_{name[9:]}" in TEXTS["en"]:
            return name[9:]
    return None


async def _slot_taken(
    request: Request, found: Found, event_type: EventType, lang: str, start: datetime
) -> HTMLResponse:
    """The day's picker again, with the news that the chosen time is gone."""
    local_day = start.astimezone(ZoneInfo(found.calendar.timezone)).date().isoformat()
    return await _render_booking(
        request,
        found,
        event_type,
        lang,
        window_from=local_day,
        selected=local_day,
        notice=TEXTS[lang]["slot_taken"],
        status=409,
    )


def _field(form: Mapping[str, Any], key: str) -> str | None:
    value = form.get(key)
    return value if isinstance(value, str) else None


async def _book(
    request: Request,
    found: Found,
    event_type: EventType,
    start: datetime,
    details: Details,
    nonce: str,
) -> Appointment:
    attendee = details.attendee
    assert attendee is not None  # only valid details are booked
    async with get_database(request).session(found.scope, _visitor(request)) as session:
        appointment = await service.book(
            session,
            found.calendar,
            start=start,
            event_type_id=event_type.id,
            attendee=attendee,
            notes=details.note or None,
            source="page",
            idempotency_key=f"page:{nonce}",
        )
        await session.commit()
    return appointment


# --- the manage page -----------------------------------------------------------------------


@dataclass(frozen=True)
class Managed:
    appointment: Appointment
    found: Found
    lang: str

    @property
    def brand(self) -> Brand:
        return brand_of(self.found.agency, self.found.client)

    @property
    def event_type(self) -> EventType | None:
        wanted = self.appointment.event_type_id
        return next((e for e in self.found.event_types if e.id == wanted), None)

    @property
    def changeable(self) -> bool:
        return (
            self.appointment.status == AppointmentStatus.CONFIRMED
            and self.appointment.start_at > utcnow()
        )


async def _managed(request: Request, token: str, wanted_lang: str | None) -> Managed:
    """The appointment a manage token names; NotFound / Gone for a bad or stale token."""
    async with get_database(request).session(Scope.for_system()) as session:
        appointment = await service.appointment_by_token(session, token)
        calendar = await service.get_calendar(session, appointment.calendar_id)
        found = await _found(session, calendar)
    return Managed(appointment, found, language(wanted_lang, found.client.locale))


def _manage_url(token: str, lang: str, action: str = "", **values: str) -> str:
    """``/book/manage/{token}[/action]?lang=…``: the manage page or one of its steps."""
    return f"/book/manage/{token}{action}" + _query(lang=lang, **values)


@router.get("/book/manage/{token}")
async def manage_page(token: str, request: Request) -> HTMLResponse:
    try:
        managed = await _managed(request, token, request.query_params.get("lang"))
    except DemandlyError as error:
        return _error_page(error, _request_lang(request), None)
    return _render_manage(managed, token, request.query_params)


def _render_manage(
    managed: Managed,
    token: str,
    query: Mapping[str, str],
    status: int = 200,
    *,
    warning: str | None = None,
) -> HTMLResponse:
    """The appointment; ``query`` flags what just happened (booked, moved, cancelled)."""
    appointment, lang = managed.appointment, managed.lang
    calendar = managed.found.calendar
    texts = TEXTS[lang]
    notices = [
        texts[key]
        for flag, key in (("moved", "moved_notice"), ("cancelled", "cancelled_notice"))
        if query.get(flag)
    ]
    event_type = managed.event_type
    return render(
        "manage.html",
        lang,
        managed.brand,
        status,
        slug=calendar.slug,
        appointment=appointment,
        client=managed.found.client,
        event_type=event_type,
        location=_location(event_type, lang) if event_type else None,
        when=service.format_when(appointment.start_at, calendar.timezone, lang),
        status_text=texts.get(f"status_{appointment.status}", appointment.status),
        booked=bool(query.get("booked")),
        notices=notices,
        warning=warning and texts[warning],
        manage_url=service.manage_url(appointment),
        changeable=managed.changeable,
        form_token=form_token(calendar.id),
        cancel_action=f"/book/manage/{token}/cancel",
        reschedule_url=_manage_url(token, lang, "/reschedule"),
    )


@router.post("/book/manage/{token}/cancel")
async def cancel(token: str, request: Request) -> Response:
    form = await request.form()
    try:
        _rate_limit(request)
        managed = await _managed(request, token, _field(form, "lang"))
    except DemandlyError as error:
        return _error_page(error, _request_lang(request), None)
    lang = managed.lang
    reason = (_field(form, "reason") or "").strip()
    if not managed.changeable:
        return _render_manage(managed, token, {}, status=409)
    if check_form_token(_field(form, "token") or "", managed.found.calendar.id) is None:
        return _render_manage(managed, token, {}, status=400, warning="form_expired")
    if len(reason) > MAX_REASON:
        return _render_manage(managed, token, {}, status=422, warning="err_reason")
    async with get_database(request).session(managed.found.scope, _visitor(request)) as session:
        appointment = await service.get_appointment(session, managed.appointment.id)
        await service.cancel(session, appointment, reason or None)
        await session.commit()
    return RedirectResponse(
        _manage_url(token, lang, cancelled="1"), status_code=303, headers=NO_STORE
    )


@router.get("/book/manage/{token}/reschedule")
async def reschedule_page(token: str, request: Request) -> HTMLResponse:
    try:
        managed = await _managed(request, token, request.query_params.get("lang"))
    except DemandlyError as error:
        return _error_page(error, _request_lang(request), None)
    if not managed.changeable or managed.event_type is None:
        return _render_manage(managed, token, {}, status=409)
    start = parse_start(request.query_params.get("start"), managed.found.calendar.timezone)
    if start is not None:
        return _render_move_question(managed, token, start)
    return await _render_reschedule(
        request,
        managed,
        token,
        window_from=request.query_params.get("from"),
        selected=request.query_params.get("day"),
    )


async def _render_reschedule(
    request: Request,
    managed: Managed,
    token: str,
    *,
    window_from: str | None,
    selected: str | None,
    notice: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    lang, found = managed.lang, managed.found
    base = f"/book/manage/{token}/reschedule"
    assert managed.event_type is not None

    def nav_url(start: date, day: date | None) -> str:
        return base + _query(lang=lang, day=day and day.isoformat(), **{"from": start.isoformat()})

    def slot_url(slot: Slot) -> str:
        return base + _query(lang=lang, start=_iso_local(slot.start, found.calendar.timezone))

    async with get_database(request).session(found.scope) as session:
        picker = await build_picker(
            session,
            found,
            managed.event_type,
            lang,
            window_from=window_from,
            selected=selected,
            nav_url=nav_url,
            slot_url=slot_url,
        )
    return render(
        "reschedule.html",
        lang,
        managed.brand,
        status,
        slug=found.calendar.slug,
        client=found.client,
        current=service.format_when(managed.appointment.start_at, found.calendar.timezone, lang),
        picker=picker,
        notice=notice,
        back_url=_manage_url(token, lang),
    )


def _render_move_question(managed: Managed, token: str, start: datetime) -> HTMLResponse:
    calendar = managed.found.calendar
    lang = managed.lang
    return render(
        "move.html",
        lang,
        managed.brand,
        slug=calendar.slug,
        client=managed.found.client,
        question=TEXTS[lang]["move_question"].format(
            when=service.format_when(start, calendar.timezone, lang)
        ),
        action=f"/book/manage/{token}/reschedule",
        start=_iso_local(start, calendar.timezone),
        token=form_token(calendar.id),
        back_url=_manage_url(token, lang, "/reschedule"),
    )


@router.post("/book/manage/{token}/reschedule")
async def reschedule(token: str, request: Request) -> Response:
    form = await request.form()
    try:
        _rate_limit(request)
        managed = await _managed(request, token, _field(form, "lang"))
    except DemandlyError as error:
        return _error_page(error, _request_lang(request), None)
    calendar = managed.found.calendar
    start = parse_start(_field(form, "start"), calendar.timezone)
    if not managed.changeable or managed.event_type is None:
        return _render_manage(managed, token, {}, status=409)
    if start is None or check_form_token(_field(form, "token") or "", calendar.id) is None:
        return await _render_reschedule(
            request, managed, token, window_from=None, selected=None, status=400
        )
    try:
        new_token = await _move(request, managed, start)
    except (Conflict, ValidationFailed):
        day = start.astimezone(ZoneInfo(calendar.timezone)).date().isoformat()
        notice = TEXTS[managed.lang]["slot_taken"]
        return await _render_reschedule(
            request, managed, token, window_from=None, selected=day, notice=notice, status=409
        )
    return RedirectResponse(
        _manage_url(new_token, managed.lang, moved="1"), status_code=303, headers=NO_STORE
    )


async def _move(request: Request, managed: Managed, start: datetime) -> str:
    """Move the appointment; a new manage token (its validity follows the new start)."""
    async with get_database(request).session(managed.found.scope, _visitor(request)) as session:
        appointment = await service.get_appointment(session, managed.appointment.id)
        moved = await service.reschedule(session, appointment, start)
        await session.commit()
    return links.manage_token(moved)
