"""The media path's own Python per message, without sockets or load generators: the figure
that does not move with the host's network stack or the other processes on its cores.

A real ``kit.wsframes.FrameReader`` for each side of one call, handing every message to a
real ``Bridge`` (``_from_twilio`` and ``_from_realtime``), whose replies are framed as the
production sockets frame them (``text_frame``, masked towards the model) and written to
transports that only count bytes. Twilio's side: 20 ms ``media`` messages as Twilio sends
them; the model's side: ``response.output_audio.delta`` events of the same size (a mark goes
to Twilio after every 100 ms of them). Reports µs per message each way, best of ``--repeats``.

    .venv/bin/python bench/media_path.py [--messages 50000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import platform
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import demandly.app  # noqa: F401  (every model mapped, as in the server)
from demandly.channels.phone.bridge import Bridge
from demandly.channels.phone.media import _text
from demandly.kit.wsframes import FrameReader, MaskingKeys, text_frame

STREAM_SID = "MZ" + "a" * 32
PAYLOAD = base64.b64encode(b"\xff" * 160).decode()  # 20 ms of μ-law


class CountingTransport:
    def __init__(self) -> None:
        self.written = 0

    def set_protocol(self, protocol: object) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.written += len(data)


class Library:
    """What the reader would hand a frame it does not read: none here."""

    def data_received(self, data: bytes) -> None:
        raise AssertionError("a frame left to the library")


class Side:
    """One of the bridge's two connections, writing what it sends as frames (masked, as a
    client's are: the model's side) onto a transport that only counts."""

    def __init__(self, *, masked: bool) -> None:
        self.transport = CountingTransport()
        self.masks = MaskingKeys() if masked else None

    def deliver_to(self, handler: object) -> bool:
        return False

    def pause_reading(self, paused: bool) -> None:
        pass

    def write_now(self, messages: tuple[str, ...]) -> bool:
        masks = self.masks
        frames = [text_frame(m.encode(), masks.next() if masks else None) for m in messages]
        self.transport.write(b"".join(frames))
        return True

    async def send_all(self, messages: tuple[str, ...]) -> None:
        pass

    async def send_encoded(self, data: str) -> None:
        pass

    async def receive(self) -> str | None:
        return None

    async def close(self) -> None:
        pass


def twilio_frames(count: int) -> list[bytes]:
    keys = MaskingKeys()
    return [
        text_frame(
            (
                f'{{"event":"media","sequenceNumber":"{n}","media":{{"track":"inbound",'
                f'"chunk":"{n}","timestamp":"{n * 20}","payload":"{PAYLOAD}"}},'
                f'"streamSid":"{STREAM_SID}"}}'
            ).encode(),
            keys.next(),
        )
        for n in range(count)
    ]


def model_frames(count: int) -> list[bytes]:
    return [
        text_frame(
            (
                f'{{"type":"response.output_audio.delta","event_id":"event_{n}",'
                f'"response_id":"resp_1","item_id":"item_1","output_index":0,'
                f'"content_index":0,"delta":"{PAYLOAD}"}}'
            ).encode()
        )
        for n in range(count)
    ]


async def measure(messages: int, repeats: int) -> tuple[float, float]:
    caller, model = Side(masked=False), Side(masked=True)
    bridge = Bridge(None, None, SimpleNamespace(call_id="call"), caller, model, STREAM_SID)  # type: ignore[arg-type]
    from_twilio = FrameReader(CountingTransport(), Library(), masked=True)  # type: ignore[arg-type]
    from_twilio.deliver_to(lambda raw: bridge._from_twilio(_text(raw)))
    from_model = FrameReader(CountingTransport(), Library(), masked=False)  # type: ignore[arg-type]
    from_model.deliver_to(bridge._from_realtime)
    ups, downs = twilio_frames(messages), model_frames(messages)
    best_up = best_down = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        for frame in ups:
            from_twilio.data_received(frame)
        middle = time.perf_counter()
        for frame in downs:
            from_model.data_received(frame)
        ended = time.perf_counter()
        best_up = min(best_up, (middle - began) / messages)
        best_down = min(best_down, (ended - middle) / messages)
    assert caller.transport.written and model.transport.written
    return best_up * 1e6, best_down * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    up, down = asyncio.run(measure(args.messages, args.repeats))
    print(
        f"media path ({platform.node()}, {os.cpu_count()} CPUs, {datetime.now(UTC):%Y-%m-%d}): "
        f"Twilio -> model {up:.2f} µs per message, model -> Twilio {down:.2f} µs per message"
    )


if __name__ == "__main__":
    main()
