"""The campaign dialer: once a minute, due contacts of running campaigns get their call."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from demandly.channels.phone import service, sms
from demandly.config import get_settings
from demandly.jobs.registry import JobContext, periodic, task


@periodic("phone.dialer", every=timedelta(minutes=1))
async def dial_campaigns(ctx: JobContext, payload: dict[str, Any]) -> None:
    await service.run_dialer(ctx.session, get_settings())


@task(sms.REMINDER_SMS_TASK)
async def send_reminder_sms(ctx: JobContext, payload: dict[str, Any]) -> None:
    """An appointment reminder by SMS; Twilio failing raises, and the job is retried."""
    await sms.send_reminder(ctx.db, get_settings(), payload)
