"""Every query of the booking domain. The session's scope filters tenant rows on its own; the
service runs the look-ups that must see across tenants (a public slug, a signed link) under
the system scope on purpose."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.booking.models import Appointment, AppointmentStatus, Calendar, EventType
from demandly.jobs.models import Job, JobStatus
from demandly.kit.context import Scope
from demandly.kit.db import ScopedQuery, TenantFilter, grants_criteria
from demandly.tenancy.models import Agency, Client, Status


@dataclass(frozen=True)
class CalendarContext:
    """A calendar with what booking on it needs, read in one statement: its event types (in
    order), its client and agency (locale and brand of the e-mails; None if the scope does not
    show them) and the appointment booked earlier under an idempotency key, if any."""

    calendar: Calendar
    event_types: list[EventType]
    client: Client | None
    agency: Agency | None
    keyed: Appointment | None


@dataclass(frozen=True)
class AppointmentFilters:
    client_id: str | None = None
    calendar_id: str | None = None
    status: str | None = None
    contact_id: str | None = None
    starts_from: datetime | None = None
    starts_before: datetime | None = None


class BookingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def is_postgres(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    async def _one(self, statement: Select[Any]) -> Any:
        return (await self.session.execute(statement)).scalar_one_or_none()

    # --- calendars

    def calendars(self, client_id: str | None = None, within: Scope | None = None) -> Select[Any]:
        statement = select(Calendar)
        if within is not None:
            statement = statement.where(
                grants_criteria(within, Calendar.agency_id, Calendar.client_id)
            )
        if client_id is not None:
            statement = statement.where(Calendar.client_id == client_id)
        return statement

    async def calendar(self, calendar_id: str, *, for_update: bool = False) -> Calendar | None:
        """``for_update`` locks the row on PostgreSQL until the transaction ends: the one lock
        that serialises bookings of a calendar (SQLite's BEGIN IMMEDIATE serialises all)."""
        statement = select(Calendar).where(Calendar.id == calendar_id)
        if for_update and self.is_postgres:
            statement = statement.with_for_update().execution_options(populate_existing=True)
        return await self._one(statement)

    async def calendar_context(
        self,
        calendar_id: str,
        *,
        for_update: bool = False,
        idempotency_key: str | None = None,
        owners: bool = True,
    ) -> CalendarContext | None:
        """The calendar and what a booking on it reads besides (see ``CalendarContext``), in
        one round trip. ``for_update`` locks the calendar row alone, as ``calendar`` does.
        ``owners=False`` leaves out the client and the agency (None in the context): a
        booking's own transaction does not need them, and each joined model costs the
        statement its tenant criteria."""
        lock = for_update and self.is_postgres
        query = _context_query(owners, idempotency_key is not None, lock)
        parameters = {"calendar_id": calendar_id, "idempotency_key": idempotency_key}
        statement = query.statement(self.session)
        rows = (await self.session.execute(statement, parameters)).all()
        if not rows:
            return None
        first = rows[0]
        client, agency = (first.Client, first.Agency) if owners else (None, None)
        keyed = first.Appointment if idempotency_key is not None else None
        kinds = [row.EventType for row in rows if row.EventType is not None]
        return CalendarContext(first.Calendar, kinds, client, agency, keyed)

    async def calendar_by_slug(self, slug: str) -> Calendar | None:
        """A calendar of an active client of an active agency."""
        statement = (
            select(Calendar)
            .join(Client, Client.id == Calendar.client_id)
            .join(Agency, Agency.id == Calendar.agency_id)
            .where(
                Calendar.slug == slug,
                Client.status == Status.ACTIVE,
                Agency.status == Status.ACTIVE,
            )
        )
        return await self._one(statement)

    async def slug_taken(self, slug: str) -> bool:
        return await self._one(select(Calendar.id).where(Calendar.slug == slug)) is not None

    async def event_types(self, calendar_id: str) -> list[EventType]:
        statement = (
            select(EventType)
            .where(EventType.calendar_id == calendar_id)
            .order_by(EventType.position, EventType.id)
        )
        return list((await self.session.execute(statement)).scalars())

    async def event_types_of(self, calendar_ids: Sequence[str]) -> list[EventType]:
        statement = (
            select(EventType)
            .where(EventType.calendar_id.in_(list(calendar_ids)))
            .order_by(EventType.position, EventType.id)
        )
        return list((await self.session.execute(statement)).scalars())

    # --- appointments

    async def appointment(
        self, appointment_id: str, *, for_update: bool = False
    ) -> Appointment | None:
        statement = select(Appointment).where(Appointment.id == appointment_id)
        if for_update and self.is_postgres:
            statement = statement.with_for_update().execution_options(populate_existing=True)
        return await self._one(statement)

    async def by_idempotency_key(self, calendar_id: str, key: str) -> Appointment | None:
        return await self._one(
            select(Appointment).where(
                Appointment.calendar_id == calendar_id, Appointment.idempotency_key == key
            )
        )

    async def busy(
        self,
        calendar_id: str,
        start: datetime,
        end: datetime,
        *,
        exclude_id: str | None = None,
    ) -> list[tuple[datetime, datetime]]:
        """(start, end) of the appointments that hold time on the calendar (all but the
        cancelled ones) and overlap [start, end)."""
        query = _BUSY if exclude_id is None else _BUSY_EXCLUDING
        parameters = {
            "calendar_id": calendar_id,
            "start": start,
            "end": end,
            "exclude_id": exclude_id,
        }
        rows = await self.session.execute(query.statement(self.session), parameters)
        return [(row.start_at, row.end_at) for row in rows]

    async def has_upcoming(self, calendar_id: str, now: datetime) -> bool:
        statement = select(Appointment.id).where(
            Appointment.calendar_id == calendar_id,
            Appointment.status == AppointmentStatus.CONFIRMED,
            Appointment.end_at > now,
        )
        return await self._one(statement.limit(1)) is not None

    def appointments(self, filters: AppointmentFilters, within: Scope | None = None) -> Select[Any]:
        statement = select(Appointment)
        if within is not None:
            statement = statement.where(
                grants_criteria(within, Appointment.agency_id, Appointment.client_id)
            )
        for column, value in (
            (Appointment.client_id, filters.client_id),
            (Appointment.calendar_id, filters.calendar_id),
            (Appointment.status, filters.status),
            (Appointment.contact_id, filters.contact_id),
        ):
            if value is not None:
                statement = statement.where(column == value)
        if filters.starts_from is not None:
            statement = statement.where(Appointment.start_at >= filters.starts_from)
        if filters.starts_before is not None:
            statement = statement.where(Appointment.start_at < filters.starts_before)
        return statement

    async def week_appointments(
        self, calendar_id: str, start: datetime, end: datetime, limit: int = 500
    ) -> list[Appointment]:
        """The calendar's appointments starting in [start, end), in time order (the
        dashboard's week view: one query, attendees are on the rows)."""
        statement = (
            select(Appointment)
            .where(
                Appointment.calendar_id == calendar_id,
                Appointment.start_at >= start,
                Appointment.start_at < end,
            )
            .order_by(Appointment.start_at, Appointment.id)
            .limit(limit)
        )
        return list((await self.session.execute(statement)).scalars())

    async def feed_appointments(self, calendar_id: str, since: datetime) -> list[Appointment]:
        statement = (
            select(Appointment)
            .where(Appointment.calendar_id == calendar_id, Appointment.end_at >= since)
            .order_by(Appointment.start_at)
            .limit(2000)
        )
        return list((await self.session.execute(statement)).scalars())

    # --- reminders

    async def queued_jobs(self, key_prefix: str) -> list[Job]:
        """Queued jobs whose idempotency key starts with ``key_prefix``."""
        statement = select(Job).where(
            Job.idempotency_key.startswith(key_prefix, autoescape=True),
            Job.status == JobStatus.QUEUED,
        )
        return list((await self.session.execute(statement)).scalars())


# --- hot queries, built once per scope (kit.db.ScopedQuery) -----------------------------------


@cache
def _context_query(owners: bool, keyed: bool, lock: bool) -> ScopedQuery[Select[Any]]:
    """``calendar_context``'s statement in each of its shapes."""

    def build(tenant: TenantFilter) -> Select[Any]:
        statement = (
            select(Calendar, EventType)
            .outerjoin(EventType, and_(EventType.calendar_id == Calendar.id, tenant(EventType)))
            .where(Calendar.id == bindparam("calendar_id"), tenant(Calendar))
            .order_by(EventType.position, EventType.id)
        )
        if owners:
            statement = (
                statement.add_columns(Client, Agency)
                .outerjoin(Client, and_(Client.id == Calendar.client_id, tenant(Client)))
                .outerjoin(Agency, and_(Agency.id == Calendar.agency_id, tenant(Agency)))
            )
        if keyed:
            statement = statement.add_columns(Appointment).outerjoin(
                Appointment,
                and_(
                    Appointment.calendar_id == Calendar.id,
                    Appointment.idempotency_key == bindparam("idempotency_key"),
                    tenant(Appointment),
                ),
            )
        if lock:
            statement = statement.with_for_update(of=Calendar).execution_options(
                populate_existing=True
            )
        return statement

    return ScopedQuery(build)


def _busy_query(excluding: bool) -> ScopedQuery[Select[Any]]:
    appointments = Appointment.__table__.c

    def build(tenant: TenantFilter) -> Select[Any]:
        statement = select(appointments.start_at, appointments.end_at).where(
            appointments.calendar_id == bindparam("calendar_id"),
            appointments.status != AppointmentStatus.CANCELLED.value,
            appointments.start_at < bindparam("end"),
            appointments.end_at > bindparam("start"),
            tenant(Appointment),
        )
        if excluding:
            statement = statement.where(appointments.id != bindparam("exclude_id"))
        return statement

    return ScopedQuery(build)


_BUSY = _busy_query(excluding=False)
_BUSY_EXCLUDING = _busy_query(excluding=True)
