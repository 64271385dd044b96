"""RFC 6455 WebSockets for the phone benchmark's load generators, with as little Python per
message as the protocol allows.

The generators (Twilio's side of every call, and the realtime model) must not steal the cores
the bridge is measured on, so they speak the protocol directly on ``asyncio.Protocol``s: the
opening handshake, unfragmented text frames (masked from client to server, with
``websockets``' C masking), ping/pong and the closing handshake. Nothing else is needed by
either peer of the bridge: neither side fragments messages or negotiates extensions.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import Callable
from typing import cast

from websockets.speedups import apply_mask

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
NORMAL_CLOSURE = (1000).to_bytes(2, "big")


def accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def frame_header(opcode: int, length: int, *, masked: bool) -> bytes:
    """The header of one final frame (without the masking key)."""
    mask_bit = 0x80 if masked else 0
    if length < 126:
        return bytes((0x80 | opcode, mask_bit | length))
    if length < 1 << 16:
        return bytes((0x80 | opcode, mask_bit | 126)) + length.to_bytes(2, "big")
    return bytes((0x80 | opcode, mask_bit | 127)) + length.to_bytes(8, "big")


def server_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    return frame_header(opcode, len(payload), masked=False) + payload


def client_frame(payload: bytes, mask: bytes, opcode: int = OP_TEXT) -> bytes:
    """A client's frame: masked with ``mask`` (4 random bytes), as every client frame must be."""
    return frame_header(opcode, len(payload), masked=True) + mask + apply_mask(payload, mask)


class FrameReader:
    """Frames out of a byte stream: ``feed`` returns the complete ``(opcode, payload)``s."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buffer = self.buffer
        buffer += data
        frames: list[tuple[int, bytes]] = []
        at, size = 0, len(buffer)
        while size - at >= 2:
            first, second = buffer[at], buffer[at + 1]
            if not first & 0x80:
                raise ValueError("fragmented message")
            length, start = second & 0x7F, at + 2
            if length == 126:
                if size - at < 4:
                    break
                length, start = int.from_bytes(buffer[at + 2 : at + 4], "big"), at + 4
            elif length == 127:
                if size - at < 10:
                    break
                length, start = int.from_bytes(buffer[at + 2 : at + 10], "big"), at + 10
            masked = second & 0x80
            end = start + (4 if masked else 0) + length
            if end > size:
                break
            if masked:
                payload = apply_mask(
                    bytes(buffer[start + 4 : end]), bytes(buffer[start : start + 4])
                )
            else:
                payload = bytes(buffer[start:end])
            frames.append((first & 0x0F, payload))
            at = end
        if at:
            del buffer[:at]
        return frames


class Peer(asyncio.Protocol):
    """One WebSocket after its handshake: ``on_text`` gets every text message; pings are
    answered; a close is answered and ends the connection. ``masked`` for the client side."""

    def __init__(self, masked: bool) -> None:
        self.masked = masked
        self.transport: asyncio.Transport | None = None
        self.reader = FrameReader()
        self.closed = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.on_text: Callable[[bytes], None] = lambda payload: None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(self.close_code)

    def frames_received(self, data: bytes) -> None:
        for opcode, payload in self.reader.feed(data):
            if opcode == OP_TEXT:
                self.on_text(payload)
            elif opcode == OP_PING:
                self.write(payload, OP_PONG)
            elif opcode == OP_CLOSE:
                self.close_code = int.from_bytes(payload[:2], "big") if payload else 1005
                self.write(payload[:2], OP_CLOSE)
                if self.transport is not None:
                    self.transport.close()

    def write(self, payload: bytes, opcode: int = OP_TEXT, mask: bytes | None = None) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.masked:
            transport.write(client_frame(payload, mask or os.urandom(4), opcode))
        else:
            transport.write(server_frame(payload, opcode))

    def write_frames(self, frames: list[bytes]) -> None:
        """Frames already built (``client_frame``/``server_frame``), in one write."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(b"".join(frames))

    def close(self) -> None:
        self.write(NORMAL_CLOSURE, OP_CLOSE)


class ClientPeer(Peer):
    """The client side: sends the opening handshake on connecting, then frames."""

    def __init__(self, host: str, path: str) -> None:
        super().__init__(masked=True)
        self.key = base64.b64encode(os.urandom(16))
        self.request = (
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            ).encode()
            + b"Sec-WebSocket-Key: "
            + self.key
            + b"\r\n\r\n"
        )
        self.opened = asyncio.get_running_loop().create_future()
        self._head = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's is not a subclass)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.opened.done():
            self.frames_received(data)
            return
        self._head += data
        head, found, rest = self._head.partition(b"\r\n\r\n")
        if not found:
            return
        if not head.startswith(b"HTTP/1.1 101") or accept_key(self.key) not in head:
            self.opened.set_exception(ConnectionError(head.split(b"\r\n", 1)[0].decode()))
            return
        self.opened.set_result(None)
        if rest:
            self.frames_received(rest)


async def connect(url: str, make: Callable[[str, str], ClientPeer]) -> ClientPeer:
    """Open ``ws://host:port/path`` with the peer ``make(host, path)`` returns."""
    assert url.startswith("ws://"), url
    address, _, path = url[5:].partition("/")
    host, _, port = address.partition(":")
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_connection(lambda: make(address, "/" + path), host, int(port))
    await peer.opened
    return peer


class ServerPeer(Peer):
    """The server side: answers the opening handshake, then ``on_open(self, path)``."""

    def __init__(self, on_open: Callable[[ServerPeer, str], None]) -> None:
        super().__init__(masked=False)
        self.on_open = on_open
        self._head: bytes | None = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's is not a subclass)

    def data_received(self, data: bytes) -> None:
        if self._head is None:
            self.frames_received(data)
            return
        self._head += data
        head, found, rest = self._head.partition(b"\r\n\r\n")
        if not found:
            return
        self._head = None
        lines = head.split(b"\r\n")
        headers = dict(line.split(b":", 1) for line in lines[1:] if b":" in line)
        key = {k.strip().lower(): v.strip() for k, v in headers.items()}.get(b"sec-websocket-key")
        assert self.transport is not None
        if key is None:
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            self.transport.close()
            return
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept_key(key) + b"\r\n\r\n"
        )
        self.on_open(self, lines[0].split(b" ")[1].decode())
        if rest:
            self.frames_received(rest)
