"""The bridge's arithmetic and wire formats, without sockets: what the caller heard when they
interrupted, how Twilio's messages are read and written, and the stream token."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from demandly.channels.phone.bridge import (
    Bridge,
    CallerAudio,
    CallerDigit,
    HungUp,
    MarkPlayed,
    Playback,
    Started,
    TwilioFrames,
    is_base64,
    payload_bytes,
)
from demandly.channels.phone.media import (
    TOKEN_TTL_SECONDS,
    _TwilioSocket,
    stream_token,
    token_valid,
)
from demandly.kit.crypto import Keyring, configure_keyring
from tests.conftest import TEST_SECRET_KEY


def chunk(ms: int) -> int:
    """Bytes of ``ms`` milliseconds of μ-law at 8 kHz."""
    return ms * 8


class Clock:
    """A clock the test moves (seconds)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms / 1000


def send(playback: Playback, item_id: str, chunks: int, ms: int = 20) -> list[str]:
    """``chunks`` chunks of ``ms`` each, sent at once; the marks due after them."""
    marks = [playback.sent(item_id, chunk(ms)) for _ in range(chunks)]
    return [name for name in marks if name is not None]


def test_a_mark_every_100_ms_of_an_answer_and_one_at_its_end() -> None:
    playback = Playback(Clock())
    due = [playback.sent("item_a", chunk(20)) for _ in range(12)]  # 240 ms
    assert [n for n, name in enumerate(due, 1) if name is not None] == [5, 10]
    assert playback.pending == {due[4]: ("item_a", chunk(100)), due[9]: ("item_a", chunk(200))}
    last = playback.mark()  # the end of the answer: the last 40 ms
    assert last is not None and playback.pending[last] == ("item_a", chunk(240))
    assert playback.mark() is None  # every byte has its mark


def test_uneven_chunks_count_bytes_not_chunks() -> None:
    playback = Playback(Clock())
    assert playback.sent("item_a", chunk(60)) is None
    assert playback.sent("item_a", chunk(50)) is not None  # 110 ms since the last mark
    assert playback.sent("item_a", chunk(150)) is not None


def test_truncate_between_two_marks_at_the_last_echo_plus_the_time_since() -> None:
    clock = Clock()
    playback = Playback(clock)
    first, second = send(playback, "item_a", 10)  # 200 ms sent at once
    clock.advance(100)
    playback.played(first)  # Twilio played the first 100 ms
    clock.advance(30)
    assert playback.sent_bytes == chunk(200)
    assert playback.interrupt() == ("item_a", 130)  # heard, not the 200 ms sent
    # The cleared mark echoes afterwards: it was never heard.
    playback.played(second)
    assert playback.played_ms == 100
    assert "item_a" in playback.truncated
    assert not playback.playing


def test_the_estimate_never_passes_what_was_sent() -> None:
    clock = Clock()
    playback = Playback(clock)
    (first,) = send(playback, "item_a", 6)  # 120 ms: a mark after 100 ms, 20 ms unmarked
    clock.advance(100)
    playback.played(first)
    clock.advance(400)  # the model is slow to send more: the caller hears silence
    assert playback.playing  # the last 20 ms have no mark yet
    assert playback.interrupt() == ("item_a", 120)


def test_audio_truncated_before_any_echo_counts_from_its_first_chunk() -> None:
    clock = Clock()
    playback = Playback(clock)
    send(playback, "item_a", 3)  # 60 ms, no mark due yet
    clock.advance(45)
    assert playback.interrupt() == ("item_a", 45)

    capped = Playback(clock)
    send(capped, "item_b", 3)
    clock.advance(500)
    assert capped.interrupt() == ("item_b", 60)


def test_after_twilio_ran_dry_the_next_chunk_plays_from_when_it_was_sent() -> None:
    clock = Clock()
    playback = Playback(clock)
    send(playback, "item_a", 1)
    mark = playback.mark()
    assert mark is not None
    clock.advance(20)
    playback.played(mark)  # all 20 ms heard
    clock.advance(980)  # a pause in the model's audio
    send(playback, "item_a", 1)
    clock.advance(5)
    assert playback.interrupt() == ("item_a", 25)  # not 20 + 985 capped at 40


def test_a_new_answer_starts_counting_from_zero_after_the_previous_one() -> None:
    clock = Clock()
    playback = Playback(clock)
    send(playback, "item_a", 2)
    playback.mark()  # 40 ms of item_a queued at Twilio
    clock.advance(10)
    send(playback, "item_b", 5)  # plays once item_a's last 30 ms have
    clock.advance(40)
    assert playback.interrupt() == ("item_b", 10)

    playback = Playback(clock)
    old = [*send(playback, "item_a", 2), playback.mark()]
    send(playback, "item_b", 5)
    clock.advance(40)
    for name in old:
        assert name is not None
        playback.played(name)  # the end of the previous answer: not part of item_b
    clock.advance(30)
    assert playback.interrupt() == ("item_b", 30)
    assert "item_a" not in playback.truncated


def test_playing_until_every_byte_sent_is_under_an_echoed_mark() -> None:
    clock = Clock()
    playback = Playback(clock)
    send(playback, "item_a", 3)
    assert playback.playing and not playback.pending  # audio with no mark yet
    mark = playback.mark()
    assert mark is not None
    clock.advance(10_000)  # the clock alone never says the goodbye was heard
    assert playback.playing
    playback.played(mark)
    assert not playback.playing
    assert playback.interrupt() is None
    assert Playback().interrupt() is None


class _Caller:
    """Twilio's side of a bridge: what it was sent, and what it says next. While
    ``taking`` is clear, writes wait (the socket's buffer is full)."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.inbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.taking = asyncio.Event()
        self.taking.set()
        self.paused: list[bool] = []

    async def receive(self) -> str | None:
        return await self.inbox.get()

    def deliver_to(self, handler: Callable[[str], None]) -> bool:
        return False

    def pause_reading(self, paused: bool) -> None:
        self.paused.append(paused)

    def write_now(self, messages: tuple[str, ...]) -> bool:
        if not self.taking.is_set():
            return False
        self.sent.extend(messages)
        return True

    async def send_all(self, messages: tuple[str, ...]) -> None:
        await self.taking.wait()
        self.sent.extend(messages)

    async def close(self) -> None:
        pass

    def events(self) -> list[str]:
        return [json.loads(m)["event"] for m in self.sent]

    def echo(self, nth_mark: int) -> None:
        """Twilio played the audio up to the ``nth_mark`` mark sent (from 0)."""
        marks = [json.loads(m)["mark"]["name"] for m in self.sent if '"mark"' in m]
        name = marks[nth_mark]
        self.inbox.put_nowait('{"event":"mark","streamSid":"MZ1","mark":{"name":"' + name + '"}}')


class _Model:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.paused: list[bool] = []

    def deliver_to(self, handler: Callable[[bytes], None]) -> bool:
        return False

    def pause_reading(self, paused: bool) -> None:
        self.paused.append(paused)

    def write_now(self, messages: tuple[str, ...]) -> bool:
        self.sent.extend(json.loads(m) for m in messages)
        return True

    async def send_encoded(self, data: str) -> None:
        self.sent.append(json.loads(data))


def bridge_of(caller: _Caller, model: _Model, clock: Clock) -> Bridge:
    media = SimpleNamespace(call_id="call_1")
    return Bridge(None, None, media, caller, model, "MZ1", clock=clock)  # type: ignore[arg-type]


AUDIO_20_MS = base64.b64encode(b"\x10" * chunk(20)).decode()


async def test_the_goodbye_hang_up_waits_for_the_mark_of_its_last_chunk() -> None:
    caller = _Caller()
    link = bridge_of(caller, _Model(), Clock())
    for _ in range(3):
        link._play("item_a", AUDIO_20_MS)  # 60 ms: no mark due yet
    assert caller.events() == ["media"] * 3
    link._end("end_conversation", hang_up=True)
    assert caller.events() == ["media"] * 3 + ["mark"]  # the goodbye's audio so far
    link._play("item_a", AUDIO_20_MS)  # after the end, every chunk has its mark
    assert caller.events() == ["media"] * 3 + ["mark", "media", "mark"]
    assert not link._ended.is_set()

    caller.echo(0)
    caller.inbox.put_nowait(None)
    await link._from_caller()
    assert not link._ended.is_set()  # the last chunk has not played yet
    caller.echo(1)
    caller.inbox.put_nowait(None)
    await link._from_caller()
    assert link._ended.is_set()


async def test_while_twilio_takes_no_writes_audio_waits_in_order_and_the_model_waits() -> None:
    caller, model = _Caller(), _Model()
    link = bridge_of(caller, model, Clock())
    link._play("item_a", AUDIO_20_MS)
    caller.taking.clear()  # Twilio's socket buffer is full
    for _ in range(5):
        link._play("item_a", AUDIO_20_MS)
    assert caller.events() == ["media"]
    assert model.paused == [True]  # no more of the model's audio is read meanwhile
    caller.taking.set()
    await link._to_caller.drained()
    assert caller.events() == ["media"] * 5 + ["mark", "media"]
    assert model.paused == [True, False]
    link._play("item_a", AUDIO_20_MS)  # written at once again
    assert caller.events() == ["media"] * 5 + ["mark"] + ["media"] * 2


async def test_a_barge_in_between_marks_truncates_at_the_clocks_estimate() -> None:
    clock, caller, model = Clock(), _Caller(), _Model()
    link = bridge_of(caller, model, clock)
    for _ in range(8):
        link._play("item_a", AUDIO_20_MS)  # 160 ms sent, a mark after 100 ms
    clock.advance(100)
    caller.echo(0)
    caller.inbox.put_nowait(None)
    await link._from_caller()
    clock.advance(35)
    link._barge_in({"type": "input_audio_buffer.speech_started"})
    assert caller.events() == ["media"] * 5 + ["mark"] + ["media"] * 3 + ["clear"]
    assert model.sent == [
        {
            "type": "conversation.item.truncate",
            "item_id": "item_a",
            "content_index": 0,
            "audio_end_ms": 135,
        }
    ]


@pytest.mark.parametrize("size", [0, 1, 2, 3, 159, 160, 161, 4000])
def test_payload_size_without_decoding(size: int) -> None:
    payload = base64.b64encode(b"\x7f" * size).decode()
    assert payload_bytes(payload) == size


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("//8=", True),
        ("QUJD", True),
        ("QQ==", True),
        (base64.b64encode(bytes(range(256))).decode(), True),
        ("", False),
        ("=", False),
        ("QQ===", False),
        ("Q=Q=", False),
        ("QU JD", False),
        ("QUJD\n", False),
        ('QU"JD', False),
        ("QUJDé", False),
        ("QU-_", False),  # the URL-safe alphabet is not Twilio's
    ],
)
def test_only_base64_audio_is_passed_on(text: str, valid: bool) -> None:
    assert is_base64(text) is valid


def test_twilio_messages_become_frames() -> None:
    parse = TwilioFrames.parse
    media = {"event": "media", "media": {"track": "inbound", "payload": "//8="}, "streamSid": "MZ1"}
    assert parse(json.dumps(media)) == CallerAudio("//8=")
    assert parse('{"event":"mark","mark":{"name":"7"},"streamSid":"MZ1"}') == MarkPlayed("7")
    assert parse('{"event":"dtmf","dtmf":{"track":"inbound_track","digit":"5"}}') == CallerDigit(
        "5"
    )
    assert parse('{"event":"stop","stop":{"callSid":"CA1"}}') == HungUp()
    start = {
        "event": "start",
        "start": {"streamSid": "MZ1", "callSid": "CA1", "customParameters": {"call_id": "c"}},
    }
    assert parse(json.dumps(start)) == Started("MZ1", "CA1", {"call_id": "c"})
    for junk in ("", "[]", "null", "{", '{"event":"media"}', '{"event":"dtmf","dtmf":{}}'):
        assert parse(junk) is None
    assert parse('{"event":"start","start":{"streamSid":"MZ\\"1"}}') is None


def test_frames_become_twilio_messages() -> None:
    frames = TwilioFrames("MZ1")
    assert json.loads(frames.media("//8=")) == {
        "streamSid": "MZ1",
        "event": "media",
        "media": {"payload": "//8="},
    }
    assert json.loads(frames.mark("3")) == {
        "streamSid": "MZ1",
        "event": "mark",
        "mark": {"name": "3"},
    }
    assert json.loads(frames.clear()) == {"streamSid": "MZ1", "event": "clear"}


def test_stream_token_is_bound_to_its_call_and_expires() -> None:
    configure_keyring(Keyring.parse(TEST_SECRET_KEY))
    token = stream_token("call_a", now=1_000_000)
    assert token_valid(token, "call_a", now=1_000_000)
    assert not token_valid(token, "call_b", now=1_000_000)
    assert not token_valid(token, "call_a", now=1_000_000 + TOKEN_TTL_SECONDS + 1)
    expires, signature = token.split(".")
    assert not token_valid(f"{int(expires) + 60}.{signature}", "call_a", now=1_000_000)
    for junk in ("", ".", "abc", "1.2", f"{expires}."):
        assert not token_valid(junk, "call_a", now=1_000_000)


class _AsgiWebSocket:
    """A route's WebSocket under a server other than uvicorn: only the ASGI methods."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def receive(self) -> dict[str, str]:
        return {"type": "websocket.receive", "text": '{"event":"connected"}'}

    async def send_text(self, message: str) -> None:
        self.sent.append(message)


async def test_under_another_server_a_chunk_and_its_mark_go_through_asgi_in_order() -> None:
    websocket = _AsgiWebSocket()
    caller = _TwilioSocket(websocket)  # type: ignore[arg-type]
    frames = TwilioFrames("MZ1")
    await caller.send_all((frames.media("//8="), frames.mark("1")))
    await caller.send_all((frames.clear(),))
    assert await caller.receive() == '{"event":"connected"}'
    assert [json.loads(m)["event"] for m in websocket.sent] == ["media", "mark", "clear"]
