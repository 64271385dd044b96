"""Reminder jobs: queued for each offset when an appointment is booked or moved."""

from __future__ import annotations

from typing import Any

from demandly.booking import service
from demandly.channels.phone import sms
from demandly.jobs.registry import JobContext, task


@task(service.REMINDER_TASK)
async def send_reminder(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The e-mail, and the SMS job (it texts only where the client can and the attendee
    agreed: see ``channels/phone/sms.py``). A stale reminder (the appointment moved or was
    cancelled since) does nothing."""
    await service.send_reminder(ctx.session, payload)
    await sms.queue_reminder(
        ctx.session, payload, agency_id=ctx.job.agency_id, client_id=ctx.job.client_id
    )
