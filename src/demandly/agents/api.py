"""Agents (draft, publish, versions) and provider connections under /api/v1."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response, status

from demandly.agents import schemas as s
from demandly.agents import service
from demandly.agents.models import Agent, AgentVersion, ProviderConnection
from demandly.agents.repository import AgentRepository
from demandly.auth.dependencies import CurrentAuth, DbSession
from demandly.auth.permissions import Permission
from demandly.kit.pagination import Page, PageParams, page_params, paginate
from demandly.tenancy import service as tenancy
from demandly.tenancy.schemas import ID_PATTERN

router = APIRouter()
Pages = Annotated[PageParams, Depends(page_params)]
IdPath = Annotated[str, Path(max_length=40, pattern=ID_PATTERN)]
IdQuery = Annotated[str | None, Query(max_length=40, pattern=ID_PATTERN)]


def _version(version: AgentVersion) -> s.AgentVersion:
    return s.AgentVersion(
        id=version.id,
        agent_id=version.agent_id,
        number=version.number,
        definition=version.definition,
        created_by=version.created_by,
        created_at=version.created_at,
    )


async def _agent(session: DbSession, ctx: CurrentAuth, agent_id: str, write: bool) -> Agent:
    """The agent if the caller can see it (404 otherwise), and may read or write it (403)."""
    agent = await service.get_agent(session, agent_id)
    permission = Permission.CONTENT_WRITE if write else Permission.CONTENT_READ
    ctx.require(permission, agent.agency_id, agent.client_id)
    return agent


# --- agents --------------------------------------------------------------------------------


@router.post("/agents", status_code=201, response_model=s.Agent, tags=["agents"])
async def create_agent(data: s.AgentCreate, ctx: CurrentAuth, session: DbSession) -> s.Agent:
    """A new agent of a client (content:write), as a draft with its own ``public_key``.
    Publish it to make it answer."""
    client = await tenancy.get_client(session, data.client_id)
    ctx.require(Permission.CONTENT_WRITE, client.agency_id, client.id)
    return service.agent_view(await service.create_agent(session, client, data))


@router.get("/agents", response_model=Page[s.Agent], tags=["agents"])
async def list_agents(
    ctx: CurrentAuth,
    session: DbSession,
    page: Pages,
    client_id: IdQuery = None,
    kind: Annotated[s.Kind | None, Query()] = None,
    status: Annotated[Literal["draft", "published"] | None, Query()] = None,
) -> Page[s.Agent]:
    """The agents the caller can see, newest first; deleted agents never show."""
    if client_id is not None:
        client = await tenancy.get_client(session, client_id)
        ctx.require(Permission.CONTENT_READ, client.agency_id, client.id)
    statement = AgentRepository(session).agents(client_id, kind, status)
    rows, cursor = await paginate(session, statement, Agent.id, page)
    return Page(items=[service.agent_view(r) for r in rows], next_cursor=cursor)


@router.get("/agents/{agent_id}", response_model=s.Agent, tags=["agents"])
async def get_agent(agent_id: IdPath, ctx: CurrentAuth, session: DbSession) -> s.Agent:
    """The draft, with the number and time of the live version."""
    return service.agent_view(await _agent(session, ctx, agent_id, write=False))


@router.patch("/agents/{agent_id}", response_model=s.Agent, tags=["agents"])
async def update_agent(
    agent_id: IdPath, data: s.AgentUpdate, ctx: CurrentAuth, session: DbSession
) -> s.Agent:
    """Edit the draft (the live version does not change until the next publish)."""
    agent = await _agent(session, ctx, agent_id, write=True)
    return service.agent_view(await service.update_agent(session, agent, data))


@router.delete("/agents/{agent_id}", status_code=204, tags=["agents"])
async def delete_agent(agent_id: IdPath, ctx: CurrentAuth, session: DbSession) -> Response:
    """The agent disappears and its widget stops answering."""
    await service.delete_agent(session, await _agent(session, ctx, agent_id, write=True))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/agents/{agent_id}/publish", response_model=s.Agent, tags=["agents"])
async def publish_agent(agent_id: IdPath, ctx: CurrentAuth, session: DbSession) -> s.Agent:
    """Snapshot the draft as the next version and make it live. New conversations run on
    it; running ones keep theirs. Nothing changes when the draft equals the live version."""
    agent = await _agent(session, ctx, agent_id, write=True)
    return service.agent_view(await service.publish(session, agent))


@router.get("/agents/{agent_id}/versions", response_model=Page[s.AgentVersion], tags=["agents"])
async def list_versions(
    agent_id: IdPath, ctx: CurrentAuth, session: DbSession, page: Pages
) -> Page[s.AgentVersion]:
    """Published versions, newest first."""
    agent = await _agent(session, ctx, agent_id, write=False)
    statement = AgentRepository(session).versions(agent.id)
    rows, cursor = await paginate(session, statement, AgentVersion.id, page)
    return Page(items=[_version(r) for r in rows], next_cursor=cursor)


@router.get("/agents/{agent_id}/versions/{number}", response_model=s.AgentVersion, tags=["agents"])
async def get_version(
    agent_id: IdPath,
    number: Annotated[int, Path(ge=1, le=1_000_000)],
    ctx: CurrentAuth,
    session: DbSession,
) -> s.AgentVersion:
    agent = await _agent(session, ctx, agent_id, write=False)
    return _version(await service.get_version(session, agent, number))


# --- provider connections ------------------------------------------------------------------


async def _connection(
    session: DbSession, ctx: CurrentAuth, connection_id: str, permission: Permission
) -> ProviderConnection:
    connection = await service.get_connection(session, connection_id)
    tenancy.authorize(ctx, permission, connection.agency_id)
    return connection


@router.post(
    "/provider-connections",
    status_code=201,
    response_model=s.ProviderConnection,
    tags=["provider connections"],
)
async def create_connection(
    data: s.ProviderConnectionCreate, ctx: CurrentAuth, session: DbSession
) -> s.ProviderConnection:
    """An OpenAI-compatible endpoint for the agency's agents (agencies:update). The API key
    is stored encrypted and never returned."""
    agency = await tenancy.get_agency(session, data.agency_id)
    tenancy.authorize(ctx, Permission.AGENCIES_UPDATE, agency.id)
    return service.connection_view(await service.create_connection(session, data))


@router.get(
    "/provider-connections",
    response_model=Page[s.ProviderConnection],
    tags=["provider connections"],
)
async def list_connections(
    ctx: CurrentAuth, session: DbSession, page: Pages, agency_id: IdQuery = None
) -> Page[s.ProviderConnection]:
    """The connections of the agencies where the caller holds an agency role."""
    if agency_id is not None:
        agency = await tenancy.get_agency(session, agency_id)
        tenancy.authorize(ctx, Permission.AGENCIES_READ, agency.id)
    statement = AgentRepository(session).connections(agency_id)
    rows, cursor = await paginate(session, statement, ProviderConnection.id, page)
    return Page(items=[service.connection_view(r) for r in rows], next_cursor=cursor)


@router.get(
    "/provider-connections/{connection_id}",
    response_model=s.ProviderConnection,
    tags=["provider connections"],
)
async def get_connection(
    connection_id: IdPath, ctx: CurrentAuth, session: DbSession
) -> s.ProviderConnection:
    connection = await _connection(session, ctx, connection_id, Permission.AGENCIES_READ)
    return service.connection_view(connection)


@router.patch(
    "/provider-connections/{connection_id}",
    response_model=s.ProviderConnection,
    tags=["provider connections"],
)
async def update_connection(
    connection_id: IdPath,
    data: s.ProviderConnectionUpdate,
    ctx: CurrentAuth,
    session: DbSession,
) -> s.ProviderConnection:
    """Change the settings or replace the key (null removes it); agencies:update."""
    connection = await _connection(session, ctx, connection_id, Permission.AGENCIES_UPDATE)
    return service.connection_view(await service.update_connection(session, connection, data))


@router.delete(
    "/provider-connections/{connection_id}", status_code=204, tags=["provider connections"]
)
async def delete_connection(
    connection_id: IdPath, ctx: CurrentAuth, session: DbSession
) -> Response:
    """Delete the connection and its key; 409 while an agent uses it."""
    connection = await _connection(session, ctx, connection_id, Permission.AGENCIES_UPDATE)
    await service.delete_connection(session, connection)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
