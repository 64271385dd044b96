"""Calendars (a client's bookable schedule), their event types, and appointments.

Availability rules live on the calendar as small JSON documents (weekly ranges, date
overrides) that ``booking.availability`` reads; appointments are rows, so that overlaps can be
checked inside the booking transaction while the calendar row is locked.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from demandly.kit.db import RecordModel, TenantMixin

if TYPE_CHECKING:
    from demandly.leads.models import Contact


class LocationKind(StrEnum):
    IN_PERSON = "in_person"
    PHONE = "phone"
    VIDEO = "video"


class AppointmentStatus(StrEnum):
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    NO_SHOW = "no_show"


class Calendar(RecordModel, TenantMixin):
    __tablename__ = "calendars"
    __id_prefix__ = "cal"

    client_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    # The public booking page's address: /book/{slug}.
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    timezone: Mapped[str] = mapped_column(String(64))
    # [{"weekday": 0-6 (Monday 0), "start": "HH:MM", "end": "HH:MM"}, ...]
    weekly_hours: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # [{"date": "YYYY-MM-DD", "ranges": [{"start", "end"}]}]; no ranges: closed that day.
    date_overrides: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # German state code for public holidays ("BY", "NW", ...); None: holidays are working days.
    holiday_region: Mapped[str | None] = mapped_column(String(10), default=None)
    buffer_before_minutes: Mapped[int] = mapped_column(Integer, default=0)
    buffer_after_minutes: Mapped[int] = mapped_column(Integer, default=0)
    minimum_notice_minutes: Mapped[int] = mapped_column(Integer, default=120)
    booking_window_days: Mapped[int] = mapped_column(Integer, default=60)
    # None: the event type's duration.
    slot_interval_minutes: Mapped[int | None] = mapped_column(Integer, default=None)
    max_bookings_per_day: Mapped[int | None] = mapped_column(Integer, default=None)
    # None: the platform default (settings.reminder_offsets_minutes).
    reminder_offsets_minutes: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    # Part of the private feed token: raising it revokes every feed URL handed out before.
    feed_version: Mapped[int] = mapped_column(Integer, default=1)


class EventType(RecordModel, TenantMixin):
    """What can be booked on a calendar: a name, a length and where it takes place."""

    __tablename__ = "event_types"
    __id_prefix__ = "etype"

    client_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    calendar_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("calendars.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    duration_minutes: Mapped[int] = mapped_column(Integer)
    location_kind: Mapped[str] = mapped_column(String(20), default=LocationKind.IN_PERSON)
    location_text: Mapped[str | None] = mapped_column(String(500), default=None)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Appointment(RecordModel, TenantMixin):
    __tablename__ = "appointments"
    __id_prefix__ = "apt"
    __table_args__ = (
        UniqueConstraint("calendar_id", "idempotency_key"),
        Index("ix_appointments_calendar_start", "calendar_id", "start_at"),
    )

    client_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    calendar_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("calendars.id", ondelete="CASCADE")
    )
    event_type_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("event_types.id", ondelete="SET NULL"), default=None
    )
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default=AppointmentStatus.CONFIRMED, index=True)
    attendee_name: Mapped[str] = mapped_column(String(200))
    attendee_email: Mapped[str | None] = mapped_column(String(320), default=None)
    attendee_phone: Mapped[str | None] = mapped_column(String(40), default=None)
    # The attendee's time zone (for e-mails in their local time); None: the calendar's.
    attendee_timezone: Mapped[str | None] = mapped_column(String(64), default=None)
    # The attendee as a contact of the client's CRM (matched or created when booked).
    contact_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("contacts.id", ondelete="SET NULL"), default=None, index=True
    )
    # Never loaded: it tells the unit of work to insert a new contact before the appointment
    # that names it, so a booking writes both (and their audit events) in one flush.
    contact: Mapped[Contact | None] = relationship(lazy="raise")
    conversation_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("conversations.id", ondelete="SET NULL"), default=None
    )
    notes: Mapped[str | None] = mapped_column(Text, default=None)
    # api | page | chat | phone
    source: Mapped[str] = mapped_column(String(20))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    # The iCalendar UID (stable for the appointment's life) and SEQUENCE (+1 on every change).
    uid: Mapped[str] = mapped_column(String(120), unique=True)
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    cancel_reason: Mapped[str | None] = mapped_column(String(500), default=None)
    cancelled_at: Mapped[datetime | None] = mapped_column(default=None)
