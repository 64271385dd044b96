"""Dashboard screen: phone. A client's Twilio connections and numbers (import, search and buy,
assign, release), its call log with transcripts and recordings, and its outbound campaigns.

Every action calls the same service function, with the same permission, as
``channels/phone/api.py``; Twilio's refusals become messages next to the form."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator, Collection
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
from demandly.leads.models import Contact
from demandly.leads.repository import LeadRepository
from demandly.leads.service import client_region, normalise_phone
from demandly.tenancy.models import Client
from demandly.tenancy.schemas import ID_PATTERN
from demandly.web.deps import Page, PageDep, PageRoute
from demandly.web.forms import FORM_ERROR, FormInvalid, fields, parse, service_errors
from demandly.web.screens.calendar import WEEKDAYS

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
        can_write=page.can(Permission.CONTENT_WRITE, client.id),
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


# --- placing a call ------------------------------------------------------------------------


async def _render_new_call(
    page: Page,
    client: Client,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    agents = await _agents_of(page, client)
    contacts = await _phone_contacts(page, client, CONTACTS_SHOWN)
    return page.render(
        "phone/call_new.html",
        status_code=status,
        title=page.t("Place a call"),
        section="phone",
        tab="calls",
        client=client,
        base=BASE.format(client_id=client.id),
        region=client_region(client),
        agents=agents,
        contacts=[c for c in _contact_rows(contacts) if not c["blocked"]],
        v=values or {},
        errors=errors or {},
    )


@router.get(BASE + "/calls/new")
async def new_call(page: PageDep, client_id: IdPath) -> Response:
    client = await page.client(client_id, Permission.CONTENT_WRITE)
    return await _render_new_call(page, client)


@router.post(BASE + "/calls/new")
async def place_call(page: PageDep, client_id: IdPath) -> Response:
    """Like ``POST /api/v1/calls``: the call row is committed before Twilio is asked, so a
    refusal leaves it in the log as the service left it."""
    client = await page.client(client_id, Permission.CONTENT_WRITE)
    values = fields(await _form(page), "agent_id", "contact_id", "to", "purpose")
    try:
        data, agent = await _outbound_call(page, client, values)
        async with page.session.begin_nested():
            call = await service.create_outbound(
                page.session, agent, data.to, contact_id=data.contact_id, context=data.context
            )
    except FormInvalid as invalid:
        return await _render_new_call(page, client, values, invalid.errors, 422)
    except DemandlyError as error:
        errors, status = _refusal(error)
        return await _render_new_call(page, client, values, _on_form(errors), status)
    await page.session.commit()  # the call exists before Twilio can call back about it
    notice = "Calling."
    try:
        await service.dial(page.session, page.settings, call)
    except TwilioUnavailable:
        notice = "Twilio could not place the call."
    return page.redirect(f"{BASE.format(client_id=client.id)}/calls/{call.id}", notice=notice)


async def _outbound_call(
    page: Page, client: Client, values: dict[str, Any]
) -> tuple[s.OutboundCall, Agent]:
    """The form as the API's ``OutboundCall``: a contact's number, or one typed in E.164 or
    in the client's national form; the purpose goes to the agent as context."""
    errors: dict[str, str] = {}
    contact_id = values.get("contact_id")
    to = values.get("to")
    if contact_id is not None:
        contact = await _contact_of(page, client, contact_id)
        if contact is None:
            errors["contact_id"] = "Choose one of the options."
        elif not service.may_call(contact):
            errors["contact_id"] = "This contact may not be called."
        elif to is None:
            to = contact.phone
    if to is None:
        errors.setdefault("to", "Choose a contact or type a number.")
    elif "to" in values:
        try:
            to = normalise_phone(to, client_region(client))
        except ValueError as error:
            errors["to"] = str(error)
    purpose = values.get("purpose")
    body = {
        "agent_id": values.get("agent_id"),
        "to": to,
        "contact_id": contact_id,
        "context": {"purpose": purpose} if purpose else {},
    }
    try:
        data = parse(s.OutboundCall, body)
    except FormInvalid as invalid:
        raise FormInvalid({**_field_errors(invalid.errors), **errors}) from None
    return data, await _chosen_agent(page, client, data.agent_id, errors)


async def _chosen_agent(page: Page, client: Client, agent_id: str, errors: dict[str, str]) -> Agent:
    """The agent picked in a form, with the API's write permission; a foreign id is a
    message next to the field (whose it is stays unknown). ``errors`` found in the other
    fields are raised with it."""
    try:
        agent = await _agent_of(page, client, agent_id)
    except NotFound:
        errors = {**errors, "agent_id": "Choose one of the options."}
    if errors:
        raise FormInvalid(errors)
    return agent


async def _contact_of(page: Page, client: Client, contact_id: str) -> Contact | None:
    """A contact of this client with a phone number, else None."""
    found = await LeadRepository(page.session).contacts_by_id({contact_id})
    contact = found.get(contact_id)
    if contact is None or contact.client_id != client.id or not contact.phone:
        return None
    return contact


def _on_form(errors: dict[str, str]) -> dict[str, str]:
    """A refusal about a field the form does not have (the agent's number) goes on the form."""
    shown = {"agent_id", "contact_id", "to", "purpose"}
    return {k if k in shown else FORM_ERROR: v for k, v in errors.items()}


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
        can_write=page.can(Permission.CONTENT_WRITE, client.id),
        next_url=f"{base}/campaigns?cursor={next_cursor}" if next_cursor else None,
    )


# --- outbound: whom the dialer may call ------------------------------------------------------

CONTACTS_SHOWN = 500
MAX_TARGETS = 5000  # the API's limit per request (``contact_ids``, ``add_contact_ids``)
CAMPAIGN_FIELDS = (
    "name",
    "agent_id",
    "window_start",
    "window_end",
    "max_concurrent",
    "max_attempts",
    "retry_minutes",
    "purpose",
)
CAMPAIGN_DEFAULTS: dict[str, Any] = {
    "window_start": "09:00",
    "window_end": "18:00",
    "weekdays": ["0", "1", "2", "3", "4"],
    "max_concurrent": "1",
    "max_attempts": "3",
    "retry_minutes": "60",
    "whom": "chosen",
    "contact_ids": [],
}
TARGET_STATUSES = ("pending", "calling", "done", "skipped", "failed")
ID_RE = re.compile(ID_PATTERN)


def _why_not_callable(contact: Contact) -> str | None:
    """Why the dialer would skip this contact (``service.may_call``), for the page."""
    if service.may_call(contact):
        return None
    if contact.processing_restricted:
        return "Processing restricted (Art. 18 GDPR)"
    return "Does not want to be called"


async def _phone_contacts(page: Page, client: Client, limit: int | None = None) -> list[Contact]:
    """The client's contacts that have a phone number, by name."""
    statement = (
        LeadRepository(page.session)
        .contacts(client.id, None)
        .where(Contact.phone.is_not(None))
        .order_by(Contact.name, Contact.id)
    )
    if limit is not None:
        statement = statement.limit(limit)
    return list((await page.session.execute(statement)).scalars())


def _contact_rows(contacts: list[Contact], left_out: Collection[str] = ()) -> list[dict[str, Any]]:
    return [
        {
            "id": c.id,
            "name": c.name or "-",
            "phone": service.mask(c.phone),
            "company": c.company or "",
            "blocked": _why_not_callable(c),
        }
        for c in contacts
        if c.id not in left_out
    ]


def _posted_ids(form: Any, name: str) -> list[str]:
    ids = [v.strip() for v in form.getlist(name) if isinstance(v, str) and v.strip()]
    return list(dict.fromkeys(ids))


async def _chosen_contacts(
    page: Page, client: Client, posted: list[str], everyone: bool, known: Collection[str] = ()
) -> list[str]:
    """The contacts to target: every callable one with a phone number (``everyone``), else the
    ticked ones, which must be such contacts too. ``known`` ones (targeted already) are left
    out. The dialer skips restricted and do-not-call contacts; they are not targeted at all."""
    if everyone:
        contacts = await _phone_contacts(page, client)
        return [c.id for c in contacts if service.may_call(c) and c.id not in known]
    ids = [i for i in posted if i not in known]
    if len(ids) > MAX_TARGETS:
        raise FormInvalid({"contact_ids": "At most 5000 contacts at once."})
    if any(len(i) > 40 or not ID_RE.match(i) for i in ids):
        raise FormInvalid({"contact_ids": "Choose contacts from the list."})
    found = await LeadRepository(page.session).contacts_by_id(set(ids))
    for contact_id in ids:
        contact = found.get(contact_id)
        if contact is None or contact.client_id != client.id or not contact.phone:
            raise FormInvalid({"contact_ids": "Choose contacts from the list."})
        if not service.may_call(contact):
            raise FormInvalid({"contact_ids": "A chosen contact may not be called."})
    return ids


def _field_errors(errors: dict[str, str]) -> dict[str, str]:
    """The schema's messages under the form's field names, in the form's words: the end of
    the window is checked against its start, the context is the purpose text, a list's items
    are the list."""
    shown: dict[str, str] = {}
    for key, message in errors.items():
        if key == "window_end" and "window_start" in message:
            message = "The end must be later than the start."
        elif key.startswith("context"):
            key = "purpose"
        elif key.startswith(("contact_ids", "add_contact_ids")):
            key = "contact_ids"
        shown.setdefault(key, message)
    return shown


# --- campaigns: new ----------------------------------------------------------------------------


async def _render_new_campaign(
    page: Page,
    client: Client,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    agents = await _agents_of(page, client)
    contacts = await _phone_contacts(page, client, CONTACTS_SHOWN + 1)
    return page.render(
        "phone/campaign_new.html",
        status_code=status,
        title=page.t("New campaign"),
        section="phone",
        tab="campaigns",
        client=client,
        base=BASE.format(client_id=client.id),
        agents=agents,
        contacts=_contact_rows(contacts[:CONTACTS_SHOWN]),
        more_contacts=len(contacts) > CONTACTS_SHOWN,
        weekdays=list(enumerate(WEEKDAYS)),
        v={**CAMPAIGN_DEFAULTS, **(values or {})},
        errors=errors or {},
    )


@router.get(BASE + "/campaigns/new")
async def new_campaign(page: PageDep, client_id: IdPath) -> Response:
    client = await page.client(client_id, Permission.CONTENT_WRITE)
    return await _render_new_campaign(page, client)


@router.post(BASE + "/campaigns/new")
async def create_campaign(page: PageDep, client_id: IdPath) -> Response:
    """Like ``POST /api/v1/campaigns``: a draft, started from its page."""
    client = await page.client(client_id, Permission.CONTENT_WRITE)
    form = await _form(page)
    values = fields(form, *CAMPAIGN_FIELDS)
    values["weekdays"] = _posted_ids(form, "weekdays")
    values["contact_ids"] = _posted_ids(form, "contact_ids")
    values["whom"] = "all" if form.get("whom") == "all" else "chosen"
    try:
        data, agent = await _campaign_create(page, client, values)
        async with page.session.begin_nested():
            campaign = await service.create_campaign(page.session, agent, data)
    except FormInvalid as invalid:
        return await _render_new_campaign(page, client, values, invalid.errors, 422)
    except DemandlyError as error:
        errors, status = _refusal(error)
        return await _render_new_campaign(page, client, values, _field_errors(errors), status)
    url = f"{BASE.format(client_id=client.id)}/campaigns/{campaign.id}"
    return page.redirect(url, notice="Campaign saved as a draft.")


async def _campaign_create(
    page: Page, client: Client, values: dict[str, Any]
) -> tuple[s.CampaignCreate, Agent]:
    """The form as the API's ``CampaignCreate``, with every message at its field."""
    errors: dict[str, str] = {}
    contact_ids: list[str] = []
    try:
        everyone = values["whom"] == "all"
        contact_ids = await _chosen_contacts(page, client, values["contact_ids"], everyone)
    except FormInvalid as invalid:
        errors.update(invalid.errors)
    body = {k: v for k, v in values.items() if k in CAMPAIGN_FIELDS and k != "purpose"}
    purpose = values.get("purpose")
    body |= {
        "weekdays": values["weekdays"],
        "contact_ids": contact_ids,
        "context": {"purpose": purpose} if purpose else {},
    }
    try:
        data = parse(s.CampaignCreate, body)
    except FormInvalid as invalid:
        raise FormInvalid({**_field_errors(invalid.errors), **errors}) from None
    return data, await _chosen_agent(page, client, data.agent_id, errors)


# --- campaigns: one campaign -----------------------------------------------------------------


async def _campaign_of(
    page: Page, client_id: str, campaign_id: str, permission: Permission = Permission.CONTENT_READ
) -> tuple[Client, Campaign]:
    """A campaign of this client (404 when out of reach), with the API's permission."""
    client = await page.client(client_id, permission)
    campaign = await service.get_campaign(page.session, campaign_id)
    if campaign.client_id != client.id:
        raise NotFound("Campaign not found.")
    return client, campaign


@router.get(BASE + "/campaigns/{campaign_id}")
async def campaign_page(page: PageDep, client_id: IdPath, campaign_id: IdPath) -> Response:
    client, campaign = await _campaign_of(page, client_id, campaign_id)
    return await _render_campaign(page, client, campaign)


async def _render_campaign(
    page: Page,
    client: Client,
    campaign: Campaign,
    errors: dict[str, str] | None = None,
    status: int = 200,
    values: dict[str, Any] | None = None,
) -> Response:
    detail = await service.campaign_detail(page.session, campaign)
    targeted = {t.contact_id for t in detail.targets}
    contacts = await LeadRepository(page.session).contacts_by_id(targeted)
    agent = await AgentRepository(page.session).agent(campaign.agent_id)
    counts = Counter(t.status for t in detail.targets)
    can_write = page.can(Permission.CONTENT_WRITE, client.id)
    candidates: list[dict[str, Any]] = []
    more_contacts = False
    if can_write and campaign.status != "completed":
        found = await _phone_contacts(page, client, CONTACTS_SHOWN + len(targeted) + 1)
        rows = _contact_rows(found, targeted)
        candidates, more_contacts = rows[:CONTACTS_SHOWN], len(rows) > CONTACTS_SHOWN
    return page.render(
        "phone/campaign.html",
        status_code=status,
        title=campaign.name,
        section="phone",
        tab="campaigns",
        client=client,
        base=BASE.format(client_id=client.id),
        campaign=detail,
        agent=agent,
        weekday_names=[page.t(WEEKDAYS[d]) for d in detail.weekdays],
        targets=[
            {
                "target": t,
                "name": (contacts[t.contact_id].name or "-") if t.contact_id in contacts else "-",
                "phone": service.mask(contacts[t.contact_id].phone)
                if t.contact_id in contacts
                else "-",
            }
            for t in detail.targets
        ],
        counts=[(status, counts.get(status, 0)) for status in TARGET_STATUSES],
        done=counts.get("done", 0),
        total=len(detail.targets),
        can_write=can_write,
        candidates=candidates,
        more_contacts=more_contacts,
        v=values or {},
        errors=errors or {},
    )


async def _update(
    page: Page, client: Client, campaign: Campaign, update: s.CampaignUpdate
) -> Response | None:
    """``update_campaign`` in a savepoint; its refusal ("Publish the agent first.") is the
    campaign page with the message, and None means saved."""
    campaign_id = campaign.id  # read before a rolled-back savepoint expires the row
    try:
        async with page.session.begin_nested():
            await service.update_campaign(page.session, campaign, update)
    except DemandlyError as error:
        errors, _ = _refusal(error)
        fresh = await service.get_campaign(page.session, campaign_id)
        return await _render_campaign(page, client, fresh, _field_errors(errors), error.status_code)
    return None


@router.post(BASE + "/campaigns/{campaign_id}/status")
async def campaign_status(page: PageDep, client_id: IdPath, campaign_id: IdPath) -> Response:
    """Start or pause (``PATCH /api/v1/campaigns/{id}`` with a status)."""
    client, campaign = await _campaign_of(page, client_id, campaign_id, Permission.CONTENT_WRITE)
    values = fields(await _form(page), "status")
    try:
        update = parse(s.CampaignUpdate, values)
    except FormInvalid as invalid:
        return await _render_campaign(page, client, campaign, invalid.errors, 422)
    refused = await _update(page, client, campaign, update)
    if refused is not None:
        return refused
    notice = "Campaign started." if update.status == "running" else "Campaign paused."
    return page.redirect(_campaign_url(client, campaign), notice=notice)


@router.post(BASE + "/campaigns/{campaign_id}/rename")
async def rename_campaign(page: PageDep, client_id: IdPath, campaign_id: IdPath) -> Response:
    client, campaign = await _campaign_of(page, client_id, campaign_id, Permission.CONTENT_WRITE)
    values = fields(await _form(page), "name", blank_as_none=False)
    try:
        update = parse(s.CampaignUpdate, {"name": values.get("name", "")})
    except FormInvalid as invalid:
        return await _render_campaign(page, client, campaign, invalid.errors, 422, values)
    refused = await _update(page, client, campaign, update)
    return refused or page.redirect(_campaign_url(client, campaign), notice="Saved.")


@router.post(BASE + "/campaigns/{campaign_id}/contacts")
async def add_campaign_contacts(page: PageDep, client_id: IdPath, campaign_id: IdPath) -> Response:
    """Add contacts not targeted yet (``add_contact_ids``)."""
    client, campaign = await _campaign_of(page, client_id, campaign_id, Permission.CONTENT_WRITE)
    form = await _form(page)
    known = {t.contact_id for t in await PhoneRepository(page.session).targets(campaign.id)}
    try:
        everyone = form.get("whom") == "all"
        ids = await _chosen_contacts(
            page, client, _posted_ids(form, "contact_ids"), everyone, known
        )
        if not ids:
            raise FormInvalid({"contact_ids": "Choose at least one contact."})
        update = parse(s.CampaignUpdate, {"add_contact_ids": ids})
    except FormInvalid as invalid:
        return await _render_campaign(page, client, campaign, _field_errors(invalid.errors), 422)
    refused = await _update(page, client, campaign, update)
    return refused or page.redirect(_campaign_url(client, campaign), notice="Contacts added.")


@router.get(BASE + "/campaigns/{campaign_id}/delete")
async def confirm_delete_campaign(
    page: PageDep, client_id: IdPath, campaign_id: IdPath
) -> Response:
    client, campaign = await _campaign_of(page, client_id, campaign_id, Permission.CONTENT_WRITE)
    return page.render(
        "phone/campaign_delete.html",
        title=page.t("Delete campaign"),
        section="phone",
        client=client,
        base=BASE.format(client_id=client.id),
        campaign=campaign,
    )


@router.post(BASE + "/campaigns/{campaign_id}/delete")
async def delete_campaign(page: PageDep, client_id: IdPath, campaign_id: IdPath) -> Response:
    """The campaign and its targets go; its calls stay in the log."""
    client, campaign = await _campaign_of(page, client_id, campaign_id, Permission.CONTENT_WRITE)
    await service.delete_campaign(page.session, campaign)
    url = f"{BASE.format(client_id=client.id)}/campaigns"
    return page.redirect(url, notice="Campaign deleted.")


def _campaign_url(client: Client, campaign: Campaign) -> str:
    return f"{BASE.format(client_id=client.id)}/campaigns/{campaign.id}"
