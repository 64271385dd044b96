"""A client speaking Twilio's Media Streams protocol (bidirectional, ``<Connect><Stream>``), as
Twilio's side of a call: ``connected``, ``start`` with the TwiML's custom parameters,
``media`` (20 ms μ-law frames, base64, with chunk and timestamp), ``dtmf``, ``mark`` echoes
and ``stop``; it records the ``media``, ``mark`` and ``clear`` messages the server sends.

Twilio echoes a mark once the audio sent before it has played, or when a ``clear`` dropped
it. With ``auto_marks`` the client plays instantly (echoes each mark on arrival); without,
the test decides with ``play(n)`` how much the caller has heard. Frames are not compressed
unless asked (``compression="deflate"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.channels.phone.realtime_stub import FRAME_BYTES, GUARD_SECONDS, SILENCE, audio

ACCOUNT_SID = "AC" + "0" * 32


class TwilioMediaClient:
    def __init__(
        self,
        url: str,
        *,
        parameters: dict[str, str],
        call_sid: str = "CA" + "1" * 32,
        stream_sid: str = "MZ" + "2" * 32,
        auto_marks: bool = True,
        compression: str | None = None,
    ) -> None:
        self.url = url
        self.parameters = parameters
        self.call_sid = call_sid
        self.stream_sid = stream_sid
        self.auto_marks = auto_marks
        # "deflate" offers permessage-deflate, which the server accepts: every frame is then
        # compressed, and the server's frame reader leaves the connection to uvicorn.
        self.compression = compression
        # Everything the server sent, in order; the marks not echoed yet.
        self.received: list[dict[str, Any]] = []
        self.unplayed: list[str] = []
        self.changed = asyncio.Condition()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self._socket: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._sequence = 0
        self._chunk = 0

    async def __aenter__(self) -> TwilioMediaClient:
        self._socket = await connect(self.url, compression=self.compression)
        await self._socket.send(
            json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        )
        await self._send(
            "start",
            {
                "accountSid": ACCOUNT_SID,
                "streamSid": self.stream_sid,
                "callSid": self.call_sid,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": self.parameters,
            },
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _send(self, event: str, body: dict[str, Any]) -> None:
        assert self._socket is not None
        self._sequence += 1
        message = {
            "event": event,
            "sequenceNumber": str(self._sequence),
            event: body,
            "streamSid": self.stream_sid,
        }
        await self._socket.send(json.dumps(message))

    async def _read(self) -> None:
        assert self._socket is not None
        try:
            async for raw in self._socket:
                message = json.loads(raw)
                async with self.changed:
                    self.received.append(message)
                    if message.get("event") == "mark":
                        self.unplayed.append(message["mark"]["name"])
                    elif message.get("event") == "clear":
                        # Cleared audio: Twilio echoes its marks at once.
                        marks, self.unplayed = self.unplayed, []
                        for name in marks:
                            await self._send("mark", {"name": name})
                    self.changed.notify_all()
                if self.auto_marks and message.get("event") == "mark":
                    await self.play()
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self._socket.close_code
            self.closed.set()
            async with self.changed:
                self.changed.notify_all()

    # - what the caller does -

    async def media(self, payload: str) -> None:
        self._chunk += 1
        await self._send(
            "media",
            {
                "track": "inbound",
                "chunk": str(self._chunk),
                "timestamp": str(self._chunk * 20),
                "payload": payload,
            },
        )

    async def silence(self, frames: int = 1) -> None:
        for _ in range(frames):
            await self.media(audio(SILENCE, FRAME_BYTES))

    async def speak(self, frames: int = 3) -> None:
        """An utterance: some frames of speech, then a frame of silence (the end of it)."""
        for n in range(frames):
            await self.media(audio(0x20 + n, FRAME_BYTES))
        await self.silence()

    async def dtmf(self, digits: str) -> None:
        for digit in digits:
            await self._send("dtmf", {"track": "inbound_track", "digit": digit})

    async def play(self, count: int | None = None) -> None:
        """The caller hears the next ``count`` chunks (all when None): echo their marks."""
        async with self.changed:
            take = len(self.unplayed) if count is None else count
            names, self.unplayed = self.unplayed[:take], self.unplayed[take:]
        for name in names:
            await self._send("mark", {"name": name})

    async def stop(self) -> None:
        """The caller hangs up."""
        await self._send("stop", {"accountSid": ACCOUNT_SID, "callSid": self.call_sid})

    # - what the test checks -

    def of_event(self, event: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m.get("event") == event]

    def audio(self) -> list[str]:
        return [m["media"]["payload"] for m in self.of_event("media")]

    async def ended(self) -> None:
        async with asyncio.timeout(GUARD_SECONDS):
            await self.closed.wait()

    async def wait_for(self, event: str, count: int = 1) -> list[dict[str, Any]]:
        async with asyncio.timeout(GUARD_SECONDS), self.changed:
            await self.changed.wait_for(
                lambda: len(self.of_event(event)) >= count or self.closed.is_set()
            )
        found = self.of_event(event)
        assert len(found) >= count, f"socket closed with {len(found)} {event} messages"
        return found
