"""The bridge's arithmetic and wire formats, without sockets: what the caller heard when they
interrupted, how Twilio's messages are read and written, and the stream token."""

from __future__ import annotations

import base64
import json

import pytest

from demandly.channels.phone.bridge import (
    CallerAudio,
    CallerDigit,
    HungUp,
    MarkPlayed,
    Playback,
    Started,
    TwilioFrames,
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


def test_truncate_at_what_was_heard_not_what_was_sent() -> None:
    playback = Playback()
    marks = [playback.sent("item_a", chunk(20)) for _ in range(5)]  # 100 ms sent
    for name in marks[:3]:
        playback.played(name)  # Twilio played 60 ms of it
    assert playback.sent_bytes == chunk(100)
    assert playback.interrupt() == ("item_a", 60)
    # The cleared marks echo afterwards: they were never heard.
    for name in marks[3:]:
        playback.played(name)
    assert playback.played_ms == 60
    assert "item_a" in playback.truncated


def test_uneven_chunks_count_bytes_not_chunks() -> None:
    playback = Playback()
    first = playback.sent("item_a", 1200)  # 150 ms
    playback.sent("item_a", 2000)  # 250 ms, still queued at Twilio
    playback.played(first)
    assert playback.interrupt() == ("item_a", 150)


def test_a_new_answer_starts_counting_from_zero() -> None:
    playback = Playback()
    old = playback.sent("item_a", chunk(40))
    new = playback.sent("item_b", chunk(20))
    playback.sent("item_b", chunk(20))
    playback.played(old)  # the end of the previous answer: not part of item_b
    playback.played(new)
    assert playback.interrupt() == ("item_b", 20)


def test_nothing_to_truncate_once_everything_was_heard() -> None:
    playback = Playback()
    for name in [playback.sent("item_a", chunk(20)) for _ in range(3)]:
        playback.played(name)
    assert not playback.playing
    assert playback.interrupt() is None
    assert Playback().interrupt() is None


def test_interrupted_before_any_mark_came_back() -> None:
    playback = Playback()
    playback.sent("item_a", chunk(20))
    assert playback.interrupt() == ("item_a", 0)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 159, 160, 161, 4000])
def test_payload_size_without_decoding(size: int) -> None:
    payload = base64.b64encode(b"\x7f" * size).decode()
    assert payload_bytes(payload) == size


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
    await caller.send(frames.clear())
    assert await caller.receive() == '{"event":"connected"}'
    assert [json.loads(m)["event"] for m in websocket.sent] == ["media", "mark", "clear"]
