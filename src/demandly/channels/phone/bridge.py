"""The realtime phone bridge: a Twilio Media Stream on one side, an OpenAI Realtime session on
the other, μ-law audio passed through untouched both ways.

Shaped like a Pipecat pipeline, cut down to what a phone call needs: each side's wire
messages become small frames (``TwilioFrames`` parses and serialises Twilio's), and two
processors sit between the sides: ``Playback`` follows what the caller has actually heard
(Twilio echoes each ``mark`` once the audio before it has played; between marks the audio
plays in real time), and ``Bridge`` routes frames: caller audio to the model, model audio to
the caller with a mark every 100 ms of it and at the end of an answer, the caller's voice
over the model's (barge-in) to a Twilio ``clear`` plus a ``conversation.item.truncate`` at
the milliseconds heard, function calls to our tool registry, transcripts to the
conversation.

Nothing slow runs on the audio path: tools, transcripts and the end of the call run in their
own tasks, so a tool that takes a second never holds up a frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import string
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

# The call service imports this package's media route for the stream token: a module
# import (attributes read at run time) keeps that cycle harmless.
from demandly.channels.phone import realtime
from demandly.channels.phone import service as phone
from demandly.config import Settings
from demandly.conversations import service as conversations
from demandly.conversations.models import MessageRole
from demandly.engine.prompt import system_prompt, with_situation
from demandly.engine.providers.base import ToolCall
from demandly.engine.tools import ToolContext, run_tool, specs_for
from demandly.kit.db import Database
from demandly.kit.logging import get_logger

log = get_logger(__name__)

# μ-law at 8 kHz: one byte per sample, 8 bytes per millisecond.
BYTES_PER_MS = 8
BYTES_PER_SECOND = 1000 * BYTES_PER_MS
# A mark goes to Twilio after this much audio of an answer (and at its end): each echo is a
# message through the server, and the clock says what played in between.
MARK_EVERY_BYTES = 100 * BYTES_PER_MS
# Digits typed on the keypad go to the model together: after '#' or this pause.
DTMF_PAUSE_SECONDS = 1.5
# After the agent ends the call, its goodbye may still be playing: wait for the marks.
GOODBYE_WAIT_SECONDS = 10.0
# Tools still running when the call ends get this long to store what they did.
TOOL_GRACE_SECONDS = 5.0
ENDING_TOOLS = frozenset({"end_call", "end_conversation"})
PHONE_HINTS = {
    "de": "Sie sprechen am Telefon: antworten Sie kurz, in ganzen Sätzen, ohne Aufzählungen "
    "oder Links. Beenden Sie das Gespräch mit end_conversation, nachdem Sie sich verabschiedet "
    "haben.",
    "en": "You are on the phone: answer briefly, in full sentences, without lists or links. "
    "End the call with end_conversation after saying goodbye.",
}


_BASE64_ALPHABET = (string.ascii_letters + string.digits + "+/").encode()


def is_base64(text: str) -> bool:
    """Whether ``text`` is base64 (the alphabet, then at most two ``=``), as a regular
    expression would say, in a third of its time (it runs twice per 20 ms of a call)."""
    data = text.encode()
    body = data.rstrip(b"=")
    return bool(body) and len(data) - len(body) <= 2 and not body.translate(None, _BASE64_ALPHABET)


def payload_bytes(payload: str) -> int:
    """The number of bytes a base64 payload decodes to, without decoding it."""
    size = len(payload)
    if size == 0:
        return 0
    padding = 2 if payload.endswith("==") else 1 if payload.endswith("=") else 0
    return size // 4 * 3 - padding


# Twilio writes ``event`` first: media (50 a second per call) and mark echoes are read without
# a JSON parser when they look exactly as Twilio sends them; anything else takes the general
# path. The audio must be base64 either way: it goes into the model's JSON as it is.
_MEDIA = '{"event":"media"'
_MARK = '{"event":"mark"'


def _field(raw: str, key: str) -> str | None:
    """The string value after ``key`` (``"name":"``) when it holds no escapes; else None."""
    start = raw.find(key)
    if start < 0:
        return None
    start += len(key)
    end = raw.find('"', start)
    if end < 0 or raw.find("\\", start, end) >= 0:
        return None
    return raw[start:end]


def _media_fast(raw: str) -> CallerAudio | None:
    if '"track":"inbound"' not in raw or raw.count('"payload":"') != 1:
        return None
    payload = _field(raw, '"payload":"')
    return CallerAudio(payload) if payload is not None and is_base64(payload) else None


# --- frames --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallerAudio:
    payload: str  # base64 μ-law, 20 ms per frame


@dataclass(frozen=True, slots=True)
class CallerDigit:
    digit: str


@dataclass(frozen=True, slots=True)
class MarkPlayed:
    name: str


@dataclass(frozen=True, slots=True)
class Started:
    stream_sid: str
    call_sid: str
    parameters: dict[str, str]


@dataclass(frozen=True, slots=True)
class HungUp:
    pass


CallerFrame = CallerAudio | CallerDigit | MarkPlayed | Started | HungUp | None


class TwilioFrames:
    """Twilio Media Streams messages <-> frames. Outgoing messages are built as strings:
    the payloads are base64 and the ids Twilio's, so nothing needs escaping."""

    def __init__(self, stream_sid: str) -> None:
        self._prefix = '{"streamSid":"' + stream_sid + '","event":'

    @staticmethod
    def event_of(raw: str) -> str | None:
        try:
            message = json.loads(raw)
        except ValueError:
            return None
        event = message.get("event") if isinstance(message, dict) else None
        return event if isinstance(event, str) else None

    @staticmethod
    def parse(raw: str) -> CallerFrame:
        """A frame from one message; None for what the bridge ignores (``connected``,
        outbound-track media, malformed messages, audio that is not base64)."""
        if raw.startswith(_MEDIA):
            fast = _media_fast(raw)
            if fast is not None:
                return fast
        elif raw.startswith(_MARK):
            name = _field(raw, '"name":"')
            if name is not None and name.isdigit():
                return MarkPlayed(name)
        return TwilioFrames.parse_json(raw)

    @staticmethod
    def parse_json(raw: str) -> CallerFrame:
        """``parse`` the general way (any key order, escapes)."""
        try:
            message = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(message, dict):
            return None
        event = message.get("event")
        body = message.get(event) if isinstance(event, str) else None
        if not isinstance(body, dict):
            return HungUp() if event == "stop" else None
        if event == "media":
            payload = body.get("payload")
            track = body.get("track", "inbound")
            if not isinstance(payload, str) or track != "inbound" or not is_base64(payload):
                return None
            return CallerAudio(payload)
        if event == "mark":
            name = body.get("name")
            return MarkPlayed(name) if isinstance(name, str) else None
        if event == "dtmf":
            digit = body.get("digit")
            return CallerDigit(digit) if isinstance(digit, str) and len(digit) == 1 else None
        if event == "start":
            return _started(message, body)
        if event == "stop":
            return HungUp()
        return None

    def media(self, payload: str) -> str:
        return self._prefix + '"media","media":{"payload":"' + payload + '"}}'

    def mark(self, name: str) -> str:
        return self._prefix + '"mark","mark":{"name":"' + name + '"}}'

    def clear(self) -> str:
        return self._prefix + '"clear"}'


def _started(message: dict[str, Any], body: dict[str, Any]) -> Started | None:
    stream_sid = body.get("streamSid") or message.get("streamSid")
    call_sid = body.get("callSid")
    raw = body.get("customParameters")
    parameters = (
        {str(k): str(v) for k, v in raw.items() if isinstance(v, str)}
        if isinstance(raw, dict)
        else {}
    )
    if not isinstance(stream_sid, str) or not stream_sid.isalnum():
        return None
    return Started(stream_sid, call_sid if isinstance(call_sid, str) else "", parameters)


# --- playback ------------------------------------------------------------------------------


@dataclass
class Playback:
    """What the caller has heard of the model's latest answer.

    Model audio goes to Twilio with a mark after every ``MARK_EVERY_BYTES`` (100 ms) of an
    answer, and one at its end; Twilio echoes a mark when the audio before it has played (or
    was cleared). Between echoes the clock tells: audio plays in real time (8,000 bytes of
    μ-law a second), so the bytes heard of an item are the bytes up to its latest echoed
    mark plus the time since that echo, capped at the bytes sent. Before an item's first
    echo they count from when its first chunk was sent (or, when the previous answer was
    still queued at Twilio, from when that one will have played), and when Twilio's queue
    has run dry, from when the next chunk was sent. ``bytes / 8`` are the milliseconds
    ``conversation.item.truncate`` must be told, not the milliseconds sent, which run ahead
    of the caller's ear by whatever Twilio has queued. ``playing`` stays true until every
    byte sent is covered by a mark that came back: the goodbye waits for the echoes, not the
    clock.
    """

    clock: Callable[[], float] = time.monotonic
    item_id: str | None = None
    sent_bytes: int = 0
    marked_bytes: int = 0  # of the item, up to the latest mark sent
    played_bytes: int = 0  # of the item, up to the latest mark echoed
    # Mark name -> (item id, bytes of that item sent up to the mark), in sending order.
    pending: dict[str, tuple[str, int]] = field(default_factory=dict)
    # Items cut off by the caller: their late audio is dropped, not played.
    truncated: set[str] = field(default_factory=set)
    # The estimate's reference: the caller had heard this many bytes of the item at this time.
    _heard_then: int = 0
    _then: float = 0.0
    _count: int = 0

    def sent(self, item_id: str, nbytes: int) -> str | None:
        """Count a chunk about to be sent; returns the name of a mark to send after it when
        100 ms of the item have gone out since the last one."""
        now = self.clock()
        if item_id != self.item_id:
            self._start(item_id, now)
        elif self.heard_bytes(now) >= self.sent_bytes:
            self._heard_then, self._then = self.sent_bytes, now  # it plays from now on
        self.sent_bytes += nbytes
        if self.sent_bytes - self.marked_bytes >= MARK_EVERY_BYTES:
            return self.mark()
        return None

    def _start(self, item_id: str, now: float) -> None:
        queued = self.sent_bytes - self.heard_bytes(now)  # of the previous item, played first
        self.item_id, self.sent_bytes, self.marked_bytes, self.played_bytes = item_id, 0, 0, 0
        self._heard_then, self._then = 0, now + queued / BYTES_PER_SECOND

    def mark(self) -> str | None:
        """The name of a mark covering the audio sent since the last one; None when every
        byte sent already has its mark."""
        if self.item_id is None or self.sent_bytes == self.marked_bytes:
            return None
        self.marked_bytes = self.sent_bytes
        self._count += 1
        name = str(self._count)
        self.pending[name] = (self.item_id, self.sent_bytes)
        return name

    def played(self, name: str) -> None:
        """Twilio echoed a mark: the audio before it has been heard. Marks of audio cleared
        at a barge-in echo too; they were forgotten then and count for nothing."""
        entry = self.pending.pop(name, None)
        if entry is not None and entry[0] == self.item_id and entry[1] >= self.played_bytes:
            self.played_bytes = entry[1]
            self._heard_then, self._then = entry[1], self.clock()

    def heard_bytes(self, now: float) -> int:
        """The bytes of the item heard by ``now``: see the class."""
        since = round((now - self._then) * BYTES_PER_SECOND)
        return max(0, min(self.sent_bytes, self._heard_then + since))

    @property
    def played_ms(self) -> int:
        return self.played_bytes // BYTES_PER_MS

    @property
    def playing(self) -> bool:
        """Whether audio sent to Twilio is not known to be heard: a mark not echoed yet, or
        audio sent after the latest mark (its mark is still to be sent)."""
        return bool(self.pending) or self.sent_bytes > self.marked_bytes

    def interrupt(self) -> tuple[str, int] | None:
        """The caller spoke over the answer: the item to truncate and the milliseconds
        heard of it, or None when everything sent has been heard. Forgets the pending
        marks and the audio not heard yet (it is about to be cleared)."""
        if self.item_id is None or not self.playing:
            return None
        now = self.clock()
        heard = self.heard_bytes(now)
        self.pending.clear()
        self.truncated.add(self.item_id)
        self.sent_bytes = self.marked_bytes = self._heard_then = heard
        self._then = now
        return self.item_id, heard // BYTES_PER_MS


# --- the bridge ----------------------------------------------------------------------------


def session_update_for(media: phone.MediaCall) -> dict[str, Any]:
    """The call's ``session.update``: the agent's prompt with the call's situation, a hint
    for speaking on the phone, its tools and voice."""
    context = media.context
    hint = PHONE_HINTS.get(context.language, PHONE_HINTS["en"])
    prompt = with_situation(system_prompt(context), media.situation)
    return realtime.session_update(
        f"{prompt}\n\n{hint}",
        specs_for(sorted(media.enabled_tools)),
        voice=media.definition.phone.realtime_voice,
        language=context.language,
    )


class CallerSocket(Protocol):
    """Twilio's side of the call (the route's WebSocket)."""

    async def receive(self) -> str | None:
        """The next text message; None when Twilio has gone."""
        ...

    def deliver_to(self, handler: Callable[[str], None]) -> bool:
        """Hand messages to ``handler`` as they arrive, if the socket can (True); what it
        cannot still comes through ``receive``."""
        ...

    def pause_reading(self, paused: bool) -> None: ...

    def write_now(self, messages: tuple[str, ...]) -> bool:
        """Write the messages in order, in one go, if the socket takes them now."""
        ...

    async def send_all(self, messages: tuple[str, ...]) -> None:
        """Messages in order, waiting for the socket as long as it takes."""
        ...

    async def close(self) -> None: ...


class ModelSocket(Protocol):
    """The model's side of the call (``realtime.RealtimeSocket``)."""

    async def recv_raw(self) -> bytes: ...

    def deliver_to(self, handler: Callable[[bytes], None]) -> bool: ...

    def pause_reading(self, paused: bool) -> None: ...

    def write_now(self, messages: tuple[str, ...]) -> bool: ...

    async def send_encoded(self, data: str) -> None: ...

    async def close(self) -> None: ...


class Outbox:
    """Messages to one side of the call, in order. They are written at once while the
    socket takes them; else they wait here and a task sends them as the socket allows, with
    the other side's reading paused meanwhile (``hold_source``), so that what waits stays
    bounded. A socket that failed takes nothing more: the call is ending."""

    def __init__(
        self,
        write_now: Callable[[tuple[str, ...]], bool],
        send_all: Callable[[tuple[str, ...]], Awaitable[None]],
        spawn: Callable[[Awaitable[Any]], asyncio.Task[Any]],
        hold_source: Callable[[bool], None],
    ) -> None:
        self._write_now = write_now
        self._send_all = send_all
        self._spawn = spawn
        self._hold_source = hold_source
        self._waiting: deque[tuple[str, ...]] = deque()
        self._sender: asyncio.Task[Any] | None = None
        self._failed = False

    def put(self, *messages: str) -> None:
        if self._failed:
            return
        if self._sender is None and self._write_now(messages):
            return
        self._waiting.append(messages)
        if self._sender is None:
            self._hold_source(True)
            self._sender = self._spawn(self._send_waiting())

    async def drained(self) -> None:
        """Once nothing waits (for readers without ``deliver_to``: their back-pressure)."""
        if self._sender is not None:
            await asyncio.wait({self._sender})

    async def _send_waiting(self) -> None:
        try:
            while self._waiting:
                await self._send_all(self._waiting[0])
                self._waiting.popleft()
        except Exception:
            self._failed = True
            self._waiting.clear()
            raise
        finally:
            self._sender = None
            self._hold_source(False)


@dataclass
class _Ending:
    reason: str
    hang_up: bool


class Bridge:
    """One call: runs until the caller hangs up, the agent ends the call or the model goes
    away; then closes both sockets and tells the call service how the call ended.

    Messages are handled as they arrive, in order, without awaiting anything: whatever they
    send goes to an ``Outbox``, and slow work (tools, transcripts) runs in tasks."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        media: phone.MediaCall,
        caller: CallerSocket,
        model: ModelSocket,
        stream_sid: str,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.settings = settings
        self.media = media
        self.caller = caller
        self.model = model
        self.twilio = TwilioFrames(stream_sid)
        self.playback = Playback(clock)
        self._digits: list[str] = []
        self._digit_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._to_caller = Outbox(
            caller.write_now, caller.send_all, self._spawn, model.pause_reading
        )
        self._to_model = Outbox(
            model.write_now, self._send_to_model, self._spawn, caller.pause_reading
        )
        # Tool runs of a response (by response id): the response continues when all are done.
        self._tool_runs: dict[str, list[asyncio.Task[bool]]] = {}
        self._greeting_response: str | None = None
        self._first_response = True
        self._ending: _Ending | None = None
        self._hung_up = False
        self._ended = asyncio.Event()
        # One database lane per call: transcripts and tool results are stored in order.
        self._store_lock = asyncio.Lock()
        self._model_handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "input_audio_buffer.speech_started": self._barge_in,
            "response.created": self._response_created,
            "response.output_audio.done": self._mark_sent_audio,
            "response.function_call_arguments.done": self._function_call,
            "response.done": self._response_done,
            "conversation.item.input_audio_transcription.completed": self._caller_said,
            "response.output_audio_transcript.done": self._agent_said,
            "error": self._model_error,
        }

    # - lifecycle -

    async def run(self) -> None:
        from_caller = asyncio.create_task(self._from_caller())
        from_model = asyncio.create_task(self._from_model())
        ended = asyncio.create_task(self._ended.wait())
        done, _ = await asyncio.wait(
            {from_caller, from_model, ended}, return_when=asyncio.FIRST_COMPLETED
        )
        ending = self._ending or self._how_it_ended(done, from_caller, from_model)
        for task in (from_caller, from_model, ended):
            task.cancel()
        await asyncio.gather(from_caller, from_model, ended, return_exceptions=True)
        await self._close(ending)

    def _how_it_ended(
        self, done: set[asyncio.Task[Any]], from_caller: asyncio.Task[Any], from_model: Any
    ) -> _Ending:
        if from_caller in done or self._hung_up:
            return _Ending("caller_hung_up", hang_up=False)
        if from_model in done and not from_model.cancelled() and from_model.exception():
            log.warning(
                "realtime_model_failed",
                call_id=self.media.call_id,
                error_type=type(from_model.exception()).__name__,
            )
        return _Ending("model_disconnected", hang_up=True)

    async def _close(self, ending: _Ending) -> None:
        """The model first (nothing more is said), then what the call did is stored and the
        call ended, then Twilio's socket: once it closes, the call's record is complete."""
        if self._digit_timer is not None:
            self._digit_timer.cancel()
        with contextlib.suppress(Exception):
            await self.model.close()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=TOOL_GRACE_SECONDS)
            for task in late:
                task.cancel()
        try:
            await phone.end_media_call(
                self.db, self.settings, self.media, ending.reason, ending.hang_up
            )
        except Exception as exc:  # the status callback still ends the call
            log.warning(
                "media_call_end_failed", call_id=self.media.call_id, error_type=type(exc).__name__
            )
        with contextlib.suppress(Exception):
            await self.caller.close()

    def _spawn(self, work: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        """Side work that failed (the model socket closed under it) is noted, not raised."""
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.info(
                "bridge_task_failed",
                call_id=self.media.call_id,
                error_type=type(task.exception()).__name__,
            )

    async def _send_to_model(self, messages: tuple[str, ...]) -> None:
        for data in messages:
            await self.model.send_encoded(data)

    def _tell_model(self, *events: dict[str, Any]) -> None:
        self._to_model.put(*[realtime.encode(event) for event in events])

    # - session set-up -

    def _greeting_instructions(self) -> str:
        """The agent speaks first, with the greeting already stored as the conversation's
        first message."""
        return f"Greet the caller with exactly these words, then wait: {self.media.greeting}"

    # - caller -> model -

    async def _from_caller(self) -> None:
        """Twilio's messages: handed over as they arrive where the socket can, else (and
        for what its reader leaves to the server's WebSocket) read here one by one."""
        self.caller.deliver_to(self._from_twilio)
        while not self._hung_up:
            raw = await self.caller.receive()
            if raw is None:
                return
            self._from_twilio(raw)
            await self._to_model.drained()

    def _from_twilio(self, raw: str) -> None:
        frame = TwilioFrames.parse(raw)
        kind = type(frame)
        if kind is CallerAudio:
            self._to_model.put(realtime.append_audio(frame.payload))  # type: ignore[union-attr]
        elif kind is MarkPlayed:
            self.playback.played(frame.name)  # type: ignore[union-attr]
            if self._ending is not None:
                self._check_goodbye_played()
        elif kind is CallerDigit:
            self._digit(frame.digit)  # type: ignore[union-attr]
        elif kind is HungUp:
            self._hung_up = True
            self._ended.set()

    def _digit(self, digit: str) -> None:
        """Keypad digits reach the model as text, a number at a time."""
        if self._digit_timer is not None:
            self._digit_timer.cancel()
            self._digit_timer = None
        if digit != "#":
            self._digits.append(digit)
        if digit == "#" or len(self._digits) >= 32:
            self._flush_digits()
        else:
            loop = asyncio.get_running_loop()
            self._digit_timer = loop.call_later(DTMF_PAUSE_SECONDS, self._flush_digits)

    def _flush_digits(self) -> None:
        self._digit_timer = None
        digits, self._digits = "".join(self._digits), []
        if digits:
            self._tell_model(
                realtime.user_text(f"The caller typed on the phone keypad: {digits}"),
                realtime.respond(),
            )
            self._spawn(self._store(phone.append_transcript, "user", f"DTMF: {digits}"))

    # - model -> caller -

    async def _from_model(self) -> None:
        """The model's events: handed over as they arrive where the socket can, else read
        here one by one."""
        self._tell_model(
            session_update_for(self.media), realtime.respond(self._greeting_instructions())
        )
        self.model.deliver_to(self._from_realtime)
        while True:
            self._from_realtime(await self.model.recv_raw())
            await self._to_caller.drained()

    def _from_realtime(self, raw: bytes) -> None:
        audio = realtime.audio_delta(raw)  # most events: read without a JSON parser
        if audio is not None:
            self._play(*audio)
            return
        try:
            event = realtime.parse_event(raw)
        except ValueError:
            return
        kind = event.get("type")
        if kind == "response.output_audio.delta":
            self._audio(event)
        elif isinstance(kind, str) and kind in self._model_handlers:
            self._model_handlers[kind](event)

    def _audio(self, event: dict[str, Any]) -> None:
        item_id, delta = event.get("item_id"), event.get("delta")
        if isinstance(item_id, str) and isinstance(delta, str):
            self._play(item_id, delta)

    def _play(self, item_id: str, delta: str) -> None:
        if not is_base64(delta):
            return  # (it goes into Twilio's JSON as it is: only base64 may)
        if item_id in self.playback.truncated:
            return  # the caller interrupted this answer: its late audio is not played
        mark = self.playback.sent(item_id, payload_bytes(delta))
        if mark is None and self._ending is not None:
            mark = self.playback.mark()  # the goodbye check waits for every byte's mark
        if mark is None:
            self._to_caller.put(self.twilio.media(delta))
        else:
            self._to_caller.put(self.twilio.media(delta), self.twilio.mark(mark))
        if self._ending is not None:
            self._check_goodbye_played()

    def _mark_sent_audio(self, event: dict[str, Any] | None = None) -> None:
        """A mark after the audio sent since the last one: at the end of an answer, and
        before the goodbye check."""
        mark = self.playback.mark()
        if mark is not None:
            self._to_caller.put(self.twilio.mark(mark))

    def _barge_in(self, event: dict[str, Any]) -> None:
        cut = self.playback.interrupt()
        if cut is None:
            return
        item_id, heard_ms = cut
        self._to_caller.put(self.twilio.clear())
        self._tell_model(realtime.truncate(item_id, heard_ms))

    def _response_created(self, event: dict[str, Any]) -> None:
        response = event.get("response")
        if self._first_response and isinstance(response, dict):
            self._greeting_response = response.get("id")
        self._first_response = False

    def _caller_said(self, event: dict[str, Any]) -> None:
        text = event.get("transcript")
        if isinstance(text, str) and text.strip():
            self._spawn(self._store(phone.append_transcript, "user", text.strip()))

    def _agent_said(self, event: dict[str, Any]) -> None:
        text = event.get("transcript")
        if event.get("response_id") == self._greeting_response:
            return  # stored when the call started
        if isinstance(text, str) and text.strip():
            self._spawn(self._store(phone.append_transcript, "assistant", text.strip()))

    def _model_error(self, event: dict[str, Any]) -> None:
        error = event.get("error") if isinstance(event.get("error"), dict) else {}
        log.warning(
            "realtime_model_error",
            call_id=self.media.call_id,
            code=error.get("code"),
            error_type=error.get("type"),
        )

    # - tools -

    def _function_call(self, event: dict[str, Any]) -> None:
        call_id, name = event.get("call_id"), event.get("name")
        if not isinstance(call_id, str) or not isinstance(name, str):
            return
        try:
            arguments = json.loads(event.get("arguments") or "{}")
        except ValueError:
            arguments = {}
        call = ToolCall(call_id, name, arguments if isinstance(arguments, dict) else {})
        task = self._spawn(self._run_tool(call))
        self._tool_runs.setdefault(str(event.get("response_id")), []).append(task)

    async def _run_tool(self, call: ToolCall) -> bool:
        """Run one call in the conversation's tenant scope, store it, answer the model.
        True when the call goes on."""
        async with self._store_lock:
            try:
                result, signals = await self._execute(call)
            except Exception as exc:  # the model must hear back, or it waits for ever
                log.warning(
                    "realtime_tool_failed",
                    call_id=self.media.call_id,
                    tool=call.name,
                    error_type=type(exc).__name__,
                )
                result, signals = {"ok": False, "error": "the tool failed"}, {}
        self._tell_model(realtime.function_output(call.id, _json(result)))
        return await self._follow(call, signals)

    async def _execute(self, call: ToolCall) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        media = self.media
        async with self.db.session(media.scope) as session:
            conversation = await conversations.get(session, media.conversation_id, for_update=True)
            ctx = ToolContext(session=session, conversation=conversation, agent=media.context)
            await conversations.append(
                session,
                conversation,
                MessageRole.ASSISTANT,
                None,
                tool_calls=[{"id": call.id, "name": call.name, "arguments": call.arguments}],
            )
            result = await run_tool(ctx, call, media.enabled_tools)
            await conversations.append(
                session, conversation, MessageRole.TOOL, _json(result), tool_call_id=call.id
            )
            await session.commit()
        return result, {kind: data for kind, data in ctx.signals}

    async def _follow(self, call: ToolCall, signals: dict[str, dict[str, Any]]) -> bool:
        """What a tool's signals mean for the call."""
        if "transfer" in signals and await phone.transfer_media_call(
            self.db, self.settings, self.media
        ):
            self._end("transferred", hang_up=False)
            return False
        if "end" in signals or call.name in ENDING_TOOLS:
            reason = str((signals.get("end") or {}).get("reason") or call.name)
            self._end(reason, hang_up=True)
            return False
        return True

    def _response_done(self, event: dict[str, Any]) -> None:
        response = event.get("response")
        response_id = response.get("id") if isinstance(response, dict) else None
        runs = self._tool_runs.pop(str(response_id), None)
        self._mark_sent_audio()  # (when the answer's audio did not say it was done)
        if runs:
            self._spawn(self._continue_after(runs))
        elif self._ending is not None:
            self._check_goodbye_played()

    async def _continue_after(self, runs: list[asyncio.Task[bool]]) -> None:
        """Once every tool of a response has answered, the model speaks again (one
        ``response.create`` for all of them), unless a tool ended the call."""
        results = await asyncio.gather(*runs, return_exceptions=True)
        if self._ending is None and all(r is True for r in results):
            self._tell_model(realtime.respond())

    # - ending -

    def _end(self, reason: str, *, hang_up: bool) -> None:
        if self._ending is None:
            self._ending = _Ending(reason, hang_up)
            loop = asyncio.get_running_loop()
            loop.call_later(GOODBYE_WAIT_SECONDS, self._ended.set)
            self._mark_sent_audio()
            self._check_goodbye_played()

    def _check_goodbye_played(self) -> None:
        """The call ends once the goodbye has been heard (every byte sent under a mark, every
        mark echoed)."""
        if not self.playback.playing:
            self._ended.set()

    async def _store(self, write: Callable[..., Awaitable[None]], role: str, text: str) -> None:
        async with self._store_lock:
            try:
                await write(self.db, self.media, role, text)
            except Exception as exc:  # a lost line must not end the call
                log.warning(
                    "transcript_store_failed",
                    call_id=self.media.call_id,
                    error_type=type(exc).__name__,
                )


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
