"""The phone benchmark's model: a server speaking the OpenAI Realtime protocol in streaming
mode, as cheaply as it can (it shares the cores with the bridge being measured).

``python bench/realtime_stream.py`` prints its URL, then one JSON line a second (frames
received, frames lost, the latency samples of that second). Each session answers the
greeting's ``response.create`` with endless audio: one ``response.output_audio.delta`` of
20 ms μ-law every 20 ms, carrying the time it was sent (CLOCK_MONOTONIC, shared by the
processes) and a sequence number; every ``input_audio_buffer.append`` carries the caller's
send time and sequence, checked here for order and gaps.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import uvloop
from lean_ws import OP_TEXT, ServerPeer, frame_header
from stamps import PHASES, STAMP_CHARS, paced, stamp, unstamp

DELTA_PREFIX = (
    b'{"type":"response.output_audio.delta","response_id":"resp_1","item_id":"item_1",'
    b'"output_index":0,"content_index":0,"delta":"'
)
APPEND = b'"input_audio_buffer.append"'
AUDIO_KEY = b'"audio":"'


class Streamer:
    """Every speaking session gets one delta per 20 ms tick, in the slot (``stamps.paced``) of
    the order it started speaking in; one timer for all of them."""

    def __init__(self, phases: int) -> None:
        self.phases = phases
        self.received = 0
        self.lost = 0
        self.latencies_ns: list[int] = []
        self.started = 0
        # Per slot: the speaking sessions and the sequence of their next delta.
        self.speaking: list[dict[ServerPeer, int]] = [{} for _ in range(phases)]
        # A delta's length never changes: its frame header is built once.
        frame = DELTA_PREFIX + stamp(0) + b'"}'
        self.delta_head = frame_header(OP_TEXT, len(frame), masked=False) + DELTA_PREFIX

    def open(self, peer: ServerPeer, path: str) -> None:
        expected = [0]

        def on_text(payload: bytes) -> None:
            if APPEND in payload:
                at = payload.find(AUDIO_KEY) + len(AUDIO_KEY)
                sent_ns, sequence = unstamp(payload[at : at + STAMP_CHARS])
                self.latencies_ns.append(time.monotonic_ns() - sent_ns)
                self.received += 1
                self.lost += max(0, sequence - expected[0])
                expected[0] = sequence + 1
            elif b'"response.create"' in payload and not any(peer in s for s in self.speaking):
                self.speaking[self.started % self.phases][peer] = 0
                self.started += 1

        peer.on_text = on_text
        peer.closed.add_done_callback(lambda _: [slot.pop(peer, None) for slot in self.speaking])

    def send_slot(self, slot: int) -> None:
        head = self.delta_head
        speaking = self.speaking[slot]
        for peer, sequence in list(speaking.items()):
            speaking[peer] = sequence + 1
            transport = peer.transport
            if transport is not None and not transport.is_closing():
                transport.write(head + stamp(sequence) + b'"}')

    def report(self) -> str:
        samples, self.latencies_ns = self.latencies_ns, []
        return json.dumps({"received": self.received, "lost": self.lost, "latencies": samples})


async def main(port: int, phases: int) -> None:
    streamer = Streamer(phases)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: ServerPeer(streamer.open), "127.0.0.1", port)
    bound = next(iter(server.sockets)).getsockname()[1]
    print(f"ws://127.0.0.1:{bound}/v1", flush=True)
    ticker = asyncio.create_task(paced(phases, streamer.send_slot, lambda: False))
    while not ticker.done():
        await asyncio.sleep(1)
        print(streamer.report(), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--phases", type=int, default=PHASES)
    args = parser.parse_args()
    uvloop.run(main(args.port, args.phases))
