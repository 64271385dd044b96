"""Queries on the audit trail (scoped by the session like every tenant table)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.audit.models import AuditEvent, AuditHead
from demandly.kit.context import Scope
from demandly.kit.db import grants_criteria
from demandly.kit.pagination import PageParams, paginate


@dataclass(frozen=True)
class AuditFilters:
    agency_id: str | None = None
    client_id: str | None = None
    action: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    actor_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _statement(self, filters: AuditFilters, within: Scope | None) -> Select[Any]:
        statement = select(AuditEvent)
        if within is not None:
            statement = statement.where(
                grants_criteria(within, AuditEvent.agency_id, AuditEvent.client_id)
            )
        equal = {
            AuditEvent.agency_id: filters.agency_id,
            AuditEvent.client_id: filters.client_id,
            AuditEvent.action: filters.action,
            AuditEvent.entity_type: filters.entity_type,
            AuditEvent.entity_id: filters.entity_id,
            AuditEvent.actor_id: filters.actor_id,
        }
        for column, value in equal.items():
            if value is not None:
                statement = statement.where(column == value)
        if filters.since is not None:
            statement = statement.where(AuditEvent.created_at >= filters.since)
        if filters.until is not None:
            statement = statement.where(AuditEvent.created_at < filters.until)
        return statement

    async def page(
        self, filters: AuditFilters, params: PageParams, within: Scope | None = None
    ) -> tuple[list[AuditEvent], str | None]:
        """Newest first. ``within`` narrows further than the session's scope (to the places
        where the caller holds the permission to read the trail)."""
        return await paginate(self.session, self._statement(filters, within), AuditEvent.id, params)

    async def heads(self) -> list[AuditHead]:
        """The last link of every chain (read under the system scope)."""
        result = await self.session.execute(select(AuditHead).order_by(AuditHead.chain))
        return list(result.scalars())

    async def hashes_at(self, chain: str, seqs: list[int]) -> dict[int, str]:
        """The stored hash of each of ``seqs`` in ``chain`` that still exists."""
        result = await self.session.execute(
            select(AuditEvent.seq, AuditEvent.hash).where(
                AuditEvent.chain == chain, AuditEvent.seq.in_(seqs)
            )
        )
        return {seq: digest for seq, digest in result}
