"""Dashboard screen: phone. A client's Twilio connections and numbers (import, search and buy,
assign, release), its call log with transcripts and recordings, and its outbound campaigns.

Every action calls the same service function, with the same permission, as
``channels/phone/api.py``; Twilio's refusals become messages next to the form."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import aiohttp
from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from demandly.agents.models import Agent
from demandly.agents.repository import AgentRepository
from demandly.auth.permissions import Permission
from demandly.channels.phone import schemas as s
from demandly.channels.phone import service
from demandly.channels.phone.models import Call, Campaign, PhoneNumber, TwilioConnection
from demandly.channels.phone.repository import PhoneRepository
from demandly.channels.phone.twilio_client import TwilioUnavailable
from demandly.kit.errors import DemandlyError, NotFound
from demandly.kit.pagination import PageParams, paginate
from demandly.tenancy.models import Client
from demandly.tenancy.schemas import ID_PATTERN
from demandly.web.deps import Page, PageDep, PageRoute
from demandly.web.forms import FORM_ERROR, FormInvalid, fields, parse, service_errors

router = APIRouter(route_class=PageRoute, include_in_schema=False)

BASE = "/app/clients/{client_id}/phone"
IdPath = Annotated[str, Path(max_length=40, pattern=ID_PATTERN)]
Cursor = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
CALL_STATUSES = (
    "queued",
    "ringing",
    "in-progress",
    "completed",
    "busy",
    "failed",
    "no-answer",
    "canceled",
)
PAGE_SIZE = 50
# Twilio serves a recording's audio at its resource URL plus an extension.
RECORDING_PATH = "/2010-04-01/Accounts/{account}/Recordings/{sid}.mp3"
TWILIO_API = "https://api.twilio.com"


class NumberQuery(BaseModel):
    """The search form: the same limits as ``GET /api/v1/phone-numbers/available``."""

    model_config = ConfigDict(str_strip_whitespace=True)

    connection_id: str = Field(max_length=40, pattern=ID_PATTERN)
    country: str = Field("DE", pattern=r"^[A-Z]{2}$")
    contains: str | None = Field(None, max_length=16, pattern=r"^[0-9*+]+$")
    area_code: int | None = Field(None, ge=1, le=99999)


@dataclass
class Forms:
    """What the numbers page shows besides its lists: the forms' values, errors, results."""

    errors: dict[str, dict[str, str]] = field(default_factory=dict)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    found: list[s.NumberSearch] | None = None
    status_code: int = 200

    def fail(self, form: str, errors: dict[str, str], values: dict[str, Any], status: int) -> Forms:
        self.errors[form] = errors
        self.values[form] = values
        self.status_code = status
        return self


# --- permissions: the API's rules for connections and numbers ---------------------------


def _may_read_connection(page: Page, connection: TwilioConnection) -> bool:
    if connection.client_id is None:
        return page.can(Permission.AGENCIES_READ)
    return page.can(Permission.CONTENT_READ, connection.client_id)


def _may_write_connection(page: Page, connection: TwilioConnection) -> bool:
    if connection.client_id is None:
        return page.can(Permission.AGENCIES_UPDATE)
    return page.can(Permission.CONTENT_WRITE, connection.client_id)


async def _usable_connections(page: Page, client: Client) -> list[TwilioConnection]:
    statement = PhoneRepository(page.session).connections_for_client(client.agency_id, client.id)
    rows = (await page.session.execute(statement.order_by(TwilioConnection.id))).scalars()
    return [c for c in rows if _may_read_connection(page, c)]


async def _writable_connection(page: Page, client: Client, connection_id: str) -> TwilioConnection:
    """A connection of this client's agency the user may change, as ``_connection(write=True)``
    in the API decides: 404 when out of reach, 403 when the role is too low."""
    connection = await service.get_connection(page.session, connection_id[:40])
    if connection.agency_id != client.agency_id or connection.client_id not in (None, client.id):
        raise NotFound("Twilio connection not found.")
    if connection.client_id is None:
        page.require(Permission.AGENCIES_UPDATE)
    else:
        page.require(Permission.CONTENT_WRITE, connection.client_id)
    return connection


async def _number_of(page: Page, client: Client, number_id: str) -> PhoneNumber:
    number = await service.get_number(page.session, number_id)
    if number.agency_id != client.agency_id or number.client_id not in (None, client.id):
        raise NotFound("Phone number not found.")
    page.require(Permission.CONTENT_WRITE, number.client_id)
    return number


async def _agents_of(page: Page, client: Client) -> list[Agent]:
    statement = AgentRepository(page.session).agents(client_id=client.id).order_by(Agent.name)
    return list((await page.session.execute(statement)).scalars().unique())


async def _form(page: Page) -> Any:
    return await page.request.form()


def _refusal(error: DemandlyError) -> tuple[dict[str, str], int]:
    """A service's refusal as messages, and the status the page answers with."""
    if error.status_code in (403, 404) and not isinstance(error, TwilioUnavailable):
        raise error
    if isinstance(error, TwilioUnavailable):
        return {FORM_ERROR: error.message}, 502
    return service_errors(error), 422


# --- the numbers page ----------------------------------------------------------------------


@router.get(BASE)
async def phone_home(page: PageDep, client_id: IdPath, cursor: Cursor = None) -> Response:
    client = await page.client(client_id)
    return await _render_home(page, client, Forms(), cursor)


async def _render_home(
    page: Page, client: Client, forms: Forms, cursor: str | None = None
) -> Response:
    connections = await _usable_connections(page, client)
    repo = PhoneRepository(page.session)
    statement = repo.numbers_for_client(client.agency_id, client.id, [c.id for c in connections])
    numbers, next_cursor = await paginate(
        page.session, statement, PhoneNumber.id, PageParams(PAGE_SIZE, cursor)
    )
    agents = await _agents_of(page, client)
    base = BASE.format(client_id=client.id)
    return page.render(
        "phone/numbers.html",
        status_code=forms.status_code,
        title=page.t("Phone"),
        section="phone",
        tab="numbers",
        client=client,
        base=base,
        connections=connections,
        writable=[c for c in connections if _may_write_connection(page, c)],
        connection_names={c.id: c.name for c in connections},
        numbers=numbers,
        writable_numbers={n.id for n in numbers if page.can(Permission.CONTENT_WRITE, n.client_id)},
        agents=agents,
        agent_names={a.id: a.name for a in agents},
        can_write=page.can(Permission.CONTENT_WRITE, client.id),
        can_agency=page.can(Permission.AGENCIES_UPDATE),
        forms=forms,
        next_url=f"{base}?cursor={next_cursor}" if next_cursor else None,
    )


@router.post(BASE + "/connections")
async def add_connection(page: PageDep, client_id: IdPath) -> Response:
    client = await page.client(client_id, Permission.CONTENT_WRITE)
    form = await _form(page)
    values = fields(
        form, "name", "account_sid", "auth_token", "api_key_sid", "api_key_secret", "owner"
    )
    owner = values.pop("owner", "client")
    kept = {k: v for k, v in values.items() if k not in ("auth_token", "api_key_secret")}
    kept["owner"] = owner
    data = {**values, "agency_id": client.agency_id}
    if owner == "agency":
        page.require(Permission.AGENCIES_UPDATE)
    else:
        data["client_id"] = client.id
    try:
        connection = await service.create_connection(
            page.session, page.settings, parse(s.TwilioConnectionCreate, data)
        )
    except FormInvalid as invalid:
        return await _render_home(
            page, client, Forms().fail("connection", invalid.errors, kept, 422)
        )
    except DemandlyError as error:
        errors, status = _refusal(error)
        return await _render_home(page, client, Forms().fail("connection", errors, kept, status))
    notice = "Twilio connection saved." if connection.verified_at else "Saved."
    return page.redirect(BASE.format(client_id=client.id), notice=notice)


@router.post(BASE + "/numbers/import")
async def import_numbers(page: PageDep, client_id: IdPath) -> Response:
    client = await page.client(client_id)
    values = fields(await _form(page), "connection_id")
    try:
        data = parse(s.NumberImport, values)
        connection = await _writable_connection(page, client, data.connection_id)
        await service.import_numbers(page.session, page.settings, connection)
    except FormInvalid as invalid:
        return await _render_home(page, client, Forms().fail("import", invalid.errors, values, 422))
    except DemandlyError as error:
        errors, status = _refusal(error)
        return await _render_home(page, client, Forms().fail("import", errors, values, status))
    return page.redirect(BASE.format(client_id=client.id), notice="Numbers imported.")


@router.get(BASE + "/numbers/search")
async def search_numbers(page: PageDep, client_id: IdPath) -> Response:
    client = await page.client(client_id)
    values = fields(page.request.query_params, "connection_id", "country", "contains", "area_code")  # type: ignore[arg-type]
    if "country" in values:
        values["country"] = values["country"].upper()
    forms = Forms(values={"search": values})
    try:
        query = parse(NumberQuery, values)
        connection = await _writable_connection(page, client, query.connection_id)
        forms.found = await service.search_numbers(
            page.settings, connection, query.country, query.contains, query.area_code
        )
    except FormInvalid as invalid:
        forms.fail("search", invalid.errors, values, 422)
    except DemandlyError as error:
        errors, status = _refusal(error)
        forms.fail("search", errors, values, status)
    return await _render_home(page, client, forms)


@router.post(BASE + "/numbers/buy")
async def buy_number(page: PageDep, client_id: IdPath) -> Response:
    client = await page.client(client_id, Permission.CONTENT_WRITE)
    values = fields(await _form(page), "connection_id", "number", "agent_id")
    try:
        data = parse(s.NumberBuy, values)
        connection = await _writable_connection(page, client, data.connection_id)
        if data.agent_id is not None:
            await _agent_of(page, client, data.agent_id)
        await service.buy_number(page.session, page.settings, connection, data)
    except FormInvalid as invalid:
        return await _render_home(page, client, Forms().fail("buy", invalid.errors, values, 422))
    except DemandlyError as error:
        errors, status = _refusal(error)
        return await _render_home(page, client, Forms().fail("buy", errors, values, status))
    return page.redirect(BASE.format(client_id=client.id), notice="Number bought.")


async def _agent_of(page: Page, client: Client, agent_id: str) -> Agent:
    """An agent of this client the user may change (the API's ``_agent(write=True)``)."""
    agent = await AgentRepository(page.session).agent(agent_id)
    if agent is None or agent.client_id != client.id:
        raise NotFound("Agent not found.")
    page.require(Permission.CONTENT_WRITE, agent.client_id)
    return agent


@router.post(BASE + "/numbers/{number_id}/assign")
async def assign_number(page: PageDep, client_id: IdPath, number_id: IdPath) -> Response:
    client = await page.client(client_id, Permission.CONTENT_WRITE)
    number = await _number_of(page, client, number_id)
    values = fields(await _form(page), "agent_id")
    try:
        data = parse(s.NumberUpdate, values)
        if data.agent_id is not None:
            await _agent_of(page, client, data.agent_id)
        await service.assign_number(page.session, page.settings, number, data.agent_id)
    except FormInvalid as invalid:
        errors = {number.id: next(iter(invalid.errors.values()))}
        return await _render_home(page, client, Forms().fail("assign", errors, values, 422))
    except DemandlyError as error:
        refusal, status = _refusal(error)
        errors = {number.id: next(iter(refusal.values()))}
        return await _render_home(page, client, Forms().fail("assign", errors, values, status))
    return page.redirect(BASE.format(client_id=client.id), notice="Saved.")


@router.get(BASE + "/numbers/{number_id}/release")
async def confirm_release(page: PageDep, client_id: IdPath, number_id: IdPath) -> Response:
    client = await page.client(client_id, Permission.CONTENT_WRITE)
    number = await _number_of(page, client, number_id)
    return _render_release(page, client, number)


def _render_release(
    page: Page, client: Client, number: PhoneNumber, error: str | None = None, status: int = 200
) -> Response:
    return page.render(
        "phone/release.html",
        status_code=status,
        title=page.t("Release number"),
        section="phone",
        client=client,
        base=BASE.format(client_id=client.id),
        number=number,
        error=error,
    )


@router.post(BASE + "/numbers/{number_id}/release")
async def release_number(page: PageDep, client_id: IdPath, number_id: IdPath) -> Response:
    client = await page.client(client_id, Permission.CONTENT_WRITE)
    number = await _number_of(page, client, number_id)
    try:
        await service.release_number(page.session, page.settings, number)
    except DemandlyError as error:
        refusal, status = _refusal(error)
        return _render_release(page, client, number, next(iter(refusal.values())), status)
    return page.redirect(BASE.format(client_id=client.id), notice="Number released.")


# --- calls ---------------------------------------------------------------------------------


@router.get(BASE + "/calls")
async def calls(
    page: PageDep,
    client_id: IdPath,
    cursor: Cursor = None,
    direction: Annotated[Literal["inbound", "outbound", ""], Query()] = "",
    status: Annotated[str, Query(max_length=12, pattern=r"^[a-z-]*$")] = "",
) -> Response:
    client = await page.client(client_id)
    statement = PhoneRepository(page.session).calls(
        client.id, status=status or None, direction=direction or None
    )
    rows, next_cursor = await paginate(
        page.session, statement, Call.id, PageParams(PAGE_SIZE, cursor)
    )
    agents = await _agents_of(page, client)
    base = BASE.format(client_id=client.id)
    filters = f"direction={direction}&status={status}"
    return page.render(
        "phone/calls.html",
        title=page.t("Calls"),
        section="phone",
        tab="calls",
        client=client,
        base=base,
        calls=[service.call_view(r, masked=True) for r in rows],
        agent_names={a.id: a.name for a in agents},
        direction=direction,
        status=status,
        statuses=CALL_STATUSES,
        next_url=f"{base}/calls?{filters}&cursor={next_cursor}" if next_cursor else None,
    )


async def _call_of(page: Page, client_id: str, call_id: str) -> tuple[Client, Call]:
    client = await page.client(client_id)
    call = await service.get_call(page.session, call_id)
    if call.client_id != client.id:
        raise NotFound("Call not found.")
    return client, call


def has_recording(call: Call) -> bool:
    """A recording may be played only when the caller agreed and Twilio made one."""
    return (
        bool(call.recording_consent)
        and bool(call.recording_sid)
        and call.recording_status not in ("absent", "failed")
    )


@router.get(BASE + "/calls/{call_id}")
async def call_detail(page: PageDep, client_id: IdPath, call_id: IdPath) -> Response:
    client, call = await _call_of(page, client_id, call_id)
    detail = await service.call_detail(page.session, call)
    agent = await AgentRepository(page.session).agent(call.agent_id)
    base = BASE.format(client_id=client.id)
    return page.render(
        "phone/call.html",
        title=page.t("Call"),
        section="phone",
        tab="calls",
        client=client,
        base=base,
        call=detail,
        agent_name=agent.name if agent else "-",
        recording_src=f"{base}/calls/{call.id}/recording" if has_recording(call) else None,
    )


@router.get(BASE + "/calls/{call_id}/recording")
async def recording(page: PageDep, client_id: IdPath, call_id: IdPath) -> Response:
    """The call's recording, streamed from Twilio with the connection's credentials (the
    browser never sees them); only with the caller's consent."""
    _, call = await _call_of(page, client_id, call_id)
    if not has_recording(call) or not call.recording_sid:
        raise NotFound("No recording.")
    connection = await service.connection_behind(page.session, call.connection_id)
    if connection is None:
        raise NotFound("No recording.")
    return await _stream_recording(page, connection, call.recording_sid)


async def _stream_recording(
    page: Page, connection: TwilioConnection, recording_sid: str
) -> Response:
    stack = AsyncExitStack()
    try:
        client = await stack.enter_async_context(service.client_for(page.settings, connection))
        http = client.http_client
        base = (page.settings.twilio_api_base_url or TWILIO_API).rstrip("/")
        path = RECORDING_PATH.format(account=connection.account_sid, sid=recording_sid)
        headers = {"Authorization": aiohttp.encode_basic_auth(*client.auth)}
        if "range" in page.request.headers:
            headers["Range"] = page.request.headers["range"]
        upstream = await stack.enter_async_context(
            http.session.get(
                base + path,
                headers=headers,
                # Twilio redirects to its media store; aiohttp drops the credentials there.
                allow_redirects=True,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=30),
            )
        )
        if upstream.status not in (200, 206):
            raise TwilioUnavailable(f"Twilio answered {upstream.status}.", status=upstream.status)
    except (aiohttp.ClientError, OSError, TimeoutError):
        await stack.aclose()
        raise TwilioUnavailable("Twilio could not be reached.") from None
    except BaseException:
        await stack.aclose()
        raise

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.content.iter_chunked(64 * 1024):
                yield chunk
        finally:
            await stack.aclose()

    passed = {
        k: upstream.headers[k]
        for k in ("Content-Length", "Content-Range", "Accept-Ranges")
        if k in upstream.headers
    }
    return StreamingResponse(
        body(),
        status_code=upstream.status,
        media_type=upstream.headers.get("Content-Type", "audio/mpeg"),
        headers={**passed, "Cache-Control": "private, no-store"},
    )


# --- campaigns -----------------------------------------------------------------------------


@router.get(BASE + "/campaigns")
async def campaigns(page: PageDep, client_id: IdPath, cursor: Cursor = None) -> Response:
    client = await page.client(client_id)
    repo = PhoneRepository(page.session)
    rows, next_cursor = await paginate(
        page.session, repo.campaigns(client.id), Campaign.id, PageParams(PAGE_SIZE, cursor)
    )
    counts = await repo.target_counts([c.id for c in rows])
    agents = await _agents_of(page, client)
    base = BASE.format(client_id=client.id)
    return page.render(
        "phone/campaigns.html",
        title=page.t("Campaigns"),
        section="phone",
        tab="campaigns",
        client=client,
        base=base,
        campaigns=rows,
        counts=counts,
        agent_names={a.id: a.name for a in agents},
        next_url=f"{base}/campaigns?cursor={next_cursor}" if next_cursor else None,
    )
