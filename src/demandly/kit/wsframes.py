"""WebSocket frames (RFC 6455) read and written without a WebSocket library's per-message
machinery, for connections that carry a steady stream of small text messages (a phone
call's audio: 50 messages a second each way).

A library such as ``websockets`` (under uvicorn or as a client) parses every frame with a
generator, queues each message, wakes the task that awaits it, and pauses and resumes the
socket's reading around its queue; for a 200-byte audio message that costs several times
what the application does with it. ``FrameReader`` sits in front of such a library on the
same transport: the complete, unfragmented, uncompressed text frames it reads go to the
application directly (a callback, or ``next()``), and everything else goes to the library,
which keeps doing what it owns:

- ping and pong frames are handed to the library one whole frame at a time (it answers pings
  and times its keepalive pongs as before);
- at the first frame of any other kind (close, binary, fragmented, compressed, oversized,
  wrongly masked) the reader steps aside for good: it hands the library that frame and
  everything after it, and from then on the library reads the connection as if the reader had
  never been there. The library only ever sees whole frames, so its parser is never left
  mid-frame.

Writes go the other way without the library as well: ``text_frame`` builds one final text
frame, written straight onto the transport by code that has checked the connection is open.
An unfragmented data frame changes no state the library keeps.
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections import deque
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.frames import apply_mask  # the C version when websockets has it
from websockets.protocol import State

from demandly.kit.logging import get_logger

log = get_logger(__name__)

OP_TEXT, OP_PING, OP_PONG = 0x1, 0x9, 0xA
FIN_TEXT = 0x80 | OP_TEXT  # FIN set, no RSV bits (so not compressed), text
# A larger message is the library's to read (and to refuse, under its own size limit).
MAX_MESSAGE_BYTES = 1 << 20
# An opening handshake's response head longer than this is left to websockets (to refuse).
MAX_HEAD_BYTES = 64 * 1024
# Messages read before anyone takes them: past this, reading pauses until they are taken.
MAX_QUEUED = 1000

_HEADER_SHORT = struct.Struct("!BB")
_HEADER_MEDIUM = struct.Struct("!BBH")
_HEADER_LONG = struct.Struct("!BBQ")


def text_frame(payload: bytes, mask: bytes | None = None) -> bytes:
    """One final text frame (RFC 6455 §5.2): masked with ``mask`` (4 random bytes) as a
    client must send it, unmasked as a server does."""
    length = len(payload)
    bit = 0x80 if mask is not None else 0
    if length < 126:
        header = _HEADER_SHORT.pack(FIN_TEXT, bit | length)
    elif length < 1 << 16:
        header = _HEADER_MEDIUM.pack(FIN_TEXT, bit | 126, length)
    else:
        header = _HEADER_LONG.pack(FIN_TEXT, bit | 127, length)
    if mask is None:
        return header + payload
    return header + mask + apply_mask(payload, mask)


class MaskingKeys:
    """Fresh random masking keys, drawn from the OS 1,024 at a time (one system call per
    ~20 s of a call's audio rather than one per frame)."""

    BATCH = 1024

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def next(self) -> bytes:
        if self._at >= len(self._pool):
            self._pool, self._at = os.urandom(4 * self.BATCH), 0
        key = self._pool[self._at : self._at + 4]
        self._at += 4
        return key


Handler = Callable[[bytes], None]


class FrameReader(asyncio.Protocol):
    """Reads a connection's text messages ahead of ``library``, the protocol that owns it
    (see the module). Installed on ``transport`` at once; ``masked`` says whether the peer
    masks its frames (a client does, a server does not); ``data`` are bytes already read
    from the connection after its opening handshake.

    Messages wait in order until a handler is given (``deliver_to``) or ``next()`` takes
    them; with a handler they are handed over synchronously, as they arrive."""

    def __init__(
        self,
        transport: asyncio.Transport,
        library: asyncio.Protocol,
        *,
        masked: bool,
        data: bytes = b"",
    ) -> None:
        self._transport = transport
        self._library = library
        self._mask_bit = 0x80 if masked else 0
        # What is read and not yet taken as whole frames: the read itself while nothing
        # waits from an earlier one.
        self._buffer: bytes | bytearray = bytearray()
        self._used = 0  # bytes of the buffer read as whole frames
        self._queue: deque[bytes] = deque()
        self._handler: Handler | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self.active = True
        transport.set_protocol(self)
        if data:
            self.data_received(data)

    # - what the application calls -

    async def next(self) -> bytes | None:
        """The next message; None once the reader has stepped aside (the library reads the
        rest) or, with a handler, as soon as it does."""
        while True:
            if self._queue and self._handler is None:
                message = self._queue.popleft()
                if self._paused and len(self._queue) < MAX_QUEUED // 2:
                    self._resume()
                return message
            if not self.active:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def deliver_to(self, handler: Handler) -> None:
        """From now on, hand every message to ``handler`` as it arrives (those waiting
        first)."""
        self._handler = handler
        while self._queue and self._handler is handler:
            self._call(handler, self._queue.popleft())
        if self._paused:
            self._resume()
        self._wake()

    def pause_reading(self) -> None:
        """Stop reading the socket (the application cannot take more for now)."""
        if not self._paused:
            self._paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._paused and len(self._queue) < MAX_QUEUED:
            self._resume()

    def step_aside(self) -> None:
        """Give the connection back to the library (with what the reader holds of the frames
        after the last one it read); messages already read and not taken stay for
        ``next()``."""
        if not self.active:
            return
        self.active = False
        self._handler = None
        self._transport.set_protocol(self._library)
        rest = bytes(self._buffer[self._used :])
        self._buffer, self._used = bytearray(), 0
        if self._paused:
            self._resume()
        self._wake()
        if rest:
            self._library.data_received(rest)  # type: ignore[attr-defined]

    # - asyncio.Protocol -

    def data_received(self, data: bytes) -> None:
        if not self.active:  # (the transport had data in flight when the reader stepped aside)
            self._library.data_received(data)  # type: ignore[attr-defined]
            return
        if self._buffer:
            self._buffer += data
        else:  # read in place: a media stream's read is mostly one whole frame, no rest
            self._buffer = data
        self._read_frames()
        if self.active:
            self._keep_unread()

    def eof_received(self) -> bool | None:
        self.step_aside()
        return self._library.eof_received()  # type: ignore[attr-defined,no-any-return]

    def connection_lost(self, exc: Exception | None) -> None:
        self.step_aside()
        self._library.connection_lost(exc)

    def pause_writing(self) -> None:
        self._library.pause_writing()  # type: ignore[attr-defined]

    def resume_writing(self) -> None:
        self._library.resume_writing()  # type: ignore[attr-defined]

    # - reading -

    def _keep_unread(self) -> None:
        """Keep what follows the last whole frame read, for the next read to complete."""
        buffer, used = self._buffer, self._used
        self._used = 0
        if used == len(buffer):
            self._buffer = b""
        elif isinstance(buffer, bytearray):
            del buffer[:used]
        else:
            self._buffer = bytearray(buffer[used:])

    def _read_frames(self) -> None:
        """Take every complete frame from the buffer, from ``_used`` on. A handler may step
        the reader aside: the frames after its message are then the library's."""
        buffer = self._buffer
        size = len(buffer)
        while self.active and size - self._used >= 2:
            at = self._used
            first, second = buffer[at], buffer[at + 1]
            length, start = second & 0x7F, at + 2
            if length == 126:
                if size - at < 4:
                    return
                length, start = int.from_bytes(buffer[at + 2 : at + 4]), at + 4
            elif length == 127:
                if size - at < 10:
                    return
                length, start = int.from_bytes(buffer[at + 2 : at + 10]), at + 10
            masked = second & 0x80
            if masked:
                start += 4
            if (
                masked != self._mask_bit
                or length > MAX_MESSAGE_BYTES
                or (first != FIN_TEXT and first not in (0x80 | OP_PING, 0x80 | OP_PONG))
            ):
                self.step_aside()  # this frame and all after it are the library's
                return
            end = start + length
            if end > size:
                return
            self._used = end
            if first == FIN_TEXT:
                payload = bytes(buffer[start:end])
                if masked:
                    payload = apply_mask(payload, bytes(buffer[start - 4 : start]))
                self._message(payload)
            else:
                self._library.data_received(bytes(buffer[at:end]))  # type: ignore[attr-defined]

    def _message(self, payload: bytes) -> None:
        handler = self._handler
        if handler is not None:
            self._call(handler, payload)
            return
        self._queue.append(payload)
        if len(self._queue) >= MAX_QUEUED:
            self.pause_reading()
        self._wake()

    def _call(self, handler: Handler, payload: bytes) -> None:
        try:
            handler(payload)
        except Exception as exc:  # the connection outlives one message the handler choked on
            log.warning("websocket_handler_failed", error_type=type(exc).__name__)

    def _resume(self) -> None:
        self._paused = False
        if not self._transport.is_closing():
            self._transport.resume_reading()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class FastClientConnection(ClientConnection):
    """``websockets``' client connection with a ``FrameReader`` in front of it from the
    first byte after the opening handshake (pass it as ``create_connection``). The
    handshake's response is read by ``websockets`` alone: bytes after its head are kept
    back from it, so that it never sees part of a frame."""

    frame_reader: FrameReader | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head = bytearray()

    def data_received(self, data: bytes) -> None:
        if self.protocol.state is not State.CONNECTING:
            super().data_received(data)
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > MAX_HEAD_BYTES:  # websockets refuses such a response
                head, self._head = bytes(self._head), bytearray()
                super().data_received(head)
            return
        head, rest = bytes(self._head[: end + 4]), bytes(self._head[end + 4 :])
        self._head = bytearray()
        super().data_received(head)
        if self.protocol.state is State.OPEN and not self.protocol.extensions:
            self.frame_reader = FrameReader(self.transport, self, masked=False, data=rest)
        elif rest:
            super().data_received(rest)
