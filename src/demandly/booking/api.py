"""Calendars, slots and appointments under /api/v1, and the attendee's signed-link endpoints
and a calendar's private ICS feed under /api/v1/public (no login)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status

from demandly.auth.dependencies import CurrentAuth, DbSession, request_actor
from demandly.auth.permissions import Permission
from demandly.booking import schemas as s
from demandly.booking import service
from demandly.booking.links import MAX_TOKEN_LENGTH
from demandly.booking.models import Appointment, AppointmentStatus, Calendar
from demandly.booking.repository import AppointmentFilters, BookingRepository
from demandly.kit.context import Scope
from demandly.kit.db import set_scope
from demandly.kit.errors import Conflict
from demandly.kit.pagination import Page, PageParams, page_params, paginate
from demandly.kit.time import utcnow
from demandly.tenancy import service as tenancy
from demandly.tenancy.schemas import ID_PATTERN

router = APIRouter(tags=["booking"])
UTC_ZONE = ZoneInfo("UTC")
Pages = Annotated[PageParams, Depends(page_params)]
IdPath = Annotated[str, Path(max_length=40, pattern=ID_PATTERN)]
IdQuery = Annotated[str | None, Query(max_length=40, pattern=ID_PATTERN)]
TokenPath = Annotated[str, Path(max_length=MAX_TOKEN_LENGTH, pattern=r"^[A-Za-z0-9_.-]+$")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Repeat a request with the same key to get the first booking back.",
    ),
]


async def _calendar(
    session: DbSession, ctx: CurrentAuth, calendar_id: str, write: bool
) -> Calendar:
    calendar = await service.get_calendar(session, calendar_id)
    permission = Permission.CONTENT_WRITE if write else Permission.CONTENT_READ
    ctx.require(permission, calendar.agency_id, calendar.client_id)
    return calendar


async def _appointment(
    session: DbSession, ctx: CurrentAuth, appointment_id: str, write: bool
) -> Appointment:
    appointment = await service.get_appointment(session, appointment_id)
    permission = Permission.CONTENT_WRITE if write else Permission.CONTENT_READ
    ctx.require(permission, appointment.agency_id, appointment.client_id)
    return appointment


async def _calendar_view(session: DbSession, calendar: Calendar) -> s.Calendar:
    return service.calendar_view(calendar, await service.event_types(session, calendar))


# --- calendars -----------------------------------------------------------------------------


@router.post("/calendars", status_code=201, response_model=s.Calendar)
async def create_calendar(
    data: s.CalendarCreate, ctx: CurrentAuth, session: DbSession
) -> s.Calendar:
    """A calendar of a client (content:write) with its rules and event types; its slug is
    the address of the public booking page."""
    client = await tenancy.get_client(session, data.client_id)
    ctx.require(Permission.CONTENT_WRITE, client.agency_id, client.id)
    return await _calendar_view(session, await service.create_calendar(session, client, data))


@router.get("/calendars", response_model=Page[s.Calendar])
async def list_calendars(
    ctx: CurrentAuth, session: DbSession, page: Pages, client_id: IdQuery = None
) -> Page[s.Calendar]:
    if client_id is not None:
        client = await tenancy.get_client(session, client_id)
        ctx.require(Permission.CONTENT_READ, client.agency_id, client.id)
    repo = BookingRepository(session)
    statement = repo.calendars(client_id, ctx.scope_where(Permission.CONTENT_READ))
    rows, cursor = await paginate(session, statement, Calendar.id, page)
    kinds = await repo.event_types_of([r.id for r in rows])
    return Page(
        items=[service.calendar_view(r, [k for k in kinds if k.calendar_id == r.id]) for r in rows],
        next_cursor=cursor,
    )


@router.get("/calendars/{calendar_id}", response_model=s.Calendar)
async def get_calendar(calendar_id: IdPath, ctx: CurrentAuth, session: DbSession) -> s.Calendar:
    return await _calendar_view(session, await _calendar(session, ctx, calendar_id, write=False))


@router.patch("/calendars/{calendar_id}", response_model=s.Calendar)
async def update_calendar(
    calendar_id: IdPath, data: s.CalendarUpdate, ctx: CurrentAuth, session: DbSession
) -> s.Calendar:
    """Change rules or event types; booked appointments stay where they are."""
    calendar = await _calendar(session, ctx, calendar_id, write=True)
    return await _calendar_view(session, await service.update_calendar(session, calendar, data))


@router.delete("/calendars/{calendar_id}", status_code=204)
async def delete_calendar(calendar_id: IdPath, ctx: CurrentAuth, session: DbSession) -> Response:
    """409 while confirmed appointments lie ahead."""
    await service.delete_calendar(session, await _calendar(session, ctx, calendar_id, write=True))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/calendars/{calendar_id}/feed/rotate", response_model=s.Calendar)
async def rotate_feed(calendar_id: IdPath, ctx: CurrentAuth, session: DbSession) -> s.Calendar:
    """A new private feed URL; the old one stops working."""
    calendar = await _calendar(session, ctx, calendar_id, write=True)
    return await _calendar_view(session, await service.rotate_feed(session, calendar))


@router.get("/calendars/{calendar_id}/slots", response_model=s.Slots)
async def list_slots(
    calendar_id: IdPath,
    ctx: CurrentAuth,
    session: DbSession,
    start: Annotated[datetime, Query(alias="from", description="Without offset: in tz.")],
    end: Annotated[datetime, Query(alias="to", description="At most 62 days after from.")],
    tz: Annotated[str | None, Query(max_length=64, description="Default: calendar's")] = None,
    event_type_id: IdQuery = None,
) -> s.Slots:
    """Free slots starting in [from, to), in UTC and in the time zone ``tz``."""
    calendar = await _calendar(session, ctx, calendar_id, write=False)
    slots = await service.available_slots(
        session, calendar, start, end, event_type_id=event_type_id, tz=tz
    )
    kind = await service.event_type_for(session, calendar, event_type_id)
    zone = ZoneInfo(tz or calendar.timezone)  # validated by available_slots
    return s.Slots(
        calendar_id=calendar.id,
        event_type_id=kind.id,
        duration_minutes=kind.duration_minutes,
        timezone=str(zone),
        slots=[
            s.SlotOut(
                start=slot.start,
                end=slot.end,
                local_start=slot.start.astimezone(zone),
                local_end=slot.end.astimezone(zone),
            )
            for slot in slots
        ],
    )


# --- appointments --------------------------------------------------------------------------


@router.post("/appointments", status_code=201, response_model=s.Appointment)
async def create_appointment(
    data: s.AppointmentCreate,
    ctx: CurrentAuth,
    session: DbSession,
    idempotency_key: IdempotencyKey = None,
) -> s.Appointment:
    """Book a free slot (content:write): 422 if the time is not bookable, 409 if it was just
    taken. The attendee gets a confirmation e-mail with an invitation (.ics)."""
    calendar = await _calendar(session, ctx, data.calendar_id, write=True)
    appointment = await service.book(
        session,
        calendar,
        start=data.start,
        event_type_id=data.event_type_id,
        attendee=data.attendee,
        notes=data.notes,
        source="api",
        idempotency_key=idempotency_key,
        contact_id=data.contact_id,
    )
    return service.appointment_view(appointment)


@router.get("/appointments", response_model=Page[s.Appointment])
async def list_appointments(
    ctx: CurrentAuth,
    session: DbSession,
    page: Pages,
    client_id: IdQuery = None,
    calendar_id: IdQuery = None,
    contact_id: IdQuery = None,
    status: s.StatusName | None = None,
    starts_from: Annotated[datetime | None, Query(alias="from")] = None,
    starts_before: Annotated[datetime | None, Query(alias="to")] = None,
) -> Page[s.Appointment]:
    """Newest bookings first; ``from``/``to`` filter by the appointment's start."""
    if client_id is not None:
        client = await tenancy.get_client(session, client_id)
        ctx.require(Permission.CONTENT_READ, client.agency_id, client.id)
    filters = AppointmentFilters(
        client_id=client_id,
        calendar_id=calendar_id,
        status=status,
        contact_id=contact_id,
        starts_from=service.instant(starts_from, "from", UTC_ZONE) if starts_from else None,
        starts_before=service.instant(starts_before, "to", UTC_ZONE) if starts_before else None,
    )
    statement = BookingRepository(session).appointments(
        filters, ctx.scope_where(Permission.CONTENT_READ)
    )
    rows, cursor = await paginate(session, statement, Appointment.id, page)
    return Page(items=[service.appointment_view(r) for r in rows], next_cursor=cursor)


@router.get("/appointments/{appointment_id}", response_model=s.Appointment)
async def get_appointment(
    appointment_id: IdPath, ctx: CurrentAuth, session: DbSession
) -> s.Appointment:
    appointment = await _appointment(session, ctx, appointment_id, write=False)
    return service.appointment_view(appointment)


@router.patch("/appointments/{appointment_id}", response_model=s.Appointment)
async def update_appointment(
    appointment_id: IdPath, data: s.AppointmentUpdate, ctx: CurrentAuth, session: DbSession
) -> s.Appointment:
    """Notes, and the outcome: completed or no_show."""
    appointment = await _appointment(session, ctx, appointment_id, write=True)
    return service.appointment_view(await service.update_appointment(session, appointment, data))


@router.post("/appointments/{appointment_id}/reschedule", response_model=s.Appointment)
async def reschedule_appointment(
    appointment_id: IdPath, data: s.Reschedule, ctx: CurrentAuth, session: DbSession
) -> s.Appointment:
    """Move to another free time; the attendee gets the updated invitation."""
    appointment = await _appointment(session, ctx, appointment_id, write=True)
    return service.appointment_view(await service.reschedule(session, appointment, data.start))


@router.post("/appointments/{appointment_id}/cancel", response_model=s.Appointment)
async def cancel_appointment(
    appointment_id: IdPath, data: s.Cancel, ctx: CurrentAuth, session: DbSession
) -> s.Appointment:
    """The attendee gets a cancellation (.ics METHOD:CANCEL); reminders are withdrawn."""
    appointment = await _appointment(session, ctx, appointment_id, write=True)
    return service.appointment_view(await service.cancel(session, appointment, data.reason))


# --- public: the attendee's manage link and the private feed -------------------------------


async def _by_token(request: Request, session: DbSession, token: str) -> Appointment:
    """The appointment behind a manage token, with the session narrowed to its client."""
    await set_scope(session, Scope.for_system(), request_actor(request, "visitor"))
    appointment = await service.appointment_by_token(session, token)
    await set_scope(session, Scope.for_client(appointment.agency_id, appointment.client_id))
    return appointment


def _changeable(appointment: Appointment) -> Appointment:
    """Attendees may move or cancel only confirmed appointments that lie ahead."""
    if appointment.status != AppointmentStatus.CONFIRMED or appointment.start_at <= utcnow():
        raise Conflict("This appointment can no longer be changed.", code="not_changeable")
    return appointment


async def _public(session: DbSession, appointment: Appointment) -> s.PublicAppointment:
    calendar = await service.get_calendar(session, appointment.calendar_id)
    kinds = await service.event_types(session, calendar)
    kind = next((k for k in kinds if k.id == appointment.event_type_id), None)
    return service.public_view(appointment, calendar, kind)


@router.get(
    "/public/appointments/{token}", response_model=s.PublicAppointment, tags=["public booking"]
)
async def get_public_appointment(
    token: TokenPath, request: Request, session: DbSession
) -> s.PublicAppointment:
    """The appointment behind a manage link: 404 for an invalid link, 410 for an expired one."""
    return await _public(session, await _by_token(request, session, token))


@router.post(
    "/public/appointments/{token}/reschedule",
    response_model=s.PublicAppointment,
    tags=["public booking"],
)
async def reschedule_public_appointment(
    token: TokenPath, data: s.Reschedule, request: Request, session: DbSession
) -> s.PublicAppointment:
    appointment = _changeable(await _by_token(request, session, token))
    return await _public(session, await service.reschedule(session, appointment, data.start))


@router.post(
    "/public/appointments/{token}/cancel",
    response_model=s.PublicAppointment,
    tags=["public booking"],
)
async def cancel_public_appointment(
    token: TokenPath, data: s.Cancel, request: Request, session: DbSession
) -> s.PublicAppointment:
    appointment = await _by_token(request, session, token)
    if appointment.status != AppointmentStatus.CANCELLED:  # a second click changes nothing
        _changeable(appointment)
    return await _public(session, await service.cancel(session, appointment, data.reason))


@router.get(
    "/public/calendars/{token}.ics",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}}},
    tags=["public booking"],
)
async def calendar_feed(token: TokenPath, request: Request, session: DbSession) -> Response:
    """The calendar's private feed for calendar programs (subscribe by URL)."""
    await set_scope(session, Scope.for_system(), request_actor(request, "visitor"))
    calendar = await service.calendar_by_feed_token(session, token)
    await set_scope(session, Scope.for_client(calendar.agency_id, calendar.client_id))
    return Response(
        content=await service.feed(session, calendar),
        media_type="text/calendar; charset=utf-8",
        headers={"Cache-Control": "private, max-age=300"},
    )
