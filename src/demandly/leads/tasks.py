"""Telling the client about new and qualified leads by e-mail."""

from __future__ import annotations

from typing import Any

from demandly.config import get_settings
from demandly.jobs.models import DomainEvent
from demandly.jobs.registry import JobContext, task
from demandly.leads.notify import notify
from demandly.leads.service import NOTIFY_TASK


@task(NOTIFY_TASK)
async def notify_recipients(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Queued by the leads service, only when the client has recipients for the reason."""
    await notify(ctx.session, payload["lead_id"], payload["reason"], get_settings().base_url)


# Jobs queued before the service queued notifications itself: one per lead event, run as
# they were.
@task("leads.notify_created")
async def notify_created(ctx: JobContext, payload: dict[str, Any]) -> None:
    await _notify_of_event(ctx, payload, "created")


@task("leads.notify_qualified")
async def notify_qualified(ctx: JobContext, payload: dict[str, Any]) -> None:
    await _notify_of_event(ctx, payload, "qualified")


async def _notify_of_event(ctx: JobContext, payload: dict[str, Any], reason: str) -> None:
    event = await ctx.session.get(DomainEvent, payload["event_id"])
    if event is not None and event.entity_id is not None:
        await notify(ctx.session, event.entity_id, reason, get_settings().base_url)
