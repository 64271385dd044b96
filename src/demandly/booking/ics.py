"""iCalendar (RFC 5545) documents: the invitation in confirmation e-mails (METHOD:REQUEST),
the cancellation (METHOD:CANCEL) and a calendar's private feed.

Times carry the calendar's TZID with a matching VTIMEZONE, so calendar programs show the
appointment at the right wall time even across daylight-saving changes. The UID stays the
same for an appointment's life; SEQUENCE grows with every change, which is how programs know
an update from a duplicate.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from icalendar import Calendar as ICalendar
from icalendar import Event, Timezone, vCalAddress, vText

from demandly.booking.models import Appointment, AppointmentStatus, Calendar, EventType
from demandly.kit.time import utcnow

PRODID = "-//Demandly//Booking//EN"


@lru_cache(maxsize=64)
def _vtimezone(tzid: str, first_year: int, last_year: int) -> bytes:
    """The VTIMEZONE, serialised once: it is most of the work of writing an invitation."""
    return Timezone.from_tzinfo(
        ZoneInfo(tzid),
        tzid=tzid,
        first_date=date(first_year, 1, 1),
        last_date=date(last_year + 1, 1, 1),
    ).to_ical()


def _document(method: str | None, name: str | None = None) -> ICalendar:
    document = ICalendar()
    document.add("prodid", PRODID)
    document.add("version", "2.0")
    document.add("calscale", "GREGORIAN")
    if method is not None:
        document.add("method", method)
    if name:
        document.add("x-wr-calname", name)
    return document


def _event(
    appointment: Appointment,
    calendar: Calendar,
    event_type: EventType | None,
    *,
    organizer_email: str | None,
    cancelled: bool,
) -> Event:
    zone = ZoneInfo(calendar.timezone)
    event = Event()
    event.add("uid", appointment.uid)
    event.add("sequence", appointment.sequence)
    event.add("dtstamp", utcnow())
    event.add("dtstart", appointment.start_at.astimezone(zone))
    event.add("dtend", appointment.end_at.astimezone(zone))
    title = event_type.name if event_type is not None else calendar.name
    event.add("summary", f"{title}: {appointment.attendee_name}")
    if event_type is not None and event_type.location_text:
        event.add("location", event_type.location_text)
    if appointment.notes:
        event.add("description", appointment.notes)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    if organizer_email:
        organizer = vCalAddress(f"mailto:{organizer_email}")
        organizer.params["cn"] = vText(calendar.name)
        event.add("organizer", organizer)
    if appointment.attendee_email:
        attendee = vCalAddress(f"mailto:{appointment.attendee_email}")
        attendee.params["cn"] = vText(appointment.attendee_name)
        attendee.params["role"] = vText("REQ-PARTICIPANT")
        attendee.params["partstat"] = vText("ACCEPTED")
        event.add("attendee", attendee)
    return event


_END = b"END:VCALENDAR\r\n"


def _serialise(document: ICalendar, calendar: Calendar, years: Iterable[int]) -> bytes:
    """``document`` (its properties and events) with the calendar's VTIMEZONE first among
    its components, as ``to_ical`` would write it had the VTIMEZONE been added first."""
    span = sorted(set(years)) or [utcnow().year]
    events = b"".join(component.to_ical() for component in document.subcomponents)
    document.subcomponents = []
    head = document.to_ical()
    if not head.endswith(_END):  # pragma: no cover - icalendar always ends so
        raise ValueError("unexpected iCalendar serialisation")
    timezone = _vtimezone(calendar.timezone, span[0], span[-1])
    return head[: -len(_END)] + timezone + events + _END


def invitation(
    appointment: Appointment,
    calendar: Calendar,
    event_type: EventType | None,
    *,
    organizer_email: str | None = None,
) -> bytes:
    """The .ics for an e-mail: REQUEST while the appointment stands, CANCEL once cancelled."""
    cancelled = appointment.status == AppointmentStatus.CANCELLED
    document = _document("CANCEL" if cancelled else "REQUEST")
    document.add_component(
        _event(
            appointment,
            calendar,
            event_type,
            organizer_email=organizer_email,
            cancelled=cancelled,
        )
    )
    return _serialise(document, calendar, (appointment.start_at.year, appointment.end_at.year))


def feed(
    calendar: Calendar,
    appointments: Iterable[Appointment],
    event_types: dict[str, EventType],
) -> bytes:
    """A subscribable feed (no METHOD: it publishes, it does not invite) of the calendar's
    appointments; cancelled ones stay in with STATUS:CANCELLED so subscribers drop them."""
    items = list(appointments)
    document = _document(None, calendar.name)
    document.add("refresh-interval", timedelta(minutes=15), parameters={"VALUE": "DURATION"})
    for appointment in items:
        kind = event_types.get(appointment.event_type_id or "")
        cancelled = appointment.status == AppointmentStatus.CANCELLED
        document.add_component(
            _event(appointment, calendar, kind, organizer_email=None, cancelled=cancelled)
        )
    return _serialise(document, calendar, (a.start_at.year for a in items))
