"""A local server speaking the OpenAI Realtime protocol (GA event names), for the phone bridge's
tests (the benchmark has a lean streaming one of its own: ``bench/realtime_stream.py``).

On the first ``response.create`` it speaks a greeting (a few 20 ms μ-law deltas, all at
once, faster than real time as the real API does, then ``response.output_audio.done``).
Caller audio that is not μ-law silence (0xFF) is speech: the stub's "server VAD" sends
``input_audio_buffer.speech_started``, and when silence follows, ``speech_stopped``, the
caller's transcript and the next scripted answer (audio, its transcript, and optionally a
function call). After a ``function_call_output`` and ``response.create`` it speaks the turn's
follow-up. Everything received is recorded per session for the tests to check.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

FRAME_BYTES = 160  # 20 ms of μ-law at 8 kHz
# A wait that never ends is a failure, not a hang (a guard, not a timing assertion).
GUARD_SECONDS = 30.0
SILENCE = 0xFF


def audio(marker: int, nbytes: int = FRAME_BYTES) -> str:
    """A base64 μ-law chunk filled with ``marker`` (any byte but 0xFF is "speech")."""
    return base64.b64encode(bytes([marker]) * nbytes).decode()


def is_speech(payload: str) -> bool:
    return any(byte != SILENCE for byte in base64.b64decode(payload))


@dataclass
class Turn:
    """What the stub does after the caller's n-th utterance."""

    transcript: str
    say: str = ""
    chunks: int = 2
    call: tuple[str, dict[str, Any]] | None = None  # (tool name, arguments)
    after_call: str = ""  # what it says once the call's output came back


@dataclass
class Script:
    greeting: str = "Guten Tag, hier ist die Praxis."
    greeting_chunks: int = 5
    turns: list[Turn] = field(default_factory=list)
    # After a barge-in, one more delta of the interrupted item arrives (audio in flight).
    late_delta: bool = False


@dataclass
class Session:
    """One connection: what the bridge sent, and a few states the tests wait for."""

    received: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    path: str = ""
    authorization: str | None = None

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.received if e.get("type") == kind]

    def sent_of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.sent if e.get("type") == kind]

    async def wait_for(self, kind: str, count: int = 1) -> list[dict[str, Any]]:
        async with asyncio.timeout(GUARD_SECONDS), self.changed:
            await self.changed.wait_for(lambda: len(self.of_type(kind)) >= count)
        return self.of_type(kind)

    async def ended(self) -> None:
        async with asyncio.timeout(GUARD_SECONDS):
            await self.closed.wait()


class _Conversation:
    """The scripted side of one session."""

    def __init__(self, socket: ServerConnection, session: Session, script: Script) -> None:
        self.socket = socket
        self.session = session
        self.script = script
        self.counter = 0
        self.responses = 0
        self.turn_index = -1
        self.speaking = False
        self.last_audio_item: str | None = None
        self.pending_after_call: str = ""

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}_{self.counter:04d}"

    async def send(self, event: dict[str, Any]) -> None:
        event.setdefault("event_id", self.next_id("event"))
        self.session.sent.append(event)
        await self.socket.send(json.dumps(event))

    async def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "session.update":
            await self.send({"type": "session.updated", "session": event.get("session", {})})
        elif kind == "input_audio_buffer.append":
            await self.caller_audio(str(event.get("audio", "")))
        elif kind == "response.create":
            await self.respond()
        elif kind == "conversation.item.truncate":
            await self.send(
                {
                    "type": "conversation.item.truncated",
                    "item_id": event.get("item_id"),
                    "content_index": 0,
                    "audio_end_ms": event.get("audio_end_ms"),
                }
            )
        elif kind == "conversation.item.create":
            item = event.get("item") or {}
            if item.get("type") == "function_call_output":
                self.pending_after_call = self.current_turn().after_call if self.turns() else ""
            await self.send(
                {"type": "conversation.item.created", "item": {**item, "id": self.next_id("item")}}
            )

    def turns(self) -> bool:
        return 0 <= self.turn_index < len(self.script.turns)

    def current_turn(self) -> Turn:
        return self.script.turns[self.turn_index]

    async def caller_audio(self, payload: str) -> None:
        speech = is_speech(payload)
        if speech and not self.speaking:
            self.speaking = True
            await self.send(
                {"type": "input_audio_buffer.speech_started", "audio_start_ms": 0, "item_id": "x"}
            )
            if self.script.late_delta and self.last_audio_item:
                await self.delta(self.last_audio_item, "resp_late", 0x55)
        elif not speech and self.speaking:
            self.speaking = False
            await self.caller_finished()

    async def caller_finished(self) -> None:
        item = self.next_id("item")
        await self.send({"type": "input_audio_buffer.speech_stopped", "item_id": item})
        await self.send({"type": "input_audio_buffer.committed", "item_id": item})
        self.turn_index += 1
        if not self.turns():
            return
        turn = self.current_turn()
        await self.send(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item,
                "content_index": 0,
                "transcript": turn.transcript,
            }
        )
        await self.answer(turn.say, turn.chunks, turn.call)

    async def respond(self) -> None:
        self.responses += 1
        if self.responses == 1:
            await self.answer(self.script.greeting, self.script.greeting_chunks, None)
        elif self.pending_after_call:
            text, self.pending_after_call = self.pending_after_call, ""
            await self.answer(text, 2, None)
        else:
            await self.answer("Verstanden.", 1, None)

    async def answer(self, text: str, chunks: int, call: tuple[str, dict[str, Any]] | None) -> None:
        response = self.next_id("resp")
        await self.send({"type": "response.created", "response": {"id": response}})
        if text:
            item = self.next_id("item")
            self.last_audio_item = item
            for n in range(chunks):
                await self.delta(item, response, 0x10 + n)
            await self.send(
                {
                    "type": "response.output_audio.done",
                    "response_id": response,
                    "item_id": item,
                    "output_index": 0,
                    "content_index": 0,
                }
            )
            await self.send(
                {
                    "type": "response.output_audio_transcript.done",
                    "response_id": response,
                    "item_id": item,
                    "output_index": 0,
                    "content_index": 0,
                    "transcript": text,
                }
            )
        if call is not None:
            name, arguments = call
            await self.send(
                {
                    "type": "response.function_call_arguments.done",
                    "response_id": response,
                    "item_id": self.next_id("item"),
                    "output_index": 1,
                    "call_id": self.next_id("call"),
                    "name": name,
                    "arguments": json.dumps(arguments),
                }
            )
        await self.send(
            {"type": "response.done", "response": {"id": response, "status": "completed"}}
        )

    async def delta(self, item: str, response: str, marker: int) -> None:
        await self.send(
            {
                "type": "response.output_audio.delta",
                "response_id": response,
                "item_id": item,
                "output_index": 0,
                "content_index": 0,
                "delta": audio(marker),
            }
        )


class RealtimeStub:
    """``async with RealtimeStub(script) as stub:`` serves on ``stub.url`` (a WebSocket base
    URL: clients connect to ``{url}/realtime?model=...``)."""

    def __init__(self, script: Script | None = None) -> None:
        self.script = script or Script()
        # While set, the handshake is answered 503 (the model is unavailable).
        self.refuse = False
        self.refused = 0
        self.sessions: list[Session] = []
        self._new_session = asyncio.Condition()
        self._server: Server | None = None
        self.url = ""

    async def __aenter__(self) -> RealtimeStub:
        self._server = await serve(self._serve, "127.0.0.1", 0, process_request=self._admit)
        port = next(iter(self._server.sockets)).getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def session(self, index: int = 0) -> Session:
        async with asyncio.timeout(GUARD_SECONDS), self._new_session:
            await self._new_session.wait_for(lambda: len(self.sessions) > index)
        return self.sessions[index]

    def _admit(self, socket: ServerConnection, request: Request) -> Response | None:
        if not self.refuse:
            return None
        self.refused += 1
        return socket.respond(HTTPStatus.SERVICE_UNAVAILABLE, "The model is overloaded.\n")

    async def _serve(self, socket: ServerConnection) -> None:
        session = Session(
            path=socket.request.path if socket.request else "",
            authorization=socket.request.headers.get("Authorization") if socket.request else None,
        )
        async with self._new_session:
            self.sessions.append(session)
            self._new_session.notify_all()
        conversation = _Conversation(socket, session, self.script)
        try:
            await conversation.send({"type": "session.created", "session": {"type": "realtime"}})
            async for raw in socket:
                event = json.loads(raw)
                async with session.changed:
                    session.received.append(event)
                    session.changed.notify_all()
                await conversation.handle(event)
        except ConnectionClosed:
            pass
        finally:
            session.closed.set()
