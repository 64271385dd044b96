"""Booking jobs: the attendee's e-mail about a booking, move or cancellation, and the
reminders queued for each offset when an appointment is booked or moved."""

from __future__ import annotations

from typing import Any

from demandly.booking import service
from demandly.channels.phone import sms
from demandly.config import get_settings
from demandly.integrations.email import send_now
from demandly.jobs.registry import JobContext, task
from demandly.kit.context import Scope


@task(service.REMINDER_TASK)
async def send_reminder(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The e-mail, and the SMS job (it texts only where the client can and the attendee
    agreed: see ``channels/phone/sms.py``). A stale reminder (the appointment moved or was
    cancelled since) does nothing."""
    await service.send_reminder(ctx.session, payload)
    await sms.queue_reminder(
        ctx.session, payload, agency_id=ctx.job.agency_id, client_id=ctx.job.client_id
    )


@task(service.NOTICE_TASK)
async def send_notice(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The confirmation, update or cancellation e-mail with its invitation: written in a
    short transaction of its own, then delivered outside any (a slow mail server must not
    hold SQLite's write lock). A failed delivery raises, and the job is retried."""
    agency_id = ctx.job.agency_id
    scope = Scope.for_agency(agency_id) if agency_id else Scope.for_system()
    async with ctx.db.session(scope) as session:
        mail = await service.notice_email(session, payload)
    if mail is not None:
        email, brand = mail
        await send_now(get_settings(), email, brand.from_name)
