"""The realtime socket talks over the SDK's WebSocket directly; should an SDK release hide it,
the SDK's own send and receive carry the same events."""

from __future__ import annotations

from demandly.channels.phone.realtime import RealtimeSocket


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
