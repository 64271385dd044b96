"""The agency home's figures: counts per client over a period (the session's scope applies,
so a user only ever counts what they may see)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.booking.models import Appointment
from demandly.channels.phone.models import Call
from demandly.conversations.models import Conversation, Message
from demandly.leads.models import Lead


@dataclass
class Usage:
    conversations: int = 0
    messages: int = 0
    call_seconds: int = 0
    leads: int = 0
    appointments: int = 0

    @property
    def call_minutes(self) -> int:
        return (self.call_seconds + 59) // 60


class DashboardRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def usage_by_client(self, agency_id: str, since: datetime) -> dict[str, Usage]:
        """What each client of the agency used since ``since``."""
        usage: dict[str, Usage] = defaultdict(Usage)
        counts: list[tuple[str, Any, Any]] = [
            ("conversations", Conversation, func.count()),
            ("messages", Message, func.count()),
            ("leads", Lead, func.count()),
            ("call_seconds", Call, func.coalesce(func.sum(Call.duration_seconds), 0)),
        ]
        for name, model, aggregate in counts:
            rows = await self.session.execute(
                select(model.client_id, aggregate)
                .where(model.agency_id == agency_id, model.created_at >= since)
                .group_by(model.client_id)
            )
            for client_id, value in rows:
                setattr(usage[client_id], name, int(value or 0))
        booked = await self.session.execute(
            select(Appointment.client_id, func.count())
            .where(Appointment.agency_id == agency_id, Appointment.created_at >= since)
            .group_by(Appointment.client_id)
        )
        for client_id, value in booked:
            usage[client_id].appointments = int(value)
        return dict(usage)
