"""Agent rules: drafts and published versions, provider connections, and what the engine and
the web channel need from an agent (its context, its LLM, its look-up by public key).
Never commits: the request or the job owns the transaction.

Authorisation by permission happens at the edge (api.py); the rules here hold for every
caller: an agent's connection belongs to its agency, a version never changes, a deleted agent
answers no one.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from datetime import time
from functools import lru_cache
from typing import Any, NamedTuple

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.agents import schemas as s
from demandly.agents.models import Agent, AgentStatus, AgentVersion, ProviderConnection
from demandly.agents.repository import AgentRepository
from demandly.config import Settings
from demandly.engine.providers.base import (
    AgentContext,
    FaqPair,
    OpeningRange,
    QualificationField,
)
from demandly.jobs.service import emit
from demandly.kit.cache import TTLCache
from demandly.kit.context import Scope
from demandly.kit.db import session_actor, session_scope, system_scope
from demandly.kit.errors import Conflict, NotFound, ValidationFailed
from demandly.kit.ids import random_token
from demandly.kit.time import utcnow
from demandly.tenancy.models import Agency, Client

PUBLIC_KEY_PREFIX = "pk_"
PUBLISHED_EVENT = "agent.published"
OPENAI_BASE_URL = "https://api.openai.com/v1"
# The last four characters of shorter keys would give away too much of them.
LAST4_MIN_KEY_LENGTH = 12


# --- definitions ---------------------------------------------------------------------------


# A version is never changed: its typed definition is read once per process, not at each
# conversation's start (twice there) and each call's.
_version_definitions = TTLCache[str, s.AgentDefinition](ttl_seconds=3600, max_items=2000)


def definition_of(source: Agent | AgentVersion | dict[str, Any]) -> s.AgentDefinition:
    """The typed definition of an agent's draft, a version, or a stored definition. A
    version's is shared: read it, never change it."""
    if isinstance(source, AgentVersion) and source.id is not None:
        found = _version_definitions.get(source.id)
        if found is None:
            found = _parse_definition(source.definition)
            _version_definitions.put(source.id, found)
        return found
    return _parse_definition(source if isinstance(source, dict) else source.definition)


def _parse_definition(raw: dict[str, Any]) -> s.AgentDefinition:
    fields = s.AgentDefinition.model_fields
    data = {k: v for k, v in raw.items() if k in fields}
    if isinstance(data.get("tools"), list):
        # A tool retired since the version was published is simply not offered any more.
        data["tools"] = [t for t in data["tools"] if t in s.KNOWN_TOOLS]
    return s.AgentDefinition.model_validate(data)


def snapshot(agent: Agent) -> dict[str, Any]:
    """What a version stores: the draft with the agent's name and kind."""
    return {"name": agent.name, "kind": agent.kind, **agent.definition}


def has_unpublished_changes(agent: Agent) -> bool:
    version = agent.current_version
    return version is None or version.definition != snapshot(agent)


def check_definition(definition: s.AgentDefinition) -> dict[str, Any]:
    """Rules across the items of a list, naming the item; returns the definition as stored
    (duplicate tools and origins dropped)."""
    keys: set[str] = set()
    for index, item in enumerate(definition.qualification):
        if item.key in keys:
            raise ValidationFailed(
                f"qualification.{index}.key", f"The key {item.key!r} is used twice."
            )
        keys.add(item.key)
    _check_opening_ranges(definition.business_hours.weekly)
    stored = definition.model_dump(mode="json")
    stored["tools"] = list(dict.fromkeys(stored["tools"]))
    stored["widget"]["allowed_origins"] = list(dict.fromkeys(stored["widget"]["allowed_origins"]))
    stored["business_hours"]["closed_dates"] = sorted(set(stored["business_hours"]["closed_dates"]))
    return stored


def _check_opening_ranges(weekly: list[s.OpeningRange]) -> None:
    seen: list[tuple[int, s.OpeningRange]] = []
    for index, current in enumerate(weekly):
        for other_index, other in seen:
            if (
                other.weekday == current.weekday
                and current.opens < other.closes
                and other.opens < current.closes
            ):
                raise ValidationFailed(
                    f"business_hours.weekly.{index}",
                    f"Overlaps business_hours.weekly.{other_index} on the same weekday.",
                )
        seen.append((index, current))


def _validated(data: dict[str, Any]) -> s.AgentDefinition:
    """Validate a merged definition; a failure is reported like a request's 422."""
    try:
        return s.AgentDefinition.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "body"
        raise ValidationFailed(field, f"{field}: {error['msg']}") from None


# --- agents --------------------------------------------------------------------------------


async def check_connection(session: AsyncSession, agency_id: str, connection_id: str) -> None:
    """The connection must belong to the agent's agency. Looked up by agency, not by the
    caller's scope: a client user or agency member may pick the agency's connection without
    seeing its settings."""
    async with system_scope(session):
        found = await AgentRepository(session).connection(connection_id, agency_id)
    if found is None:
        raise NotFound(
            "Provider connection not found.",
            details=[{"field": "llm.connection_id", "message": "not a connection of the agency"}],
        )


async def connection_choices(session: AsyncSession, agency_id: str) -> list[tuple[str, str]]:
    """(id, name) of the connections an agent of the agency may use. Like
    ``check_connection``, looked up by agency: whoever edits an agent may pick one by name
    without seeing its settings."""
    async with system_scope(session):
        return await AgentRepository(session).connection_names(agency_id)


async def create_agent(session: AsyncSession, client: Client, data: s.AgentCreate) -> Agent:
    definition = s.AgentDefinition.model_validate(
        data.model_dump(include=set(s.AgentDefinition.model_fields), exclude_unset=True)
    )
    stored = check_definition(definition)
    if definition.llm.connection_id is not None:
        await check_connection(session, client.agency_id, definition.llm.connection_id)
    await check_references(session, client.id, definition)
    agent = Agent(
        agency_id=client.agency_id,
        client_id=client.id,
        name=data.name,
        kind=data.kind,
        status=AgentStatus.DRAFT,
        public_key=random_token(PUBLIC_KEY_PREFIX, 24),
        definition=stored,
    )
    session.add(agent)
    await session.flush()
    return await get_agent(session, agent.id)


async def get_agent(session: AsyncSession, agent_id: str) -> Agent:
    agent = await AgentRepository(session).agent(agent_id)
    if agent is None:
        raise NotFound("Agent not found.")
    return agent


async def update_agent(session: AsyncSession, agent: Agent, data: s.AgentUpdate) -> Agent:
    """Apply a PATCH to the draft; the published version stays as it is."""
    changes = data.model_dump(exclude_unset=True)
    for column in ("name", "kind"):
        if column in changes:
            setattr(agent, column, changes.pop(column))
    if changes:
        merged = dict(agent.definition)
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        definition = _validated(merged)
        stored = check_definition(definition)
        new_connection = definition.llm.connection_id
        if new_connection is not None and new_connection != _connection_of(agent.definition):
            await check_connection(session, agent.agency_id, new_connection)
        await check_references(session, agent.client_id, definition)
        if stored != agent.definition:
            agent.definition = stored
    await session.flush()
    return await get_agent(session, agent.id)


async def check_references(
    session: AsyncSession, client_id: str, definition: s.AgentDefinition
) -> None:
    """Knowledge bases and the calendar must be the agent's own client's: anything else, even
    a row the caller may see in another client, is "not found"."""
    repo = AgentRepository(session)
    wanted = definition.knowledge_base_ids
    found = await repo.knowledge_base_ids(client_id, wanted)
    for index, kb_id in enumerate(wanted):
        if kb_id not in found:
            raise NotFound(
                "Knowledge base not found.",
                details=[
                    {
                        "field": f"knowledge_base_ids.{index}",
                        "message": "not a knowledge base of the agent's client",
                    }
                ],
            )
    if definition.calendar_id is not None and not await repo.has_calendar(
        client_id, definition.calendar_id
    ):
        raise NotFound(
            "Calendar not found.",
            details=[{"field": "calendar_id", "message": "not a calendar of the agent's client"}],
        )


def _connection_of(definition: dict[str, Any]) -> str | None:
    return (definition.get("llm") or {}).get("connection_id")


async def delete_agent(session: AsyncSession, agent: Agent) -> None:
    """Soft delete: the agent disappears from the API and its widget stops answering; the
    conversations that ran on its versions keep them."""
    agent.status = AgentStatus.DELETED
    await session.flush()


async def publish(session: AsyncSession, agent: Agent) -> Agent:
    """Snapshot the draft into a new version and make it the live one. Publishing a draft
    that equals the live version changes nothing."""
    repo = AgentRepository(session)
    locked = await repo.agent(agent.id, for_update=True)  # one publisher at a time
    if locked is None:
        raise NotFound("Agent not found.")
    agent = locked
    if not has_unpublished_changes(agent):
        return agent
    definition = _validated(agent.definition)
    connection_id = definition.llm.connection_id
    if connection_id is not None:
        async with system_scope(session):
            connection = await repo.connection(connection_id, agent.agency_id)
        if connection is None:
            raise ValidationFailed(
                "llm.connection_id", "The agent's provider connection no longer exists."
            )
    try:
        await check_references(session, agent.client_id, definition)
    except NotFound as exc:
        raise ValidationFailed(
            exc.details[0]["field"] if exc.details else "definition",
            f"{exc.message} It was deleted after it was chosen; pick another one.",
        ) from None
    version = AgentVersion(
        agency_id=agent.agency_id,
        client_id=agent.client_id,
        agent_id=agent.id,
        number=await repo.last_version_number(agent.id) + 1,
        definition=snapshot(agent),
        created_by=session_actor(session.sync_session).id,
    )
    session.add(version)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("The agent was published at the same moment; try again.") from None
    agent.current_version_id = version.id
    agent.published_at = utcnow()
    agent.status = AgentStatus.PUBLISHED
    await emit(
        session,
        PUBLISHED_EVENT,
        agency_id=agent.agency_id,
        client_id=agent.client_id,
        entity_type="agent",
        entity_id=agent.id,
        payload={"version_id": version.id, "version": version.number},
    )
    await session.flush()
    return await get_agent(session, agent.id)


async def get_version(session: AsyncSession, agent: Agent, number: int) -> AgentVersion:
    version = await AgentRepository(session).version(agent.id, number)
    if version is None:
        raise NotFound("Version not found.")
    return version


# --- for the engine and the channels -------------------------------------------------------


class PublishedAgent(NamedTuple):
    agent: Agent
    version: AgentVersion


async def published_version(session: AsyncSession, agent_id: str) -> AgentVersion | None:
    """The live version of a (visible, not deleted) agent, or None if never published."""
    agent = await AgentRepository(session).agent(agent_id)
    if agent is None or agent.status != AgentStatus.PUBLISHED:
        return None
    return agent.current_version


async def agent_by_public_key(session: AsyncSession, public_key: str) -> PublishedAgent | None:
    """The published agent a widget names, with its live version; None for an unknown key, a
    draft, a deleted agent, or a suspended or deleted client or agency. Looks across tenants
    (the key is all a visitor has); the session's scope is left as it was: the caller narrows
    it to the agent's client before doing anything else."""
    found = await published_with_owners(session, public_key)
    return None if found is None else found[0]


async def published_with_owners(
    session: AsyncSession, public_key: str
) -> tuple[PublishedAgent, Client, Agency] | None:
    """``agent_by_public_key`` with the agent's client and agency, read in the same statement.
    A session already in the agent's workspace (``workspace_of``: an agent's key and client
    never change) reads it there; any other looks across tenants."""
    if not public_key or len(public_key) > 64:
        return None
    repository = AgentRepository(session)
    known = _key_workspaces.get(public_key)
    if known is not None and session_scope(session.sync_session) == known:
        found = await repository.published_by_public_key(public_key)
    else:
        async with system_scope(session):
            found = await repository.published_by_public_key(public_key)
    if found is None or found[0].current_version is None:
        return None
    agent, client, agency = found
    _key_workspaces.put(public_key, Scope.for_client(agent.agency_id, agent.client_id))
    return PublishedAgent(agent, agent.current_version), client, agency


# The workspace of each agent key this process has seen a visitor use: a conversation's start
# then begins in it, so that PostgreSQL's row-level security is set once, with the
# transaction's BEGIN, instead of again after a look-up across tenants.
_key_workspaces = TTLCache[str, Scope](ttl_seconds=3600, max_items=20_000)


def workspace_of(public_key: str) -> Scope | None:
    """The workspace of the agent with ``public_key``, when this process has found it before
    (``published_with_owners`` checks it again, inside it)."""
    return _key_workspaces.get(public_key)


def agent_context(version: AgentVersion, client: Client) -> AgentContext:
    """What the engine knows of the agent beyond the messages, from a published version."""
    return definition_context(definition_of(version), client)


def definition_context(definition: s.AgentDefinition, client: Client) -> AgentContext:
    """The engine's context from any definition (a version, or a draft being tried out)."""
    hours = definition.business_hours
    timezone = hours.timezone or client.timezone
    return AgentContext(
        language=definition.language,
        persona_name=definition.persona_name or AgentContext.persona_name,
        business_name=client.name,
        greeting=definition.greeting,
        instructions=definition.instructions or "",
        timezone=timezone,
        phone_region=phone_region(timezone, client.locale),
        qualification=tuple(
            QualificationField(
                key=item.key,
                labels={lang: text for lang, text in item.label.model_dump().items() if text},
                type=item.type,
                required=item.required,
                options=tuple(item.options or ()),
                hint=item.hint,
            )
            for item in definition.qualification
        ),
        faq=tuple(FaqPair(question=p.question, answer=p.answer) for p in definition.faq),
        opening_hours=tuple(
            OpeningRange(
                weekday=r.weekday,
                opens=time.fromisoformat(r.opens),
                closes=time.fromisoformat(r.closes),
            )
            for r in hours.weekly
        ),
        closed_dates=tuple(sorted(set(hours.closed_dates))),
        out_of_hours_message=hours.out_of_hours_message,
        price_info=definition.price_info,
        handoff_keywords=tuple(definition.handoff.keywords),
        knowledge_base_ids=tuple(definition.knowledge_base_ids),
        calendar_id=definition.calendar_id,
    )


def phone_region(timezone: str, locale: str = "de") -> str:
    """The country whose national phone numbers visitors most likely type: the time zone's
    country (tz database), else by language."""
    region = _zone_countries().get(timezone)
    if region:
        return region
    return "US" if locale == "en" and timezone.startswith("America/") else "DE"


@lru_cache(maxsize=1)
def _zone_countries() -> dict[str, str]:
    """Time zone -> ISO country code, from the tz database's zone.tab (shipped by tzdata)."""
    countries: dict[str, str] = {}
    try:
        table = importlib.resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text()
    except (ModuleNotFoundError, FileNotFoundError):
        return countries
    for line in table.splitlines():
        if line and not line.startswith("#"):
            parts = line.split("\t")
            if len(parts) >= 3:
                countries.setdefault(parts[2], parts[0])
    countries.setdefault("UTC", "DE")
    return countries


@dataclass(frozen=True)
class ResolvedLLM:
    """The endpoint and settings one agent version talks to."""

    base_url: str
    api_key: str | None
    model: str
    temperature: float
    max_tokens: int
    region: str | None  # eu | us | self-hosted; None for the platform default (unlabelled)
    connection_id: str | None = None


def resolve_llm(
    settings: Settings,
    version: AgentVersion | Agent | dict[str, Any],
    connection: ProviderConnection | None,
) -> ResolvedLLM | None:
    """The LLM a version uses: its agency's connection, else the platform default from the
    settings; None (the offline engine) when neither is configured. A version naming a
    connection that is not given (deleted since) never falls back to the platform default,
    which may sit in another region: it gets None too."""
    llm = definition_of(version).llm
    if llm.connection_id is not None:
        if connection is None or connection.id != llm.connection_id:
            return None
        return ResolvedLLM(
            base_url=connection.base_url,
            api_key=connection.api_key,
            model=llm.model or connection.default_model,
            temperature=llm.temperature,
            max_tokens=llm.max_tokens,
            region=connection.region,
            connection_id=connection.id,
        )
    api_key = settings.effective_llm_api_key
    if not settings.llm_base_url and not api_key:
        return None
    return ResolvedLLM(
        base_url=(settings.llm_base_url or OPENAI_BASE_URL).rstrip("/"),
        api_key=api_key,
        model=llm.model or settings.llm_model,
        temperature=llm.temperature,
        max_tokens=llm.max_tokens,
        region=None,
    )


async def connection_for(
    session: AsyncSession, version: AgentVersion | Agent
) -> ProviderConnection | None:
    """The provider connection a version names, looked up within its agency."""
    connection_id = definition_of(version).llm.connection_id
    if connection_id is None:
        return None
    async with system_scope(session):
        return await AgentRepository(session).connection(connection_id, version.agency_id)


async def llm_for(
    session: AsyncSession, settings: Settings, version: AgentVersion | Agent
) -> ResolvedLLM | None:
    return resolve_llm(settings, version, await connection_for(session, version))


# --- provider connections ------------------------------------------------------------------


def _last4(api_key: str | None) -> str | None:
    if api_key is None or len(api_key) < LAST4_MIN_KEY_LENGTH:
        return None
    return api_key[-4:]


async def create_connection(
    session: AsyncSession, data: s.ProviderConnectionCreate
) -> ProviderConnection:
    connection = ProviderConnection(
        agency_id=data.agency_id,
        client_id=None,
        name=data.name,
        base_url=data.base_url,
        api_key=data.api_key,
        api_key_last4=_last4(data.api_key),
        default_model=data.default_model,
        region=data.region,
    )
    session.add(connection)
    await session.flush()
    return connection


async def get_connection(session: AsyncSession, connection_id: str) -> ProviderConnection:
    connection = await AgentRepository(session).connection(connection_id)
    if connection is None:
        raise NotFound("Provider connection not found.")
    return connection


async def update_connection(
    session: AsyncSession, connection: ProviderConnection, data: s.ProviderConnectionUpdate
) -> ProviderConnection:
    changes = data.model_dump(exclude_unset=True)
    if "api_key" in changes:
        api_key = changes.pop("api_key")
        # Sealing is not deterministic: compare before writing, or every PATCH is a change.
        if api_key != connection.api_key:
            connection.api_key = api_key
            connection.api_key_last4 = _last4(api_key)
    for field, value in changes.items():
        if getattr(connection, field) != value:
            setattr(connection, field, value)
    await session.flush()
    refreshed = await AgentRepository(session).connection(connection.id)
    assert refreshed is not None
    return refreshed


async def delete_connection(session: AsyncSession, connection: ProviderConnection) -> None:
    """Refused while an agent's draft or live version uses it: a live agent would otherwise
    fall silent or move to another provider without anyone deciding so."""
    async with system_scope(session):
        users = await AgentRepository(session).using_connection(connection.agency_id, connection.id)
    if users:
        names = ", ".join(sorted(a.name for a in users)[:5])
        raise Conflict(
            f"The connection is used by agents ({names}); switch them to another first.",
            details={"agent_ids": sorted(a.id for a in users)},
        )
    await session.delete(connection)
    await session.flush()


def connection_view(connection: ProviderConnection) -> s.ProviderConnection:
    return s.ProviderConnection(
        id=connection.id,
        agency_id=connection.agency_id,
        name=connection.name,
        base_url=connection.base_url,
        default_model=connection.default_model,
        region=connection.region,
        api_key_set=connection.api_key_last4 is not None or connection.api_key is not None,
        api_key_last4=connection.api_key_last4,
        created_at=connection.created_at,
        updated_at=connection.updated_at,
    )


def agent_view(agent: Agent) -> s.Agent:
    version = agent.current_version
    return s.Agent.model_validate(
        {
            **definition_of(agent).model_dump(),
            "tools": list(agent.definition.get("tools", [])),
            "id": agent.id,
            "agency_id": agent.agency_id,
            "client_id": agent.client_id,
            "name": agent.name,
            "kind": agent.kind,
            "status": agent.status,
            "public_key": agent.public_key,
            "published_version": version.number if version is not None else None,
            "published_at": agent.published_at,
            "has_unpublished_changes": has_unpublished_changes(agent),
            "created_at": agent.created_at,
            "updated_at": agent.updated_at,
        }
    )
