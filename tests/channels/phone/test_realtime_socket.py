"""The realtime socket talks over the SDK's WebSocket directly (audio as frames written onto
its transport); should an SDK release hide it, the SDK's own send and receive carry the same
events."""

from __future__ import annotations

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from demandly.channels.phone.realtime import RealtimeSocket, append_audio


class _SdkConnectionWithoutSocket:
    """What an SDK connection offers publicly: raw sends and byte receives."""

    def __init__(self, incoming: list[bytes]) -> None:
        self.sent: list[str] = []
        self.incoming = incoming

    async def send_raw(self, data: str) -> None:
        self.sent.append(data)

    async def recv_bytes(self) -> bytes:
        return self.incoming.pop(0)

    async def close(self) -> None:
        return None


async def test_without_the_sdks_socket_events_go_through_its_public_methods() -> None:
    sdk = _SdkConnectionWithoutSocket([b'{"type":"session.updated"}'])
    socket = RealtimeSocket(sdk)
    await socket.send({"type": "response.create"})
    await socket.send_encoded('{"type":"input_audio_buffer.append","audio":"AA=="}')
    assert sdk.sent == [
        '{"type":"response.create"}',
        '{"type":"input_audio_buffer.append","audio":"AA=="}',
    ]
    assert await socket.recv() == {"type": "session.updated"}


async def test_audio_goes_straight_onto_the_socket_and_a_closed_socket_still_raises() -> None:
    received: list[str] = []

    async def handler(connection: ServerConnection) -> None:
        async for message in connection:
            received.append(str(message))

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        client = await connect(f"ws://127.0.0.1:{port}")
        socket = RealtimeSocket(_SdkConnectionWithSocket(client))
        appends = [append_audio(f"AAA{n}") for n in range(3)]
        for data in appends:
            await socket.send_encoded(data)
        await socket.send({"type": "response.create"})
        await client.close()
        with pytest.raises(ConnectionClosed):
            await socket.send_encoded(appends[0])  # not written into a closed connection
    assert received == [*appends, '{"type":"response.create"}']


class _SdkConnectionWithSocket(_SdkConnectionWithoutSocket):
    def __init__(self, connection: ClientConnection) -> None:
        super().__init__([])
        self._connection = connection
