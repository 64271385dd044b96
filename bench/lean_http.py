"""HTTP/1.1 for the chat benchmark's visitors, with as little Python per request as the protocol
allows (as ``lean_ws.py`` is for the phone benchmark's peers).

A visitor in a browser is not a Python HTTP client: the time ``httpx`` spends building a
request and parsing its answer (about 2 ms a round trip on this VM, against 0.6 ms for the same
``GET /healthz`` written and read on a socket) is neither the platform's overhead nor what a
visitor waits for, and it is spent on the cores the server is measured on. So each visitor
holds one keep-alive connection and speaks the protocol directly on asyncio streams: a request
written in one piece, the status line and headers read at once, and a body of known length or
in chunks (a stream of server-sent events whose length is not known when it starts).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit


class HttpError(Exception):
    """The server answered with an error status, or the connection broke."""


class Connection:
    """One keep-alive HTTP/1.1 connection; requests go one after the other."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self.reader = reader
        self.writer = writer
        self.host = host

    @classmethod
    async def open(cls, base_url: str) -> Connection:
        parts = urlsplit(base_url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer, parts.netloc)

    def close(self) -> None:
        self.writer.close()

    async def post_json(
        self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Any:
        """POST ``body`` as JSON; the answer's JSON (an error status raises)."""
        await self._send(path, body, headers)
        status, length, _ = await self._head()
        data = await self._body(length)
        if status >= 400:
            raise HttpError(f"{status}: {data[:200]!r}")
        return json.loads(data)

    async def post_events(
        self, path: str, body: dict[str, Any], headers: dict[str, str], first: bytes
    ) -> float | None:
        """POST ``body`` asking for server-sent events; returns when the body has ended, with
        the ``time.perf_counter()`` at which the bytes read first held ``first`` (the first
        answer's event), or None if they never did."""
        await self._send(path, body, {**headers, "Accept": "text/event-stream"})
        status, length, chunked = await self._head()
        if status >= 400:
            raise HttpError(f"{status}: {(await self._body(length))[:200]!r}")
        seen = bytearray()
        first_at = None
        async for piece in self._pieces(length, chunked):
            if first_at is None:
                seen += piece
                if first in seen:
                    first_at = time.perf_counter()
        return first_at

    async def _send(self, path: str, body: dict[str, Any], headers: dict[str, str] | None) -> None:
        payload = json.dumps(body).encode()
        lines = [
            f"POST {path} HTTP/1.1",
            f"Host: {self.host}",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            *(f"{name}: {value}" for name, value in (headers or {}).items()),
        ]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)

    async def _head(self) -> tuple[int, int | None, bool]:
        """Status, Content-Length (None if absent) and whether the body comes in chunks."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise HttpError("connection closed") from exc
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length: int | None = None
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        return status, length, chunked

    async def _body(self, length: int | None) -> bytes:
        return await self.reader.readexactly(length or 0)

    async def _pieces(self, length: int | None, chunked: bool) -> Any:
        """The body as it arrives: whole when its length is known, else chunk by chunk."""
        if not chunked:
            yield await self.reader.readexactly(length or 0)
            return
        while True:
            size = int((await self.reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return
            yield (await self.reader.readexactly(size + 2))[:-2]
