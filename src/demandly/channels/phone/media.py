"""``WS /twilio/media-stream``: where Twilio connects a realtime-mode call (``<Connect><Stream>``).

Twilio's WebSocket carries no credentials of its own, and query strings on the stream URL are
not passed on; what identifies the call are the ``<Parameter>``s of the TwiML, which arrive
in the ``start`` message. So the route accepts, reads ``connected`` and ``start``, and only
then decides: the ``call_id`` must name a call waiting for its stream, and ``token`` must be
the signature this server put into that call's TwiML. Anything else is closed with 1008
(policy violation) before a model is ever connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState
from websockets.protocol import State

try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
except ImportError:  # another ASGI server: every message takes the ASGI path
    WebSocketsSansIOProtocol = None  # type: ignore[assignment,misc]

from demandly.agents.models import AgentVersion
from demandly.auth.dependencies import get_database

# Module imports: the call service imports this module (stream_token), and the bridge imports
# the call service; attributes are read at run time, so any import order works.
from demandly.channels.phone import bridge, realtime
from demandly.channels.phone import service as phone
from demandly.config import Settings
from demandly.kit.crypto import get_keyring
from demandly.kit.db import Database
from demandly.kit.logging import get_logger
from demandly.kit.wsframes import FrameReader, text_frame

log = get_logger(__name__)
router = APIRouter(tags=["phone"])

WS_POLICY_VIOLATION = 1008
WS_TRY_AGAIN_LATER = 1013
TOKEN_PURPOSE = "twilio-media-stream"
TOKEN_TTL_SECONDS = 3600
# Twilio sends ``connected`` and ``start`` right after the handshake.
START_TIMEOUT_SECONDS = 10.0
MAX_MESSAGE_CHARS = 64_000

# Calls whose stream is open in this process (a stream is pinned to the process that took it).
_open_calls: set[str] = set()


def stream_token(call_id: str, *, now: float | None = None) -> str:
    """The ``token`` parameter for a call's ``<Stream>``: ``{expires}.{signature}``, an HMAC
    under the keyring over the call id and the expiry."""
    expires = int(now if now is not None else time.time()) + TOKEN_TTL_SECONDS
    return f"{expires}.{_signature(call_id, expires)}"


def token_valid(token: str, call_id: str, *, now: float | None = None) -> bool:
    expires_text, _, signature = token.partition(".")
    if not expires_text.isdigit() or len(token) > 100:
        return False
    expires = int(expires_text)
    if expires < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(signature, _signature(call_id, expires))


def _signature(call_id: str, expires: int) -> str:
    return get_keyring().mac(f"{call_id}|{expires}", TOKEN_PURPOSE)[:32]


class _TwilioSocket:
    """The route's WebSocket as the bridge's ``CallerSocket``. Once Twilio has gone, sends
    are dropped: the call ends through ``receive`` returning None, not through an error on
    the model's side of the bridge.

    Under uvicorn's WebSocket protocol (``websockets``, sans-I/O: uvicorn's default) the
    socket skips the ASGI layers both ways, which cost more per message than the bridge
    itself: Twilio's messages are read by a ``FrameReader`` installed right after the
    handshake (before Twilio can have sent a frame), and audio and marks are written as
    frames straight onto uvicorn's transport while the connection is open and not asking to
    wait, a chunk and its mark in one write. Anything else (another server, a closing
    connection, back-pressure, a frame only uvicorn may read) takes the ASGI path."""

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket
        self._gone = False
        self._server = _uvicorn_protocol(websocket)
        # uvicorn's own ASGI receive (what Starlette's calls) once the socket is accepted.
        self._receive: Callable[[], Awaitable[Mapping[str, Any]]] = (
            websocket.receive if self._server is None else self._server.receive
        )
        self._reader = _reader_for(self._server)

    async def receive(self) -> str | None:
        """The next text message ("" for one that is not valid UTF-8 or too long); None once
        Twilio has gone. With a handler given to ``deliver_to``, only what the reader could
        not read comes here."""
        if self._reader is not None:
            raw = await self._reader.next()
            if raw is not None:
                return _text(raw)
        try:
            message = await self._receive()
        except (WebSocketDisconnect, RuntimeError):
            message = {"type": "websocket.disconnect"}
        if message["type"] == "websocket.disconnect":
            self._gone = True
            return None
        text = message.get("text")
        return text if isinstance(text, str) and len(text) <= MAX_MESSAGE_CHARS else ""

    def deliver_to(self, handler: Callable[[str], None]) -> bool:
        """Hand Twilio's messages to ``handler`` as they arrive, when the reader can; False
        when they come through ``receive`` only."""
        reader = self._reader
        if reader is None or not reader.active:
            return False
        reader.deliver_to(lambda raw: handler(_text(raw)))
        return True

    def pause_reading(self, paused: bool) -> None:
        if self._reader is not None:
            (self._reader.pause_reading if paused else self._reader.resume_reading)()

    def write_now(self, messages: tuple[str, ...]) -> bool:
        """Write the messages in one go when the connection takes them now (True; also when
        Twilio has gone and they are dropped)."""
        if self._gone:
            return True
        server = self._server
        if server is None or not _writable_now(server):
            return False
        server.transport.write(b"".join([text_frame(message.encode()) for message in messages]))
        return True

    async def send_all(self, messages: tuple[str, ...]) -> None:
        if self.write_now(messages):
            return
        try:
            for message in messages:
                await self._websocket.send_text(message)
        except (WebSocketDisconnect, RuntimeError, OSError):
            self._gone = True

    async def close(self, code: int = 1000) -> None:
        if self._reader is not None:
            self._reader.step_aside()  # uvicorn reads the closing handshake
        if self._websocket.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await self._websocket.close(code=code)


def _text(raw: bytes) -> str:
    if len(raw) > MAX_MESSAGE_CHARS:
        return ""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return ""


def _reader_for(server: WebSocketsSansIOProtocol | None) -> FrameReader | None:
    """A reader in front of uvicorn's connection, when it has read nothing past the
    handshake (the route calls this right after accepting, before Twilio's first frame)."""
    if server is None or not server.handshake_complete or not server.queue.empty():
        return None
    if server.conn.state is not State.OPEN or getattr(server.conn.reader, "buffer", b"x"):
        return None
    return FrameReader(server.transport, server, masked=True)


# What ``_writable_now`` reads of uvicorn's connection: should a release rename any of it, the
# route keeps to the ASGI path.
_UVICORN_ATTRIBUTES = (
    "handshake_complete",
    "close_sent",
    "disconnected",
    "writable",
    "conn",
    "transport",
    "receive",
    "queue",
)


def _uvicorn_protocol(websocket: WebSocket) -> WebSocketsSansIOProtocol | None:
    """uvicorn's connection behind the route, when the ASGI ``receive`` is its own (no
    middleware wraps a WebSocket's receive)."""
    if WebSocketsSansIOProtocol is None:
        return None
    owner = getattr(getattr(websocket, "_receive", None), "__self__", None)
    if not isinstance(owner, WebSocketsSansIOProtocol):
        return None
    return owner if all(hasattr(owner, name) for name in _UVICORN_ATTRIBUTES) else None


def _writable_now(server: WebSocketsSansIOProtocol) -> bool:
    """Open both ways as uvicorn and ``websockets`` see it, and the transport not paused."""
    return (
        server.handshake_complete
        and not server.close_sent
        and not server.disconnected
        and server.writable.is_set()
        and server.conn.state is State.OPEN
        and not server.transport.is_closing()
    )


@router.websocket("/twilio/media-stream")
async def media_stream(websocket: WebSocket) -> None:
    """A Twilio Media Stream (bidirectional), bridged to the agent's realtime model."""
    await websocket.accept()
    caller = _TwilioSocket(websocket)
    db: Database = get_database(websocket)  # type: ignore[arg-type]
    settings: Settings = websocket.app.state.settings
    try:
        async with asyncio.timeout(START_TIMEOUT_SECONDS):
            started = await _wait_for_start(caller)
    except TimeoutError:
        started = None
    # A call's stream stays in ``_open_calls`` until the call's end is committed: looked at
    # before the call is read, a stream that comes as the last one ends finds it either
    # there or ended in the database, never in between.
    open_now = started is not None and _call_named(started) in _open_calls
    media = None if open_now else await _admit(db, started)
    if started is None or media is None or media.call_id in _open_calls:
        await caller.close(WS_POLICY_VIOLATION)
        return
    _open_calls.add(media.call_id)
    try:
        await _bridge(db, settings, media, caller, started)
    finally:
        _open_calls.discard(media.call_id)


async def _wait_for_start(caller: _TwilioSocket) -> bridge.Started | None:
    """Skip ``connected``; the first ``start`` decides. Anything else first is refused."""
    while True:
        raw = await caller.receive()
        if raw is None:
            return None
        if bridge.TwilioFrames.event_of(raw) == "connected":
            continue
        frame = bridge.TwilioFrames.parse(raw)
        return frame if isinstance(frame, bridge.Started) else None


def _call_named(started: bridge.Started) -> str:
    return started.parameters.get("call_id", "")[:40]


async def _admit(db: Database, started: bridge.Started | None) -> phone.MediaCall | None:
    if started is None:
        return None
    call_id = _call_named(started)
    token = started.parameters.get("token", "")
    if not call_id or not token_valid(token, call_id):
        return None
    return await phone.media_call(db, call_id, started.call_sid or None)


async def _bridge(
    db: Database,
    settings: Settings,
    media: phone.MediaCall,
    caller: _TwilioSocket,
    started: bridge.Started,
) -> None:
    try:
        async with db.session(media.scope) as session:
            version = await session.get(AgentVersion, media.agent_version_id)
            if version is None:
                raise LookupError("agent version gone")
            endpoint = await realtime.endpoint_for(session, settings, version)
        model = await realtime.connect(endpoint)
    except Exception as exc:  # the caller is told nothing by a 500; the stream just ends
        log.warning("realtime_connect_failed", call_id=media.call_id, error_type=type(exc).__name__)
        await caller.close(WS_TRY_AGAIN_LATER)
        await phone.end_media_call(db, settings, media, "model_unavailable", True)
        return
    await bridge.Bridge(db, settings, media, caller, model, started.stream_sid).run()
