"""Reminder jobs: queued for each offset when an appointment is booked or moved."""

from __future__ import annotations

from typing import Any

from demandly.booking import service
from demandly.jobs.registry import JobContext, task


@task(service.REMINDER_TASK)
async def send_reminder(ctx: JobContext, payload: dict[str, Any]) -> None:
    """A stale reminder (the appointment moved or was cancelled since) does nothing."""
    await service.send_reminder(ctx.session, payload)
