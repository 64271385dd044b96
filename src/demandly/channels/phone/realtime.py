"""The client side of the OpenAI Realtime API (GA protocol), as the phone bridge uses it.

The connection is made with the official ``openai`` SDK (``client.realtime.connect``), pointed
at the agent's provider connection or at ``DEMANDLY_REALTIME_URL``. Events travel as the
protocol's JSON objects: audio flows at 50 frames a second each way per call, and the SDK's
typed ``send`` validates and transforms every event against its schema, which costs more than
the bridge may add per frame; so events are encoded once with ``json`` and sent raw.

Audio is ``audio/pcmu`` (G.711 μ-law, 8 kHz) both ways, which is exactly what Twilio Media
Streams carry: payloads pass through untouched, no transcoding.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from openai import AsyncOpenAI
from sqlalchemy.ext.asyncio import AsyncSession
from websockets.asyncio.client import ClientConnection
from websockets.protocol import State

from demandly.agents import service as agents
from demandly.agents.models import AgentVersion
from demandly.config import Settings
from demandly.engine.providers.base import ToolSpec
from demandly.kit.cache import TTLCache
from demandly.kit.crypto import hash_token
from demandly.kit.wsframes import FastClientConnection, FrameReader, MaskingKeys, text_frame

OPENAI_REALTIME_URL = "wss://api.openai.com/v1"
AUDIO_FORMAT = {"type": "audio/pcmu"}
# Transcripts of the caller's side come from a separate recognition model.
TRANSCRIPTION_MODEL = "gpt-4o-mini-transcribe"
CONNECT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class RealtimeEndpoint:
    """Where a call's model lives: a WebSocket base URL (``/realtime`` is appended), key and
    model."""

    url: str
    api_key: str | None
    model: str


async def endpoint_for(
    session: AsyncSession, settings: Settings, version: AgentVersion
) -> RealtimeEndpoint:
    """The agent's provider connection when it names one (the agency chose where its calls
    are processed), else the platform's realtime endpoint from the settings."""
    definition = agents.definition_of(version)
    if definition.llm.connection_id is not None:
        llm = await agents.llm_for(session, settings, version)
        if llm is not None:
            return RealtimeEndpoint(
                _websocket_url(llm.base_url), llm.api_key, settings.realtime_model
            )
    url = settings.realtime_url or settings.llm_base_url or OPENAI_REALTIME_URL
    return RealtimeEndpoint(
        _websocket_url(url), settings.effective_llm_api_key, settings.realtime_model
    )


def _websocket_url(url: str) -> str:
    url = url.rstrip("/")
    for plain, secure in (("http://", "ws://"), ("https://", "wss://")):
        if url.startswith(plain):
            return secure + url[len(plain) :]
    return url


def session_update(
    instructions: str,
    tools: tuple[ToolSpec, ...],
    *,
    voice: str | None,
    language: str,
) -> dict[str, Any]:
    """The ``session.update`` that configures a phone call: μ-law both ways, server-side
    voice activity detection (it also interrupts the model's answer when the caller speaks),
    transcripts of the caller, and the agent's tools."""
    output: dict[str, Any] = {"format": AUDIO_FORMAT}
    if voice:
        output["voice"] = voice
    return {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "output_modalities": ["audio"],
            "instructions": instructions,
            "audio": {
                "input": {
                    "format": AUDIO_FORMAT,
                    "turn_detection": {"type": "server_vad"},
                    "transcription": {"model": TRANSCRIPTION_MODEL, "language": language},
                },
                "output": output,
            },
            "tools": [
                {
                    "type": "function",
                    "name": spec.name,
                    "description": spec.description,
                    "parameters": spec.parameters,
                }
                for spec in tools
            ],
            "tool_choice": "auto",
        },
    }


def respond(instructions: str | None = None) -> dict[str, Any]:
    """``response.create``; ``instructions`` override the session's for this one answer."""
    if instructions is None:
        return {"type": "response.create"}
    return {"type": "response.create", "response": {"instructions": instructions}}


def append_audio(payload: str) -> str:
    """``input_audio_buffer.append`` with a base64 μ-law payload, encoded (the hot path). The
    payload must be base64 (the bridge checks): it needs no escaping."""
    return '{"type":"input_audio_buffer.append","audio":"' + payload + '"}'


_DELTA = b'{"type":"response.output_audio.delta"'


def audio_delta(raw: bytes) -> tuple[str, str] | None:
    """``(item_id, delta)`` of a ``response.output_audio.delta`` read without a JSON parser
    when it is written the usual way (``type`` first, no escapes); None otherwise (then the
    event is parsed as JSON). The bridge still checks that the delta is base64."""
    if not raw.startswith(_DELTA):
        return None
    item = _bytes_field(raw, b'"item_id":"')
    delta = _bytes_field(raw, b'"delta":"')
    if item is None or delta is None:
        return None
    return item.decode("ascii", "replace"), delta.decode("ascii", "replace")


def _bytes_field(raw: bytes, key: bytes) -> bytes | None:
    if raw.count(key) != 1:
        return None
    start = raw.find(key) + len(key)
    end = raw.find(b'"', start)
    if end < 0 or raw.find(b"\\", start, end) >= 0:
        return None
    return raw[start:end]


def truncate(item_id: str, audio_end_ms: int) -> dict[str, Any]:
    return {
        "type": "conversation.item.truncate",
        "item_id": item_id,
        "content_index": 0,
        "audio_end_ms": audio_end_ms,
    }


def user_text(text: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
    }


def function_output(call_id: str, output: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": call_id, "output": output},
    }


def parse_event(raw: bytes) -> dict[str, Any]:
    event = json.loads(raw)
    return event if isinstance(event, dict) else {}


class RealtimeSocket:
    """One open Realtime session: send events, receive events as dicts.

    The SDK opens the session (URL, key, handshake); events then go over its WebSocket
    directly. The SDK's own ``send_raw``/``recv_bytes`` wrap each message in bookkeeping for
    its reconnecting iterator (a send queue, the current task's id, a debug log line), which
    the bridge never uses: a call is not resumed on another connection, it ends. At 100
    messages a second per call that bookkeeping cost as much as the send itself. The
    connection is a ``FastClientConnection``: its ``FrameReader`` reads the model's events
    ahead of ``websockets`` (see ``kit.wsframes``).
    """

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        # A private attribute of the SDK: should a release rename it, the SDK's own (slower)
        # methods carry the events and nothing else changes.
        socket = getattr(connection, "_connection", None)
        self._socket: ClientConnection | None = (
            socket if isinstance(socket, ClientConnection) else None
        )
        # Frames go straight onto its transport when websockets still exposes what
        # ``_writable_now`` reads; else through its ``send``.
        self._direct = self._socket is not None and all(
            hasattr(self._socket, name) for name in ("protocol", "send_in_progress", "paused")
        )
        reader = getattr(self._socket, "frame_reader", None)
        self._reader: FrameReader | None = reader if isinstance(reader, FrameReader) else None
        self._masks = MaskingKeys()

    async def send(self, event: dict[str, Any]) -> None:
        await self.send_encoded(encode(event))

    def write_now(self, messages: tuple[str, ...]) -> bool:
        """Write encoded events in one go when the connection takes them now."""
        socket = self._socket
        if socket is None or not self._direct or not _writable_now(socket):
            return False
        masks = self._masks
        socket.transport.write(
            b"".join([text_frame(data.encode(), masks.next()) for data in messages])
        )
        return True

    async def send_encoded(self, data: str) -> None:
        if self.write_now((data,)):
            return
        if self._socket is None:
            await self._connection.send_raw(data)
        else:  # closing, or the peer reads slower than we write: websockets decides
            await self._socket.send(data)

    def deliver_to(self, handler: Callable[[bytes], None]) -> bool:
        """Hand the model's events to ``handler`` as they arrive, when the reader can; False
        when they come through ``recv_raw`` only."""
        if self._reader is None or not self._reader.active:
            return False
        self._reader.deliver_to(handler)
        return True

    def pause_reading(self, paused: bool) -> None:
        if self._reader is not None:
            (self._reader.pause_reading if paused else self._reader.resume_reading)()

    async def recv(self) -> dict[str, Any]:
        """The next server event; raises ``websockets.ConnectionClosed`` at the end."""
        return parse_event(await self.recv_raw())

    async def recv_raw(self) -> bytes:
        """The next server event as sent (for ``audio_delta``, then ``parse_event``). With a
        handler given to ``deliver_to``, only what the reader could not read comes here."""
        if self._reader is not None:
            raw = await self._reader.next()
            if raw is not None:
                return raw
        if self._socket is None:
            data: bytes = await self._connection.recv_bytes()
            return data
        message = await self._socket.recv(decode=False)
        return message if isinstance(message, bytes) else message.encode()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.step_aside()  # websockets reads the closing handshake
        await self._connection.close()


def encode(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))


def _writable_now(socket: ClientConnection) -> bool:
    """Whether a frame may go straight onto the socket's transport: the connection is open,
    no fragmented message is being sent and the transport is not asking us to wait."""
    return (
        socket.protocol.state is State.OPEN
        and socket.send_in_progress is None
        and not socket.paused
        and not socket.transport.is_closing()
    )


# One SDK client per endpoint and key, not per call (as the turn loop keeps its providers).
_clients = TTLCache[tuple[str, str], AsyncOpenAI](ttl_seconds=3600, max_items=256)


def _client(endpoint: RealtimeEndpoint) -> AsyncOpenAI:
    key = (endpoint.url, hash_token(endpoint.api_key or ""))
    client = _clients.get(key)
    if client is None:
        client = AsyncOpenAI(
            api_key=endpoint.api_key or "none",
            base_url=_http_url(endpoint.url),
            websocket_base_url=endpoint.url,
            max_retries=0,
        )
        _clients.put(key, client)
    return client


async def connect(endpoint: RealtimeEndpoint) -> RealtimeSocket:
    """Open the session (the SDK adds ``/realtime?model=`` and the bearer key)."""
    manager = _client(endpoint).realtime.connect(
        model=endpoint.model,
        websocket_connection_options={"create_connection": FastClientConnection},  # type: ignore[typeddict-unknown-key]
    )
    async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
        return RealtimeSocket(await manager.enter())


def _http_url(url: str) -> str:
    for plain, secure in (("ws://", "http://"), ("wss://", "https://")):
        if url.startswith(plain):
            return secure + url[len(plain) :]
    return url
