"""Ending conversations nobody writes in any more."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from demandly.config import get_settings
from demandly.conversations import service
from demandly.jobs.registry import JobContext, periodic


@periodic("conversations.end_idle", every=timedelta(minutes=1))
async def end_idle_conversations(ctx: JobContext, payload: dict[str, Any]) -> None:
    idle = timedelta(minutes=get_settings().conversation_idle_minutes)
    await service.end_idle(ctx.session, idle)
