"""Jobs of the integrations: delivering queued e-mail."""

from __future__ import annotations

from typing import Any

from demandly.config import get_settings
from demandly.integrations.email import SEND_TASK, open_payload, send_now
from demandly.jobs.registry import JobContext, task


@task(SEND_TASK)
async def send_email(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Open the sealed message and deliver it; an SMTP failure raises, so the job retries."""
    email, sender_name = open_payload(payload)
    await send_now(get_settings(), email, sender_name)
