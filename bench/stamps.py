"""The phone benchmark's audio frames: 20 ms of μ-law (160 bytes) that carry their send time
(CLOCK_MONOTONIC ns, shared by the processes) and a sequence number in their first 12 bytes.

12 bytes are whole base64 groups, so a frame's base64 is the stamp's 16 characters followed
by the silence's, which never change: a frame costs one small encoding, not 160 bytes'.

And their pace: every call sends one frame per 20 ms tick, each call in one of ``phases``
slots spread evenly over the tick (real calls start at unrelated moments, so their ticks
are spread over the 20 ms; ``phases=1`` sends every call's frame at the same instant).
"""

from __future__ import annotations

import asyncio
import base64
import struct
import time
from collections.abc import Callable

FRAME_BYTES = 160
STAMP = struct.Struct("!qI")  # send time (ns), sequence
STAMP_CHARS = 16  # base64 of the 12 stamp bytes
SILENCE_B64 = base64.b64encode(b"\xff" * (FRAME_BYTES - STAMP.size))


def stamp(sequence: int) -> bytes:
    """A stamped frame's base64, sent now."""
    return base64.b64encode(STAMP.pack(time.monotonic_ns(), sequence)) + SILENCE_B64


def unstamp(head: bytes) -> tuple[int, int]:
    """(send time ns, sequence) of a frame from its first ``STAMP_CHARS`` base64 characters."""
    sent_ns, sequence = STAMP.unpack(base64.b64decode(head))
    return sent_ns, sequence


TICK_SECONDS = 0.02
# Frames of the calls of one slot go out together: 10 slots, one every 2 ms.
PHASES = 10


async def paced(phases: int, send_slot: Callable[[int], None], stop: Callable[[], bool]) -> None:
    """``send_slot(k)`` for slot k of ``phases`` evenly spread over every 20 ms tick, one
    timer for all calls, until ``stop()``."""
    started = time.monotonic()
    step = TICK_SECONDS / phases
    sent = 0
    while not stop():
        send_slot(sent % phases)
        sent += 1
        await asyncio.sleep(max(0.0, started + sent * step - time.monotonic()))
