"""Dashboard screen: a client's live inbox and a conversation's transcript, with taking over,
answering and handing back. The same services and permission checks as
``conversations/api.py``; live updates are server-sent events that poll the database (so they
work across processes) in short sessions of their own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.agents.repository import AgentRepository
from demandly.auth import service as auth_service
from demandly.auth.dependencies import SESSION_COOKIE, get_database, request_actor
from demandly.auth.permissions import Permission
from demandly.conversations import service
from demandly.conversations.models import Channel, Conversation, ConversationStatus, Message
from demandly.conversations.repository import ConversationFilters, ConversationRepository
from demandly.conversations.schemas import PersonReply
from demandly.kit.context import Scope
from demandly.kit.db import set_scope
from demandly.kit.errors import DemandlyError, NotFound
from demandly.kit.time import utcnow
from demandly.leads.models import Lead
from demandly.leads.repository import LeadRepository
from demandly.tenancy.models import Client
from demandly.web.deps import Page, PageDep, PageRoute
from demandly.web.forms import FormInvalid, fields, parse, service_errors
from demandly.web.templating import render_template

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 50
POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
# A stream ends after this long and the browser reconnects: no request lives for ever.
STREAM_SECONDS = 600.0
# A turn stamps its activity before it commits: a poll looks back this far so that a slow
# transaction's rows, committed after a later one's, are not skipped.
OVERLAP = timedelta(seconds=5)
STATUS_BADGE = {"active": "ok", "handoff": "warn", "ended": ""}
STATUS_LABEL = {"active": "Active", "handoff": "Handed off", "ended": "Ended"}
CHANNEL_LABEL = {"web": "Web", "phone": "Phone", "api": "API", "test": "Test"}
LEAD_STATUS_LABEL = {
    "new": "New",
    "qualified": "Qualified",
    "disqualified": "Disqualified",
    "contacted": "Contacted",
    "won": "Won",
    "lost": "Lost",
}
LABELS = {
    "status_badge": STATUS_BADGE,
    "status_label": STATUS_LABEL,
    "channel_label": CHANNEL_LABEL,
    "lead_status_label": LEAD_STATUS_LABEL,
    "role_class": {"user": "user", "assistant": "assistant", "human": "staff", "tool": "tool"},
}


# --- filters -------------------------------------------------------------------------------


def query_values(request: Request, *names: str) -> dict[str, str]:
    """The named query parameters, trimmed and bounded ("" when absent)."""
    return {name: request.query_params.get(name, "").strip()[:100] for name in names}


def day_start(value: str, timezone: str) -> datetime | None:
    """Midnight of the day ``YYYY-MM-DD`` in the client's time zone; ValueError if no date."""
    if not value:
        return None
    day = date.fromisoformat(value)
    return datetime.combine(day, time(), tzinfo=ZoneInfo(timezone))


def date_range(
    values: dict[str, str], timezone: str, errors: dict[str, str]
) -> tuple[datetime | None, datetime | None]:
    """``since`` and ``until`` (both days included) as a half-open range of instants."""
    bounds: list[datetime | None] = []
    for name in ("since", "until"):
        try:
            bounds.append(day_start(values[name], timezone))
        except ValueError:
            errors[name] = "Enter a date such as 2026-03-31."
            bounds.append(None)
    since, until = bounds
    return since, until + timedelta(days=1) if until else None


def _choice(values: dict[str, str], name: str, allowed: Any, errors: dict[str, str]) -> str | None:
    value = values[name]
    if value and value not in allowed:
        errors[name] = "Choose one of the options."
        return None
    return value or None


def inbox_filters(
    values: dict[str, str], client: Client, agents: dict[str, str]
) -> tuple[ConversationFilters, dict[str, str]]:
    errors: dict[str, str] = {}
    since, until = date_range(values, client.timezone, errors)
    filters = ConversationFilters(
        client_id=client.id,
        agent_id=_choice(values, "agent_id", agents, errors),
        status=_choice(values, "status", {s.value for s in ConversationStatus}, errors),
        channel=_choice(values, "channel", {c.value for c in Channel}, errors),
        since=since,
        until=until,
    )
    return filters, errors


FILTER_NAMES = ("status", "channel", "agent_id", "since", "until")


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def _cursor_of(conversation: Conversation) -> str:
    """Last activity (in whole microseconds, exact) and id: the keyset of the next page."""
    micros = (conversation.last_activity_at - EPOCH) // MICROSECOND
    return f"{micros}-{conversation.id}"


def _parse_cursor(value: str) -> tuple[datetime, str] | None:
    micros, _, conversation_id = value.partition("-")
    if not micros.isdigit() or not conversation_id or len(value) > 80:
        return None
    return EPOCH + int(micros) * MICROSECOND, conversation_id


# --- rows ----------------------------------------------------------------------------------


@dataclass
class Row:
    conversation: Conversation
    name: str | None
    agent: str | None
    preview: Message | None
    lead: Lead | None


async def client_agents(session: AsyncSession, client_id: str) -> dict[str, str]:
    """The client's agents by id, their names as values (one query)."""
    result = await session.execute(AgentRepository(session).agents(client_id))
    return {agent.id: agent.name for agent in result.unique().scalars()}


async def rows_of(
    session: AsyncSession, conversations: list[Conversation], agents: dict[str, str]
) -> list[Row]:
    """The list's rows: previews, leads and contacts in one query each (no N+1)."""
    ids = [c.id for c in conversations]
    previews = await ConversationRepository(session).previews(ids)
    leads_repo = LeadRepository(session)
    leads = await leads_repo.leads_of_conversations(ids)
    contacts = await leads_repo.contacts_by_id(
        {lead.contact_id for lead in leads.values() if lead.contact_id}
    )
    rows = []
    for conversation in conversations:
        lead = leads.get(conversation.id)
        contact = contacts.get(lead.contact_id or "") if lead else None
        captured = (conversation.lead_fields or {}).get("name")
        name = (contact and (contact.name or contact.email or contact.phone)) or captured
        rows.append(
            Row(
                conversation=conversation,
                name=str(name) if name else None,
                agent=agents.get(conversation.agent_id),
                preview=previews.get(conversation.id),
                lead=lead,
            )
        )
    return rows


def _render(page: Page, template: str, **context: Any) -> str:
    return render_template(
        template,
        view=page,
        t=page.t,
        brand=page.brand,
        **LABELS,
        **context,
    )


# --- the list ------------------------------------------------------------------------------


@router.get("/app/clients/{client_id}/inbox")
async def inbox(page: PageDep, client_id: str) -> Response:
    client = await page.client(client_id)
    agents = await client_agents(page.session, client.id)
    values = query_values(page.request, *FILTER_NAMES, "cursor")
    filters, errors = inbox_filters(values, client, agents)
    conversations: list[Conversation] = []
    next_url = None
    if not errors:
        conversations = await ConversationRepository(page.session).activity_page(
            filters,
            page.auth.scope_where(Permission.CONTENT_READ),
            _parse_cursor(values["cursor"]),
            PAGE_SIZE + 1,
        )
        if len(conversations) > PAGE_SIZE:
            conversations = conversations[:PAGE_SIZE]
            next_url = _url(client, values, cursor=_cursor_of(conversations[-1]))
    return page.render(
        "inbox/list.html",
        status_code=422 if errors else 200,
        title=page.t("Inbox"),
        section="inbox",
        client=client,
        rows=await rows_of(page.session, conversations, agents),
        agents=agents,
        values=values,
        errors={k: page.t(v) for k, v in errors.items()},
        next_url=next_url,
        live=not values["cursor"] and not errors,
        stream_url=_url(client, values, "/stream"),
        **LABELS,
        statuses=[s.value for s in ConversationStatus],
        channels=[c.value for c in Channel],
    )


def _url(client: Client, values: dict[str, str], path: str = "", **extra: str) -> str:
    query = {k: values[k] for k in FILTER_NAMES if values[k]} | extra
    return f"/app/clients/{client.id}/inbox{path}" + (f"?{urlencode(query)}" if query else "")


@router.get("/app/clients/{client_id}/inbox/stream")
async def inbox_stream(page: PageDep, client_id: str) -> Response:
    """New conversations and new messages of the list, as rows (event ``conversation``)."""
    client = await page.client(client_id)
    agents = await client_agents(page.session, client.id)
    filters, errors = inbox_filters(query_values(page.request, *FILTER_NAMES), client, agents)
    if errors:
        return Response(status_code=204)  # an EventSource does not retry a 204
    since = utcnow()
    sent: dict[str, datetime] = {}

    async def poll(session: AsyncSession) -> list[str]:
        nonlocal since
        found = await ConversationRepository(session).active_since(filters, since - OVERLAP)
        fresh = [c for c in found if sent.get(c.id) != c.last_activity_at]
        if not fresh:
            return []
        since = max(since, *(c.last_activity_at for c in fresh))
        for conversation in fresh:
            sent[conversation.id] = conversation.last_activity_at
        for key in [k for k, at in sent.items() if at < since - 2 * OVERLAP]:
            del sent[key]
        rows = await rows_of(session, fresh, agents)
        return [
            sse("conversation", _render(page, "inbox/_row.html", row=row, client=client))
            for row in rows
        ]

    return event_stream(page.request, client, poll)


# --- live streams --------------------------------------------------------------------------


def sse(event: str, data: str) -> str:
    lines = "".join(f"data: {line}\n" for line in (data.splitlines() or [""]))
    return f"event: {event}\n{lines}\n"


def event_stream(
    request: Request, client: Client, poll: Callable[[AsyncSession], Awaitable[list[str]]]
) -> StreamingResponse:
    return StreamingResponse(
        _live(request, client, poll),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _live(
    request: Request, client: Client, poll: Callable[[AsyncSession], Awaitable[list[str]]]
) -> AsyncIterator[str]:
    """Poll about every second, each time in a short session of its own that checks the
    sign-in again: a signed-out (or demoted) user's stream ends with an event ``close``."""
    db = get_database(request)
    cookie = request.cookies.get(SESSION_COOKIE, "")
    actor = request_actor(request)
    started = quiet_since = monotonic()
    yield "retry: 3000\n\n"
    while monotonic() - started < STREAM_SECONDS:
        if await request.is_disconnected():
            return
        async with db.session(Scope.for_system(), actor) as session:
            ctx = await auth_service.authenticate_session(session, cookie, actor)
            if ctx is None or not _may_read(ctx, client):
                yield sse("close", "")
                return
            await set_scope(session, ctx.scope, ctx.actor)
            events = await poll(session)
        for event in events:
            yield event
        if events:
            quiet_since = monotonic()
        elif monotonic() - quiet_since >= KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            quiet_since = monotonic()
        await asyncio.sleep(POLL_SECONDS)


def _may_read(ctx: Any, client: Client) -> bool:
    try:
        ctx.require(Permission.CONTENT_READ, client.agency_id, client.id)
    except DemandlyError:
        return False
    return True


# --- the transcript ------------------------------------------------------------------------


async def _conversation(
    page: Page, client_id: str, conversation_id: str, *, write: bool = False
) -> tuple[Client, Conversation]:
    """The client's conversation: 404 when either is out of reach (or they do not belong
    together), 403 for a change the role does not allow."""
    client = await page.client(client_id)
    conversation = await service.get(page.session, conversation_id[:64], for_update=write)
    if conversation.client_id != client.id:
        raise NotFound("Conversation not found.")
    if write:
        page.require(Permission.CONTENT_WRITE, client.id)
    return client, conversation


def _transcript_url(client: Client, conversation: Conversation) -> str:
    return f"/app/clients/{client.id}/inbox/{conversation.id}"


async def _authors(session: AsyncSession, messages: list[Message]) -> dict[str, str]:
    ids = {m.author_user_id for m in messages if m.author_user_id}
    users = await LeadRepository(session).users_by_id(ids)
    return {user_id: user.name or user.email for user_id, user in users.items()}


def _sources(messages: list[Message]) -> list[dict[str, str]]:
    seen: dict[str, dict[str, str]] = {}
    for message in messages:
        for source in message.sources or []:
            if isinstance(source, dict):
                key = str(source.get("url") or source.get("title") or "")
                if key:
                    seen.setdefault(key, {k: str(v) for k, v in source.items() if v})
    return list(seen.values())


async def _render_transcript(
    page: Page,
    client: Client,
    conversation: Conversation,
    *,
    errors: dict[str, str] | None = None,
    text: str = "",
    status_code: int = 200,
) -> Response:
    agents = await client_agents(page.session, client.id)
    [row] = await rows_of(page.session, [conversation], agents)
    messages = await service.messages(page.session, conversation.id)
    return page.render(
        "inbox/transcript.html",
        status_code=status_code,
        title=row.name or page.t("Visitor"),
        section="inbox",
        client=client,
        row=row,
        conversation=conversation,
        messages=messages,
        authors=await _authors(page.session, messages),
        sources=_sources(messages),
        can_write=page.can(Permission.CONTENT_WRITE, client.id),
        errors={k: page.t(v) for k, v in (errors or {}).items()},
        text=text,
        **LABELS,
    )


@router.get("/app/clients/{client_id}/inbox/{conversation_id}")
async def transcript(page: PageDep, client_id: str, conversation_id: str) -> Response:
    client, conversation = await _conversation(page, client_id, conversation_id)
    return await _render_transcript(page, client, conversation)


@router.get("/app/clients/{client_id}/inbox/{conversation_id}/stream")
async def transcript_stream(page: PageDep, client_id: str, conversation_id: str) -> Response:
    """New messages (event ``message``) and changes of status (event ``status``)."""
    client, conversation = await _conversation(page, client_id, conversation_id)
    last_seq = conversation.message_count
    status = conversation.status
    can_write = page.can(Permission.CONTENT_WRITE, client.id)

    async def poll(session: AsyncSession) -> list[str]:
        nonlocal last_seq, status
        current = await ConversationRepository(session).get(conversation.id)
        if current is None:
            return [sse("close", "")]
        events = []
        if current.message_count > last_seq:
            messages = await service.messages(session, current.id, after_seq=last_seq)
            authors = await _authors(session, messages)
            for message in messages:
                html = _render(
                    page, "inbox/_message.html", message=message, authors=authors, client=client
                )
                events.append(sse("message", html))
                last_seq = max(last_seq, message.seq)
        if current.status != status:
            status = current.status
            html = _render(
                page, "inbox/_state.html", conversation=current, client=client, can_write=can_write
            )
            events.append(sse("status", html))
        return events

    return event_stream(page.request, client, poll)


def _refused(error: DemandlyError) -> bool:
    return error.status_code in (403, 404)


@router.post("/app/clients/{client_id}/inbox/{conversation_id}/takeover")
async def take_over(page: PageDep, client_id: str, conversation_id: str) -> Response:
    client, conversation = await _conversation(page, client_id, conversation_id, write=True)
    try:
        await service.take_over(page.session, conversation, page.auth.subject_id)
    except DemandlyError as error:
        if _refused(error):
            raise
        return await _render_transcript(
            page, client, conversation, errors=service_errors(error), status_code=error.status_code
        )
    return page.redirect(
        _transcript_url(client, conversation), notice="You have taken over the conversation."
    )


@router.post("/app/clients/{client_id}/inbox/{conversation_id}/release")
async def release(page: PageDep, client_id: str, conversation_id: str) -> Response:
    client, conversation = await _conversation(page, client_id, conversation_id, write=True)
    try:
        service.release(conversation)
    except DemandlyError as error:
        if _refused(error):
            raise
        return await _render_transcript(
            page, client, conversation, errors=service_errors(error), status_code=error.status_code
        )
    return page.redirect(_transcript_url(client, conversation), notice="The bot answers again.")


@router.post("/app/clients/{client_id}/inbox/{conversation_id}/reply")
async def reply(page: PageDep, client_id: str, conversation_id: str) -> Response:
    client, conversation = await _conversation(page, client_id, conversation_id, write=True)
    form = await page.request.form()
    data = fields(form, "text")
    text = str(form.get("text") or "")
    if page.auth.user_id is None:
        raise NotFound()
    try:
        answer = parse(PersonReply, data)
        await service.reply_as_person(page.session, conversation, page.auth.user_id, answer.text)
    except FormInvalid as invalid:
        return await _render_transcript(
            page, client, conversation, errors=invalid.errors, text=text, status_code=422
        )
    except DemandlyError as error:
        if _refused(error):
            raise
        return await _render_transcript(
            page,
            client,
            conversation,
            errors=service_errors(error),
            text=text,
            status_code=error.status_code,
        )
    return page.redirect(_transcript_url(client, conversation), notice="Reply sent.")
