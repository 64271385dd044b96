"""The public chat API: what the widget (or any client of an agency's client) talks to.

No login: an agent is named by its ``public_key``; a conversation by its id plus the visitor
token handed out when it started. Browsers are held to the agent's allowed origins.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import Send

from demandly.agents import service as agents
from demandly.agents.models import AgentVersion
from demandly.auth.dependencies import bearer_token, get_database, request_actor
from demandly.channels.web import schemas as s
from demandly.config import Settings
from demandly.conversations import service as conversations
from demandly.conversations.models import Channel, Conversation
from demandly.engine.service import (
    EngineEvent,
    EventBatch,
    TurnRunner,
    VisitorAccess,
    message_view,
    opening_greeting,
    remember_workspace,
    visible,
)
from demandly.kit.context import Actor, Scope
from demandly.kit.db import Database, set_scope
from demandly.kit.errors import DemandlyError, Forbidden, NotFound, Unauthorized, ValidationFailed
from demandly.kit.http import client_ip
from demandly.kit.ratelimit import RateLimiter
from demandly.tenancy.models import Agency, Client

router = APIRouter(prefix="/public", tags=["public chat"])
PublicKey = Annotated[str, Path(max_length=64)]
ConversationId = Annotated[str, Path(max_length=40)]

# Per client IP: new conversations and messages; per conversation: messages.
starts_per_ip = RateLimiter(rate_per_minute=10, burst=10)
messages_per_ip = RateLimiter(rate_per_minute=120, burst=40)
messages_per_conversation = RateLimiter(rate_per_minute=30, burst=10)


def configure_rate_limits(settings: Settings) -> None:
    """Limits from the settings (the defaults above suit a public website)."""
    global starts_per_ip, messages_per_ip, messages_per_conversation
    starts_per_ip = _limiter(settings.public_conversations_per_ip)
    messages_per_ip = _limiter(settings.public_messages_per_ip)
    messages_per_conversation = _limiter(settings.public_messages_per_conversation)


def _limiter(per_minute: int) -> RateLimiter:
    return RateLimiter(rate_per_minute=per_minute, burst=max(10, per_minute // 3))


DEFAULT_NOTICES = {
    "de": "Dieser Chat verarbeitet Ihre Nachrichten, um Ihre Anfrage zu beantworten. "
    "Mehr in der Datenschutzerklärung.",
    "en": "This chat processes your messages to answer your request. "
    "See the privacy policy for details.",
}


def check_origin(request: Request, allowed: list[str]) -> None:
    """A browser on a website the agent was not embedded for is refused."""
    origin = request.headers.get("origin")
    if origin is None or not allowed:
        return
    own = request.app.state.settings.base_url.rstrip("/")
    # The platform's own pages (the /demo site) under whatever name the browser reached them.
    here = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin.rstrip("/") not in {o.rstrip("/") for o in allowed} | {own, here}:
        raise Forbidden("This website may not use this agent.", code="origin_not_allowed")


async def _published(
    session: AsyncSession, public_key: str
) -> tuple[agents.PublishedAgent, Client, Agency]:
    """The published agent, its client and its agency (its branding), read under the system
    scope or in the agent's workspace (``agents.workspace_of``); ``published_with_owners``
    has already refused a suspended client or agency."""
    found = await agents.published_with_owners(session, public_key)
    if found is None:
        raise NotFound("No such agent.")
    return found


async def _visitor_conversation(request: Request, conversation_id: str) -> Conversation:
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("The visitor token is missing.")
    db = get_database(request)
    async with db.session(Scope.for_system()) as session:
        try:
            return await conversations.by_visitor_token(session, conversation_id, token)
        except NotFound:
            raise Unauthorized("The visitor token does not fit this conversation.") from None


def _public(message_dict: dict) -> s.PublicMessage:  # type: ignore[type-arg]
    return s.PublicMessage(
        **{k: message_dict[k] for k in ("id", "seq", "role", "content", "created_at")},
        quick_replies=message_dict.get("quick_replies") or [],
        sources=message_dict.get("sources") or [],
    )


@router.get("/agents/{public_key}", response_model=s.PublicAgent)
async def get_public_agent(public_key: PublicKey, request: Request) -> s.PublicAgent:
    """Brand, greeting and privacy notice: all the widget needs before the visitor agrees."""
    async with get_database(request).session(Scope.for_system()) as session:
        found, client, agency = await _published(session, public_key)
    definition = agents.definition_of(found.version)
    check_origin(request, definition.widget.allowed_origins)
    context = agents.agent_context(found.version, client)
    branding = agency.branding or {}
    return s.PublicAgent(
        public_key=public_key,
        name=found.agent.name,
        persona_name=context.persona_name,
        language=context.language,
        greeting=_greeting(context),
        brand={
            "name": branding.get("display_name") or agency.name,
            "primary_color": definition.widget.primary_color or branding.get("primary_color"),
            "accent_color": definition.widget.accent_color or branding.get("accent_color"),
        },
        widget=definition.widget.model_dump(exclude={"allowed_origins", "privacy_notice"}),
        privacy_notice=definition.widget.privacy_notice
        or DEFAULT_NOTICES.get(context.language, DEFAULT_NOTICES["en"]),
        privacy_policy_url=client.privacy_policy_url or branding.get("privacy_policy_url"),
    )


def _greeting(context: agents.AgentContext) -> str:
    return opening_greeting(context)


@router.post(
    "/agents/{public_key}/conversations", status_code=201, response_model=s.ConversationStarted
)
async def start_conversation(
    public_key: PublicKey, data: s.StartConversation, request: Request
) -> s.ConversationStarted:
    """Start a conversation once the visitor accepted the privacy notice; answers the token."""
    starts_per_ip.check(f"ip:{client_ip(request)}")
    # One unit of work: the agent is found in its workspace when this process knows it, else
    # under the system scope, which then narrows to its client for the writes.
    db = get_database(request)
    begin_in = agents.workspace_of(public_key) or Scope.for_system()
    async with db.session(begin_in, _visitor(request), reuse_plans=True) as session:
        found, client, _ = await _published(session, public_key)
        definition = agents.definition_of(found.version)
        check_origin(request, definition.widget.allowed_origins)
        context = agents.agent_context(found.version, client)
        await set_scope(session, Scope.for_client(found.agent.agency_id, found.agent.client_id))
        conversation, token, greeting = await conversations.start(
            session,
            agency_id=found.agent.agency_id,
            client_id=found.agent.client_id,
            agent_id=found.agent.id,
            agent_version_id=found.version.id,
            channel=Channel.WEB,
            language=context.language,
            greeting=_greeting(context),
            consent=data.consent,
        )
        await session.commit()
    remember_workspace(conversation)
    return s.ConversationStarted(
        conversation_id=conversation.id,
        token=token,
        status=conversation.status,
        messages=[_public(message_view(greeting))] if visible(greeting) else [],
    )


@router.get("/conversations/{conversation_id}/messages", response_model=s.Transcript)
async def get_messages(
    conversation_id: ConversationId,
    request: Request,
    after: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> s.Transcript:
    """The visitor's transcript after message ``after`` (to resume after a reload)."""
    conversation = await _visitor_conversation(request, conversation_id)
    db = get_database(request)
    scope = Scope.for_client(conversation.agency_id, conversation.client_id)
    async with db.session(scope) as session:
        rows = await conversations.messages(session, conversation.id, after)
    return s.Transcript(
        conversation_id=conversation.id,
        status=conversation.status,
        messages=[_public(message_view(m)) for m in rows if visible(m)],
    )


@router.post(
    "/conversations/{conversation_id}/messages",
    response_model=s.Transcript,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def post_message(
    conversation_id: ConversationId,
    data: s.VisitorMessage,
    request: Request,
    accept: Annotated[str | None, Header()] = None,
) -> s.Transcript | StreamingResponse:
    """Send the visitor's message. JSON answers the new messages; with
    ``Accept: text/event-stream`` the reply streams as server-sent events."""
    text = data.text.strip()
    if not text:
        raise ValidationFailed("text", "The message is empty.")
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("The visitor token is missing.")
    ip = client_ip(request)

    def admit(conversation: Conversation) -> None:
        messages_per_ip.check(f"ip:{ip}")
        messages_per_conversation.check(f"conv:{conversation.id}")

    runner = TurnRunner(get_database(request), request.app.state.settings)
    try:
        # The token is checked in the turn's first transaction, not in one of its own.
        turn = await runner.begin(
            VisitorAccess(token, admit),
            conversation_id,
            text,
            actor=_visitor(request),
            client_message_id=data.client_message_id,
        )
    except NotFound:
        raise Unauthorized("The visitor token does not fit this conversation.") from None
    conversation = turn.conversation
    if accept and "text/event-stream" in accept:
        if turn.answered is not None:
            # Answered already (in the turn's first transaction): the whole stream is known,
            # and goes as one body, without a streaming response's task group.
            return Response(
                _sse_body(turn.answered), media_type="text/event-stream", headers=_SSE_HEADERS
            )
        return _EventStream(
            _sse(runner.answer_in_batches(turn)),
            media_type="text/event-stream",
            headers=_SSE_HEADERS,
        )
    events = runner.answer(turn)
    status = conversation.status
    new: list[s.PublicMessage] = []
    async for event in events:
        if event.type == "message":
            new.append(_public(event.data["message"]))
        elif event.type == "handoff":
            status = "handoff"
        elif event.type == "ended":
            status = "ended"
    return s.Transcript(conversation_id=conversation.id, status=status, messages=new)


_DONE = "event: done\ndata: {}\n\n"
_SSE_HEADERS = {"Cache-Control": "no-cache"}


class _LastChunk(bytes):
    """The chunk that ends a stream of server-sent events."""


class _EventStream(StreamingResponse):
    """A streaming response whose ``_LastChunk`` goes out with the end of the body: one write
    (through every middleware, and to the socket) instead of two."""

    async def stream_response(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        ended = False
        async for chunk in self.body_iterator:
            ended = isinstance(chunk, _LastChunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": not ended})
        if not ended:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _sse(batches: AsyncIterator[EventBatch]) -> AsyncIterator[bytes]:
    """Server-sent events, each batch of the engine's in one write (a write passes through
    every middleware and the server: per event, that cost more than the turn's own work),
    the last with ``done``."""
    try:
        async for batch in batches:
            if batch.last:
                yield _LastChunk(_sse_body([batch]))
                return
            yield "".join(map(_sse_event, batch.events)).encode()
    except Exception as exc:  # the stream has started: report in-band, never a broken 500
        code = getattr(exc, "code", "internal_error")
        yield _LastChunk(f"event: error\ndata: {json.dumps({'code': code})}\n\n{_DONE}".encode())
        return
    yield _LastChunk(_DONE.encode())


def _sse_body(batches: list[EventBatch]) -> bytes:
    """The events of the turn's last ``batches`` (its end included) and ``done``."""
    return ("".join(_sse_event(e) for batch in batches for e in batch.events) + _DONE).encode()


def _sse_event(event: EngineEvent) -> str:
    data = event.data
    if event.type == "message":
        data = {"message": _public(event.data["message"]).model_dump()}
    return f"event: {event.type}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _visitor(request: Request) -> Actor:
    return request_actor(request, kind="visitor")


# --- WebSocket -----------------------------------------------------------------------------

WS_UNAUTHORIZED = 4401
WS_FORBIDDEN = 4403
WS_GONE = 4410


@router.websocket("/conversations/{conversation_id}/ws")
async def conversation_socket(
    websocket: WebSocket,
    conversation_id: str,
    token: Annotated[str, Query(max_length=200)] = "",
) -> None:
    """A conversation over one WebSocket: send ``{"type": "message", "text", "client_message_id"}``,
    receive the same events as SSE (``delta``, ``message``, ``handoff``, ``ended``, ``done``);
    ``{"type": "resume", "after_seq": N}`` replays what was missed; ``ping`` answers ``pong``."""
    db = get_database(websocket)  # type: ignore[arg-type]
    conversation = await _socket_conversation(db, conversation_id, token)
    if conversation is None:
        await websocket.close(code=WS_UNAUTHORIZED)
        return
    if not await _socket_origin_allowed(websocket, db, conversation):
        await websocket.close(code=WS_FORBIDDEN)
        return
    await websocket.accept()
    await websocket.send_json({"type": "ready", "status": conversation.status})
    scope = Scope.for_client(conversation.agency_id, conversation.client_id)
    runner = TurnRunner(db, websocket.app.state.settings)
    actor = request_actor(websocket, kind="visitor")  # type: ignore[arg-type]
    try:
        while True:
            raw = await websocket.receive_text()
            for reply in await _socket_turn(raw, websocket, runner, db, scope, conversation, actor):
                await websocket.send_json(reply)
    except WebSocketDisconnect:
        return


async def _socket_conversation(
    db: Database, conversation_id: str, token: str
) -> Conversation | None:
    if not token:
        return None
    async with db.session(Scope.for_system()) as session:
        try:
            return await conversations.by_visitor_token(session, conversation_id[:40], token)
        except NotFound:
            return None


async def _socket_origin_allowed(
    websocket: WebSocket, db: Database, conversation: Conversation
) -> bool:
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    async with db.session(
        Scope.for_client(conversation.agency_id, conversation.client_id)
    ) as session:
        version = await session.get(AgentVersion, conversation.agent_version_id)
    allowed = agents.definition_of(version).widget.allowed_origins if version else []
    own = websocket.app.state.settings.base_url.rstrip("/")
    return not allowed or origin.rstrip("/") in {o.rstrip("/") for o in allowed} | {own}


async def _socket_turn(
    raw: str,
    websocket: WebSocket,
    runner: TurnRunner,
    db: Database,
    scope: Scope,
    conversation: Conversation,
    actor: Actor,
) -> list[dict[str, Any]]:
    """The answers to one frame from the visitor (a turn streams its own events first)."""
    try:
        frame = s.SocketFrame.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "frame"
        return [
            {"type": "error", "code": "validation_error", "field": field, "message": first["msg"]}
        ]
    if frame.type == "ping":
        return [{"type": "pong"}]
    if frame.type == "resume":
        async with db.session(scope) as session:
            rows = await conversations.messages(session, conversation.id, frame.after_seq or 0)
        missed = [
            {"type": "message", "message": _public(message_view(m)).model_dump()}
            for m in rows
            if visible(m)
        ]
        return [*missed, {"type": "resumed"}]
    text = (frame.text or "").strip()
    if not text:
        return [
            {
                "type": "error",
                "code": "validation_error",
                "field": "text",
                "message": "The message is empty.",
            }
        ]
    client = websocket.client.host if websocket.client else None
    for limiter, key in (
        (messages_per_ip, f"ip:{client}"),
        (messages_per_conversation, f"conv:{conversation.id}"),
    ):
        wait = limiter.retry_after(key)
        if wait > 0:
            return [{"type": "error", "code": "rate_limited", "retry_after": math.ceil(wait)}]
    try:
        async for event in runner.run(
            scope, conversation.id, text, actor=actor, client_message_id=frame.client_message_id
        ):
            data = event.data
            if event.type == "message":
                data = {"message": _public(event.data["message"]).model_dump()}
            await websocket.send_json({"type": event.type, **data})
    except DemandlyError as exc:
        return [{"type": "error", "code": exc.code, "message": exc.message}, {"type": "done"}]
    return [{"type": "done"}]
