"""The phone benchmark's audio frames: 20 ms of μ-law (160 bytes) that carry their send time
(CLOCK_MONOTONIC ns, shared by the processes) and a sequence number in their first 12 bytes.

12 bytes are whole base64 groups, so a frame's base64 is the stamp's 16 characters followed
by the silence's, which never change: a frame costs one small encoding, not 160 bytes'.
"""

from __future__ import annotations

import base64
import struct
import time

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
