"""Request and response bodies of the booking API: calendars with their rules and event
types, slots, appointments, and the attendee's view behind a manage link."""

from __future__ import annotations

import itertools
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from demandly.agents.schemas import HHMM, Text
from demandly.tenancy.schemas import Email, Id, Name, PlainText, Slug, TimeZone

LocationKindName = Literal["in_person", "phone", "video"]
StatusName = Literal["confirmed", "cancelled", "completed", "no_show"]
Source = Literal["api", "page", "chat", "phone"]
# German states as the ``holidays`` package names them.
HolidayRegion = Literal[
    "BB", "BE", "BW", "BY", "HB", "HE", "HH", "MV", "NI", "NW", "RP", "SH", "SL", "SN", "ST", "TH"
]
MAX_RANGES = 100
MAX_OVERRIDES = 1000
MAX_EVENT_TYPES = 50
MAX_REMINDERS = 5
Minutes = Annotated[int, Field(ge=0, le=60 * 24 * 7)]
Buffer = Annotated[int, Field(ge=0, le=24 * 60)]
Phone = Annotated[PlainText, Field(min_length=3, max_length=40)]
Notes = Annotated[Text, Field(max_length=2000)]


# Paths of the booking pages next to /book/{slug}: no calendar may take these names.
RESERVED_SLUGS = frozenset({"manage", "static"})


def _not_reserved(value: str) -> str:
    if value in RESERVED_SLUGS:
        raise ValueError(f"'{value}' is reserved for the booking pages")
    return value


CalendarSlug = Annotated[Slug, AfterValidator(_not_reserved)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _reject_null(value: Any) -> Any:
    if value is None:
        raise ValueError("may not be null")
    return value


class TimeRange(_Input):
    start: HHMM
    end: HHMM

    @field_validator("end")
    @classmethod
    def _after_start(cls, value: str, info: ValidationInfo) -> str:
        start = info.data.get("start")
        if start is not None and value <= start:
            raise ValueError("must be later than start")
        return value


class WeeklyRange(TimeRange):
    weekday: int = Field(ge=0, le=6, description="0 = Monday")


class DateOverride(_Input):
    """Special hours for one date; no ranges: closed that day (a holiday of its own)."""

    date: date
    ranges: list[TimeRange] = Field(default_factory=list, max_length=MAX_RANGES)


class EventTypeIn(_Input):
    """In a calendar update, an item with ``id`` changes that event type, one without adds a
    new one, and event types left out are removed (their appointments stay)."""

    id: Id | None = None
    name: Name
    duration_minutes: int = Field(ge=5, le=24 * 60)
    location_kind: LocationKindName = "in_person"
    location_text: Annotated[PlainText, Field(max_length=500)] | None = None


def _default_week() -> list[WeeklyRange]:
    return [WeeklyRange(weekday=day, start="09:00", end="17:00") for day in range(5)]


def _default_event_types() -> list[EventTypeIn]:
    return [EventTypeIn(name="Termin", duration_minutes=30)]


def _no_overlaps(ranges: list[TimeRange], where: str) -> None:
    ordered = sorted(ranges, key=lambda r: r.start)
    for before, after in itertools.pairwise(ordered):
        if after.start < before.end:
            raise ValueError(f"ranges of {where} overlap")


class _CalendarRules(_Input):
    """The rules shared by create and update (validated across fields)."""

    @model_validator(mode="after")
    def _consistent(self) -> _CalendarRules:
        weekly = getattr(self, "weekly_hours", None)
        if weekly:
            for day in range(7):
                _no_overlaps([r for r in weekly if r.weekday == day], f"weekday {day}")
        overrides = getattr(self, "date_overrides", None)
        if overrides:
            dates = [o.date for o in overrides]
            if len(dates) != len(set(dates)):
                raise ValueError("date_overrides: one entry per date")
            for item in overrides:
                _no_overlaps(item.ranges, str(item.date))
        event_types = getattr(self, "event_types", None)
        if event_types:
            ids = [e.id for e in event_types if e.id is not None]
            if len(ids) != len(set(ids)):
                raise ValueError("event_types: an id appears twice")
        return self


class CalendarCreate(_CalendarRules):
    client_id: Id
    name: Name
    slug: CalendarSlug | None = Field(None, description="Default: from the name, made unique.")
    timezone: TimeZone | None = Field(None, description="Default: the client's time zone.")
    event_types: list[EventTypeIn] = Field(
        default_factory=_default_event_types, min_length=1, max_length=MAX_EVENT_TYPES
    )
    weekly_hours: list[WeeklyRange] = Field(default_factory=_default_week, max_length=MAX_RANGES)
    date_overrides: list[DateOverride] = Field(default_factory=list, max_length=MAX_OVERRIDES)
    holiday_region: HolidayRegion | None = Field(
        None, description="German state whose public holidays close the calendar."
    )
    buffer_before_minutes: Buffer = 0
    buffer_after_minutes: Buffer = 0
    minimum_notice_minutes: Minutes = 120
    booking_window_days: int = Field(60, ge=1, le=730)
    slot_interval_minutes: int | None = Field(None, ge=5, le=24 * 60)
    max_bookings_per_day: int | None = Field(None, ge=1, le=1000)
    reminder_offsets_minutes: list[Annotated[int, Field(ge=5, le=60 * 24 * 30)]] | None = Field(
        None, max_length=MAX_REMINDERS, description="Default: the platform's (24 h and 1 h)."
    )


class CalendarUpdate(_CalendarRules):
    """Only the fields sent change; null clears the optional ones."""

    name: Name | None = None
    slug: CalendarSlug | None = None
    timezone: TimeZone | None = None
    event_types: list[EventTypeIn] | None = Field(None, min_length=1, max_length=MAX_EVENT_TYPES)
    weekly_hours: list[WeeklyRange] | None = Field(None, max_length=MAX_RANGES)
    date_overrides: list[DateOverride] | None = Field(None, max_length=MAX_OVERRIDES)
    holiday_region: HolidayRegion | None = None
    buffer_before_minutes: Buffer | None = None
    buffer_after_minutes: Buffer | None = None
    minimum_notice_minutes: Minutes | None = None
    booking_window_days: int | None = Field(None, ge=1, le=730)
    slot_interval_minutes: int | None = Field(None, ge=5, le=24 * 60)
    max_bookings_per_day: int | None = Field(None, ge=1, le=1000)
    reminder_offsets_minutes: list[Annotated[int, Field(ge=5, le=60 * 24 * 30)]] | None = Field(
        None, max_length=MAX_REMINDERS
    )

    _not_null = field_validator(
        "name",
        "slug",
        "timezone",
        "event_types",
        "weekly_hours",
        "date_overrides",
        "buffer_before_minutes",
        "buffer_after_minutes",
        "minimum_notice_minutes",
        "booking_window_days",
        mode="before",
    )(_reject_null)


class EventType(BaseModel):
    id: str
    name: str
    duration_minutes: int
    location_kind: str
    location_text: str | None


class Calendar(BaseModel):
    id: str
    agency_id: str
    client_id: str
    name: str
    slug: str
    timezone: str
    event_types: list[EventType]
    weekly_hours: list[WeeklyRange]
    date_overrides: list[DateOverride]
    holiday_region: str | None
    buffer_before_minutes: int
    buffer_after_minutes: int
    minimum_notice_minutes: int
    booking_window_days: int
    slot_interval_minutes: int | None
    max_bookings_per_day: int | None
    reminder_offsets_minutes: list[int]
    booking_url: str = Field(description="The public booking page.")
    feed_url: str = Field(description="Private ICS feed; keep it secret (rotate to revoke).")
    created_at: datetime
    updated_at: datetime | None


class SlotOut(BaseModel):
    start: datetime = Field(description="UTC")
    end: datetime = Field(description="UTC")
    local_start: datetime = Field(description="In the requested time zone")
    local_end: datetime


class Slots(BaseModel):
    calendar_id: str
    event_type_id: str
    duration_minutes: int
    timezone: str = Field(description="The time zone of local_start/local_end.")
    slots: list[SlotOut]


class AttendeeIn(_Input):
    name: Name
    email: Email | None = None
    phone: Phone | None = None
    timezone: TimeZone | None = Field(None, description="For e-mails in the attendee's time.")

    @model_validator(mode="after")
    def _reachable(self) -> AttendeeIn:
        if self.email is None and self.phone is None:
            raise ValueError("an e-mail address or a phone number is needed")
        return self


class Attendee(BaseModel):
    name: str
    email: str | None
    phone: str | None
    timezone: str | None


class AppointmentCreate(_Input):
    calendar_id: Id
    event_type_id: Id | None = Field(None, description="Default: the calendar's first.")
    start: AwareDatetime
    attendee: AttendeeIn
    notes: Notes | None = None
    contact_id: Id | None = None


class AppointmentUpdate(_Input):
    """Notes, and the outcome once it took place."""

    notes: Notes | None = None
    status: Literal["confirmed", "completed", "no_show"] | None = None

    _not_null = field_validator("status", mode="before")(_reject_null)


class Reschedule(_Input):
    start: AwareDatetime


class Cancel(_Input):
    reason: Annotated[PlainText, Field(max_length=500)] | None = None


class Appointment(BaseModel):
    id: str
    agency_id: str
    client_id: str
    calendar_id: str
    event_type_id: str | None
    start: datetime
    end: datetime
    status: StatusName
    attendee: Attendee
    contact_id: str | None
    conversation_id: str | None
    notes: str | None
    source: str
    uid: str
    sequence: int
    cancel_reason: str | None
    cancelled_at: datetime | None
    manage_url: str = Field(description="The attendee's link to reschedule or cancel.")
    created_at: datetime
    updated_at: datetime | None


class PublicAppointment(BaseModel):
    """What the attendee sees behind the manage link (no ids of the tenant)."""

    start: datetime
    end: datetime
    timezone: str
    status: StatusName
    calendar_name: str
    calendar_slug: str
    event_type_name: str | None
    location_kind: str | None
    location_text: str | None
    attendee_name: str
    can_change: bool = Field(description="Whether it can still be rescheduled or cancelled.")
