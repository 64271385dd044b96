"""The phone API under /api/v1: Twilio connections, phone numbers, the call log, outbound calls,
campaigns and the phone simulator."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from demandly.agents import service as agents
from demandly.agents.models import Agent
from demandly.auth.dependencies import CurrentAuth, DbSession, get_database
from demandly.auth.errors import FailAfterCommit
from demandly.auth.permissions import Permission
from demandly.channels.phone import schemas as s
from demandly.channels.phone import service
from demandly.channels.phone.models import Call, Campaign, PhoneNumber, TwilioConnection
from demandly.channels.phone.repository import PhoneRepository
from demandly.channels.phone.twilio_client import TwilioUnavailable
from demandly.config import Settings
from demandly.kit.errors import ValidationFailed
from demandly.kit.pagination import Page, PageParams, page_params, paginate
from demandly.tenancy import service as tenancy
from demandly.tenancy.schemas import ID_PATTERN

router = APIRouter(tags=["phone"])
Pages = Annotated[PageParams, Depends(page_params)]
IdPath = Annotated[str, Path(max_length=40, pattern=ID_PATTERN)]
IdQuery = Annotated[str | None, Query(max_length=40, pattern=ID_PATTERN)]


def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _agent(session: DbSession, ctx: CurrentAuth, agent_id: str, write: bool) -> Agent:
    agent = await agents.get_agent(session, agent_id)
    permission = Permission.CONTENT_WRITE if write else Permission.CONTENT_READ
    ctx.require(permission, agent.agency_id, agent.client_id)
    return agent


async def _client_filter(session: DbSession, ctx: CurrentAuth, client_id: str | None) -> None:
    if client_id is not None:
        client = await tenancy.get_client(session, client_id)
        ctx.require(Permission.CONTENT_READ, client.agency_id, client.id)


# --- Twilio connections --------------------------------------------------------------------


def _connection_permission(connection_client_id: str | None) -> Permission:
    # An agency's connection is agency settings; a client's, content of its workspace.
    return Permission.AGENCIES_UPDATE if connection_client_id is None else Permission.CONTENT_WRITE


async def _connection(
    session: DbSession, ctx: CurrentAuth, connection_id: str, write: bool
) -> TwilioConnection:
    connection = await service.get_connection(session, connection_id)
    if write:
        permission = _connection_permission(connection.client_id)
    else:
        permission = (
            Permission.AGENCIES_READ if connection.client_id is None else Permission.CONTENT_READ
        )
    tenancy.authorize(ctx, permission, connection.agency_id, connection.client_id)
    return connection


@router.post("/twilio-connections", status_code=201, response_model=s.TwilioConnection)
async def create_connection(
    data: s.TwilioConnectionCreate, ctx: CurrentAuth, session: DbSession, request: Request
) -> s.TwilioConnection:
    """A Twilio account for the agency (or one client). The credentials are checked with
    Twilio before they are stored (encrypted; never returned)."""
    if data.client_id is not None:
        client = await tenancy.get_client(session, data.client_id)
        if client.agency_id != data.agency_id:
            raise ValidationFailed("client_id", "Not a client of the agency.")
        ctx.require(Permission.CONTENT_WRITE, client.agency_id, client.id)
    else:
        agency = await tenancy.get_agency(session, data.agency_id)
        ctx.require(Permission.AGENCIES_UPDATE, agency.id)
    connection = await service.create_connection(session, _settings(request), data)
    return service.connection_view(connection)


@router.get("/twilio-connections", response_model=Page[s.TwilioConnection])
async def list_connections(
    ctx: CurrentAuth, session: DbSession, page: Pages, agency_id: IdQuery = None
) -> Page[s.TwilioConnection]:
    if agency_id is not None:
        agency = await tenancy.get_agency(session, agency_id)
        ctx.require(Permission.CONTENT_READ, agency.id)
    statement = PhoneRepository(session).connections(agency_id)
    rows, cursor = await paginate(session, statement, TwilioConnection.id, page)
    return Page(items=[service.connection_view(r) for r in rows], next_cursor=cursor)


@router.get("/twilio-connections/{connection_id}", response_model=s.TwilioConnection)
async def get_connection(
    connection_id: IdPath, ctx: CurrentAuth, session: DbSession
) -> s.TwilioConnection:
    return service.connection_view(await _connection(session, ctx, connection_id, write=False))


@router.patch("/twilio-connections/{connection_id}", response_model=s.TwilioConnection)
async def update_connection(
    connection_id: IdPath,
    data: s.TwilioConnectionUpdate,
    ctx: CurrentAuth,
    session: DbSession,
    request: Request,
) -> s.TwilioConnection:
    """Rename, or replace credentials (checked with Twilio again)."""
    connection = await _connection(session, ctx, connection_id, write=True)
    updated = await service.update_connection(session, _settings(request), connection, data)
    return service.connection_view(updated)


@router.delete("/twilio-connections/{connection_id}", status_code=204)
async def delete_connection(
    connection_id: IdPath, ctx: CurrentAuth, session: DbSession
) -> Response:
    """409 while phone numbers of the connection are still here."""
    connection = await _connection(session, ctx, connection_id, write=True)
    await service.delete_connection(session, connection)
    return Response(status_code=204)


# --- phone numbers -------------------------------------------------------------------------


async def _number(session: DbSession, ctx: CurrentAuth, number_id: str, write: bool) -> PhoneNumber:
    number = await service.get_number(session, number_id)
    permission = Permission.CONTENT_WRITE if write else Permission.CONTENT_READ
    tenancy.authorize(ctx, permission, number.agency_id, number.client_id)
    return number


@router.post("/phone-numbers/import", response_model=list[s.PhoneNumber])
async def import_numbers(
    data: s.NumberImport, ctx: CurrentAuth, session: DbSession, request: Request
) -> list[s.PhoneNumber]:
    """Bring in the numbers the Twilio account already has."""
    connection = await _connection(session, ctx, data.connection_id, write=True)
    numbers = await service.import_numbers(session, _settings(request), connection)
    return [s.PhoneNumber.model_validate(n) for n in numbers]


@router.get("/phone-numbers/available", response_model=list[s.NumberSearch])
async def search_numbers(
    ctx: CurrentAuth,
    session: DbSession,
    request: Request,
    connection_id: Annotated[str, Query(max_length=40, pattern=ID_PATTERN)],
    country: Annotated[str, Query(pattern=r"^[A-Z]{2}$")] = "DE",
    contains: Annotated[str | None, Query(max_length=16, pattern=r"^[0-9*+]+$")] = None,
    area_code: Annotated[int | None, Query(ge=1, le=99999)] = None,
) -> list[s.NumberSearch]:
    """Local numbers Twilio offers in ``country`` (AvailablePhoneNumbers)."""
    connection = await _connection(session, ctx, connection_id, write=True)
    return await service.search_numbers(
        _settings(request), connection, country, contains, area_code
    )


@router.post("/phone-numbers", status_code=201, response_model=s.PhoneNumber)
async def buy_number(
    data: s.NumberBuy, ctx: CurrentAuth, session: DbSession, request: Request
) -> s.PhoneNumber:
    """Buy a number at Twilio; its voice URL and status callback point here."""
    connection = await _connection(session, ctx, data.connection_id, write=True)
    number = await service.buy_number(session, _settings(request), connection, data)
    return s.PhoneNumber.model_validate(number)


@router.get("/phone-numbers", response_model=Page[s.PhoneNumber])
async def list_numbers(
    ctx: CurrentAuth,
    session: DbSession,
    page: Pages,
    client_id: IdQuery = None,
    agent_id: IdQuery = None,
) -> Page[s.PhoneNumber]:
    await _client_filter(session, ctx, client_id)
    statement = PhoneRepository(session).numbers(client_id, agent_id)
    rows, cursor = await paginate(session, statement, PhoneNumber.id, page)
    return Page(items=[s.PhoneNumber.model_validate(r) for r in rows], next_cursor=cursor)


@router.get("/phone-numbers/{number_id}", response_model=s.PhoneNumber)
async def get_number(number_id: IdPath, ctx: CurrentAuth, session: DbSession) -> s.PhoneNumber:
    return s.PhoneNumber.model_validate(await _number(session, ctx, number_id, write=False))


@router.patch("/phone-numbers/{number_id}", response_model=s.PhoneNumber)
async def assign_number(
    number_id: IdPath,
    data: s.NumberUpdate,
    ctx: CurrentAuth,
    session: DbSession,
    request: Request,
) -> s.PhoneNumber:
    """Give the number to an agent (null: to nobody)."""
    number = await _number(session, ctx, number_id, write=True)
    if data.agent_id is not None:
        await _agent(session, ctx, data.agent_id, write=True)
    updated = await service.assign_number(session, _settings(request), number, data.agent_id)
    return s.PhoneNumber.model_validate(updated)


@router.delete("/phone-numbers/{number_id}", status_code=204)
async def release_number(
    number_id: IdPath, ctx: CurrentAuth, session: DbSession, request: Request
) -> Response:
    """Release the number at Twilio and remove it."""
    number = await _number(session, ctx, number_id, write=True)
    await service.release_number(session, _settings(request), number)
    return Response(status_code=204)


# --- calls ---------------------------------------------------------------------------------


@router.get("/calls", response_model=Page[s.Call])
async def list_calls(
    ctx: CurrentAuth,
    session: DbSession,
    page: Pages,
    client_id: IdQuery = None,
    agent_id: IdQuery = None,
    campaign_id: IdQuery = None,
    status: Annotated[str | None, Query(max_length=12, pattern=r"^[a-z-]+$")] = None,
    direction: Annotated[Literal["inbound", "outbound"] | None, Query()] = None,
) -> Page[s.Call]:
    """The call log, newest first; phone numbers are masked here."""
    await _client_filter(session, ctx, client_id)
    statement = PhoneRepository(session).calls(client_id, agent_id, status, direction, campaign_id)
    rows, cursor = await paginate(session, statement, Call.id, page)
    return Page(items=[service.call_view(r, masked=True) for r in rows], next_cursor=cursor)


@router.get("/calls/{call_id}", response_model=s.CallDetail)
async def get_call(call_id: IdPath, ctx: CurrentAuth, session: DbSession) -> s.CallDetail:
    """One call with its numbers, transcript, summary, outcome and recording."""
    call = await service.get_call(session, call_id)
    ctx.require(Permission.CONTENT_READ, call.agency_id, call.client_id)
    return await service.call_detail(session, call)


@router.post("/calls", status_code=201, response_model=s.Call)
async def place_call(
    data: s.OutboundCall, ctx: CurrentAuth, session: DbSession, request: Request
) -> s.Call:
    """Call someone with an agent (from the agent's number); Twilio reports progress."""
    agent = await _agent(session, ctx, data.agent_id, write=True)
    call = await service.create_outbound(
        session,
        agent,
        data.to,
        number_id=data.phone_number_id,
        contact_id=data.contact_id,
        context=data.context,
    )
    await session.commit()  # the call exists before Twilio can call back about it
    try:
        await service.dial(session, _settings(request), call)
    except TwilioUnavailable as exc:
        raise FailAfterCommit(exc) from None
    return service.call_view(call, masked=False)


# --- the simulator -------------------------------------------------------------------------


@router.post("/agents/{agent_id}/simulate-call", status_code=201, response_model=s.SimulatedCall)
async def simulate_call(
    agent_id: IdPath, ctx: CurrentAuth, session: DbSession, request: Request
) -> s.SimulatedCall:
    """Try a phone agent without Twilio: a call on its live version, answered with the
    first prompt (from the same TwiML a caller would get)."""
    agent = await _agent(session, ctx, agent_id, write=True)
    await session.commit()  # the call runs in transactions of its own, like a real one
    db = get_database(request)
    return await service.simulate_call(db, _settings(request), agent, ctx.actor)


@router.post("/agents/{agent_id}/simulate-call/turn", response_model=s.SimulatedCall)
async def simulate_turn(
    agent_id: IdPath,
    data: s.SimulatedTurn,
    ctx: CurrentAuth,
    session: DbSession,
    request: Request,
) -> s.SimulatedCall:
    """What the caller says (empty: silence; digits: keys), through the gather path."""
    agent = await _agent(session, ctx, agent_id, write=True)
    await session.commit()
    db = get_database(request)
    settings = _settings(request)
    return await service.simulate_turn(db, settings, agent, data.call_id, data.text, ctx.actor)


# --- campaigns -----------------------------------------------------------------------------


async def _campaign(
    session: DbSession, ctx: CurrentAuth, campaign_id: str, write: bool
) -> Campaign:
    campaign = await service.get_campaign(session, campaign_id)
    permission = Permission.CONTENT_WRITE if write else Permission.CONTENT_READ
    ctx.require(permission, campaign.agency_id, campaign.client_id)
    return campaign


@router.post("/campaigns", status_code=201, response_model=s.CampaignDetail)
async def create_campaign(
    data: s.CampaignCreate, ctx: CurrentAuth, session: DbSession
) -> s.CampaignDetail:
    """Outbound calls to contacts within a calling window (a draft: PATCH status=running)."""
    agent = await _agent(session, ctx, data.agent_id, write=True)
    campaign = await service.create_campaign(session, agent, data)
    return await service.campaign_detail(session, campaign)


@router.get("/campaigns", response_model=Page[s.Campaign])
async def list_campaigns(
    ctx: CurrentAuth, session: DbSession, page: Pages, client_id: IdQuery = None
) -> Page[s.Campaign]:
    await _client_filter(session, ctx, client_id)
    statement = PhoneRepository(session).campaigns(client_id)
    rows, cursor = await paginate(session, statement, Campaign.id, page)
    return Page(items=[s.Campaign.model_validate(r) for r in rows], next_cursor=cursor)


@router.get("/campaigns/{campaign_id}", response_model=s.CampaignDetail)
async def get_campaign(
    campaign_id: IdPath, ctx: CurrentAuth, session: DbSession
) -> s.CampaignDetail:
    campaign = await _campaign(session, ctx, campaign_id, write=False)
    return await service.campaign_detail(session, campaign)


@router.patch("/campaigns/{campaign_id}", response_model=s.CampaignDetail)
async def update_campaign(
    campaign_id: IdPath, data: s.CampaignUpdate, ctx: CurrentAuth, session: DbSession
) -> s.CampaignDetail:
    """Start or pause it, rename it, add contacts."""
    campaign = await _campaign(session, ctx, campaign_id, write=True)
    campaign = await service.update_campaign(session, campaign, data)
    return await service.campaign_detail(session, campaign)


@router.delete("/campaigns/{campaign_id}", status_code=204)
async def delete_campaign(campaign_id: IdPath, ctx: CurrentAuth, session: DbSession) -> Response:
    """The campaign and its targets go; its calls stay in the log."""
    campaign = await _campaign(session, ctx, campaign_id, write=True)
    await service.delete_campaign(session, campaign)
    return Response(status_code=204)
