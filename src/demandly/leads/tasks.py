"""Telling the client about new and qualified leads by e-mail."""

from __future__ import annotations

from demandly.config import get_settings
from demandly.jobs.models import DomainEvent
from demandly.jobs.registry import JobContext, on_event
from demandly.leads.notify import notify
from demandly.leads.service import LEAD_CREATED, LEAD_QUALIFIED


@on_event(LEAD_CREATED, name="leads.notify_created")
async def notify_created(ctx: JobContext, event: DomainEvent) -> None:
    if event.entity_id is not None:
        await notify(ctx.session, event.entity_id, "created", get_settings().base_url)


@on_event(LEAD_QUALIFIED, name="leads.notify_qualified")
async def notify_qualified(ctx: JobContext, event: DomainEvent) -> None:
    if event.entity_id is not None:
        await notify(ctx.session, event.entity_id, "qualified", get_settings().base_url)
