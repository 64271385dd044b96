"""Every query of the agents domain. The session's scope filters tenant rows on its own; the
service runs the look-ups that must see across tenants (a widget's public key) under the
system scope on purpose."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from demandly.agents.models import Agent, AgentStatus, AgentVersion, ProviderConnection
from demandly.booking.models import Calendar
from demandly.knowledge.models import KnowledgeBase
from demandly.tenancy.models import Agency, Client, Status


def _live_agents() -> Select[Any]:
    """Agents with their live version; a deleted client takes its agents with it at once."""
    return (
        select(Agent)
        .join(Client, Client.id == Agent.client_id)
        .where(Agent.status != AgentStatus.DELETED, Client.status != Status.DELETED)
        .options(joinedload(Agent.current_version))
    )


# Built once: every conversation a widget starts runs it, and building it (with its joined
# load) cost as much as running it. The client and agency it joins come along (no look-ups
# of their own).
_PUBLISHED_BY_PUBLIC_KEY = (
    _live_agents()
    .add_columns(Client, Agency)
    .join(Agency, Agency.id == Agent.agency_id)
    .where(
        Agent.public_key == bindparam("public_key"),
        Agent.status == AgentStatus.PUBLISHED,
        Agent.current_version_id.is_not(None),
        Client.status == Status.ACTIVE,
        Agency.status == Status.ACTIVE,
    )
)


class AgentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _one(self, statement: Select[Any]) -> Any:
        return (await self.session.execute(statement)).scalar_one_or_none()

    # --- agents (deleted agents are gone for everyone)

    def agents(
        self, client_id: str | None = None, kind: str | None = None, status: str | None = None
    ) -> Select[Any]:
        statement = _live_agents()
        if client_id is not None:
            statement = statement.where(Agent.client_id == client_id)
        if kind is not None:
            statement = statement.where(Agent.kind == kind)
        if status is not None:
            statement = statement.where(Agent.status == status)
        return statement

    async def agent(self, agent_id: str, *, for_update: bool = False) -> Agent | None:
        statement = self.agents().where(Agent.id == agent_id)
        # Fresh values even when the row is in the session already (after a flush).
        statement = statement.execution_options(populate_existing=True)
        if for_update:
            statement = statement.with_for_update(of=Agent)
        return await self._one(statement)

    async def published_by_public_key(self, public_key: str) -> tuple[Agent, Client, Agency] | None:
        """A published agent of an active client of an active agency, with them."""
        result = await self.session.execute(_PUBLISHED_BY_PUBLIC_KEY, {"public_key": public_key})
        row = result.one_or_none()
        return None if row is None else (row.Agent, row.Client, row.Agency)

    async def using_connection(self, agency_id: str, connection_id: str) -> list[Agent]:
        """Agents whose draft or live version names the connection (checked in Python: the
        definitions are JSON, and an agency has tens of agents, not millions)."""
        rows = await self.session.execute(self.agents().where(Agent.agency_id == agency_id))
        return [
            agent
            for agent in rows.scalars()
            if connection_id
            in (
                _connection_id(agent.definition),
                _connection_id(agent.current_version.definition if agent.current_version else {}),
            )
        ]

    # --- versions

    def versions(self, agent_id: str) -> Select[Any]:
        return select(AgentVersion).where(AgentVersion.agent_id == agent_id)

    async def version(self, agent_id: str, number: int) -> AgentVersion | None:
        return await self._one(self.versions(agent_id).where(AgentVersion.number == number))

    async def version_by_id(self, version_id: str) -> AgentVersion | None:
        return await self._one(select(AgentVersion).where(AgentVersion.id == version_id))

    async def last_version_number(self, agent_id: str) -> int:
        statement = select(func.max(AgentVersion.number)).where(AgentVersion.agent_id == agent_id)
        return (await self.session.execute(statement)).scalar_one() or 0

    # --- provider connections

    def connections(self, agency_id: str | None = None) -> Select[Any]:
        statement = select(ProviderConnection)
        if agency_id is not None:
            statement = statement.where(ProviderConnection.agency_id == agency_id)
        return statement

    async def connection_names(self, agency_id: str) -> list[tuple[str, str]]:
        """(id, name) of the agency's connections, by name: what a picker shows."""
        statement = (
            select(ProviderConnection.id, ProviderConnection.name)
            .where(ProviderConnection.agency_id == agency_id)
            .order_by(ProviderConnection.name, ProviderConnection.id)
        )
        return [(row.id, row.name) for row in await self.session.execute(statement)]

    async def connection(
        self, connection_id: str, agency_id: str | None = None
    ) -> ProviderConnection | None:
        statement = self.connections(agency_id).where(ProviderConnection.id == connection_id)
        return await self._one(statement.execution_options(populate_existing=True))

    # --- what a definition refers to (rows of the agent's own client only)

    async def knowledge_base_ids(self, client_id: str, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        rows = await self.session.execute(
            select(KnowledgeBase.id).where(
                KnowledgeBase.client_id == client_id, KnowledgeBase.id.in_(list(ids))
            )
        )
        return set(rows.scalars())

    async def has_calendar(self, client_id: str, calendar_id: str) -> bool:
        statement = select(Calendar.id).where(
            Calendar.client_id == client_id, Calendar.id == calendar_id
        )
        return await self._one(statement) is not None


def _connection_id(definition: dict[str, Any]) -> str | None:
    llm = definition.get("llm") or {}
    return llm.get("connection_id") if isinstance(llm, dict) else None
