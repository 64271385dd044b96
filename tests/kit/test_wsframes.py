"""WebSocket frames read ahead of ``websockets`` and written without it (``kit.wsframes``):
against a real ``websockets`` server, messages arrive whole and in order whichever way they
are read, and whatever only the library may read (pings, fragments, the closing handshake,
compression) is still read by it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosedOK, InvalidMessage
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from demandly.kit.wsframes import (
    MAX_QUEUED,
    FastClientConnection,
    FrameReader,
    MaskingKeys,
    text_frame,
)


@pytest.mark.parametrize("size", [0, 125, 126, 65_535, 65_536])
@pytest.mark.parametrize("mask", [None, b"\x01\x02\x03\x04"])
def test_frames_written_directly_read_as_websockets_reads_them(
    size: int, mask: bytes | None
) -> None:
    payload = b"x" * size
    reader = StreamReader()
    reader.feed_data(text_frame(payload, mask))
    parser = Frame.parse(reader.read_exact, mask=mask is not None)
    with pytest.raises(StopIteration) as parsed:
        next(parser)
    frame = parsed.value.value
    assert (frame.opcode, frame.fin, bytes(frame.data)) == (Opcode.TEXT, True, payload)


def test_masking_keys_are_fresh_four_bytes() -> None:
    keys = MaskingKeys()
    drawn = [keys.next() for _ in range(MaskingKeys.BATCH + 5)]
    assert all(len(key) == 4 for key in drawn)
    assert len(set(drawn)) > len(drawn) * 0.99


Script = Callable[[ServerConnection], Awaitable[None]]


@contextlib.asynccontextmanager
async def _open(script: Script, **options: object) -> AsyncIterator[ClientConnection]:
    """A server running ``script`` for its one connection, and a client connected to it."""

    async def handler(connection: ServerConnection) -> None:
        await script(connection)
        await connection.wait_closed()

    async with serve(handler, "127.0.0.1", 0, **options) as server:  # type: ignore[arg-type]
        port = next(iter(server.sockets)).getsockname()[1]
        async with connect(
            f"ws://127.0.0.1:{port}", create_connection=FastClientConnection, compression=None
        ) as client:
            yield client


async def test_messages_of_every_length_arrive_whole_and_in_order() -> None:
    sizes = [0, 1, 125, 126, 65_535, 65_536, 200_000]

    async def script(connection: ServerConnection) -> None:
        for size in sizes:
            await connection.send(str(size % 10) * size)

    async with _open(script) as client:
        reader = client.frame_reader
        assert reader is not None and reader.active
        for size in sizes:
            assert await reader.next() == str(size % 10).encode() * size
        assert reader.active


async def test_a_handler_gets_the_waiting_messages_first_then_each_as_it_arrives() -> None:
    go_on = asyncio.Event()

    async def script(connection: ServerConnection) -> None:
        await connection.send("one")
        await connection.send("two")
        await go_on.wait()
        for word in ("three", "four"):
            await connection.send(word)

    async with _open(script) as client:
        reader = client.frame_reader
        assert reader is not None
        # The pong comes after both messages: once it is in, both wait in the reader.
        await (await client.ping())
        seen: list[bytes] = []
        all_in = asyncio.Event()

        def handler(message: bytes) -> None:
            seen.append(message)
            if len(seen) == 4:
                all_in.set()

        reader.deliver_to(handler)
        assert seen == [b"one", b"two"]
        go_on.set()
        await all_in.wait()
        assert seen == [b"one", b"two", b"three", b"four"]


async def test_pings_are_answered_by_websockets_while_the_reader_reads() -> None:
    answered: list[float] = []

    async def script(connection: ServerConnection) -> None:
        await connection.send("before")
        answered.append(await (await connection.ping(b"are you there")))
        await connection.send("after")

    async with _open(script, ping_interval=None) as client:
        reader = client.frame_reader
        assert reader is not None
        assert await reader.next() == b"before"
        assert await reader.next() == b"after"
        assert len(answered) == 1 and reader.active


async def test_a_fragmented_message_and_all_after_it_are_read_by_websockets() -> None:
    async def script(connection: ServerConnection) -> None:
        await connection.send("whole")
        await connection.send(["frag", "ment", "ed"])
        await connection.send("later")

    async with _open(script) as client:
        reader = client.frame_reader
        assert reader is not None
        assert await reader.next() == b"whole"
        assert await reader.next() is None  # stepped aside at the first fragment
        assert not reader.active
        assert await client.recv() == "fragmented"
        assert await client.recv() == "later"


async def test_the_closing_handshake_is_websockets_own() -> None:
    async def script(connection: ServerConnection) -> None:
        await connection.send("bye")
        await connection.close(1000, "done")

    async with _open(script) as client:
        reader = client.frame_reader
        assert reader is not None
        assert await reader.next() == b"bye"
        assert await reader.next() is None
        with pytest.raises(ConnectionClosedOK):
            await client.recv()
        assert client.close_code == 1000 and client.close_reason == "done"


async def test_with_compression_negotiated_websockets_reads_everything() -> None:
    async def script(connection: ServerConnection) -> None:
        await connection.send("compressed " * 20)

    async def handler(connection: ServerConnection) -> None:
        await script(connection)
        await connection.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with connect(
            f"ws://127.0.0.1:{port}", create_connection=FastClientConnection
        ) as client:
            assert client.frame_reader is None
            assert await client.recv() == "compressed " * 20


class _Transport:
    """What a reader needs of a transport, recording reads paused and resumed."""

    def __init__(self) -> None:
        self.protocol: asyncio.BaseProtocol | None = None
        self.reading = True

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return False


class _Library(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = b""

    def data_received(self, data: bytes) -> None:
        self.data += data


def _reader(masked: bool = True) -> tuple[FrameReader, _Transport, _Library]:
    transport, library = _Transport(), _Library()
    reader = FrameReader(transport, library, masked=masked)  # type: ignore[arg-type]
    return reader, transport, library


async def test_frames_split_anywhere_are_read_once_whole() -> None:
    reader, transport, library = _reader()
    keys = MaskingKeys()
    stream = b"".join(text_frame(f"message {n}".encode() * n, keys.next()) for n in range(1, 40))
    seen: list[bytes] = []
    reader.deliver_to(seen.append)
    for at in range(0, len(stream), 7):
        reader.data_received(stream[at : at + 7])
    assert seen == [f"message {n}".encode() * n for n in range(1, 40)]
    assert transport.protocol is reader and library.data == b""


@pytest.mark.parametrize("masked", [True, False])
async def test_a_read_of_exactly_one_frame_is_read_as_any_other(masked: bool) -> None:
    """One frame per read is what a media stream sends; frames of 7-, 16- and 64-bit
    lengths, each alone in a read, then one split over two reads and two in one read."""
    reader, transport, library = _reader(masked=masked)
    keys = MaskingKeys()

    def frame(payload: bytes) -> bytes:
        return text_frame(payload, keys.next() if masked else None)

    payloads = [b"", b"a" * 125, b"b" * 126, b"c" * 300, b"d" * 65_535, b"e" * 65_536]
    seen: list[bytes] = []
    reader.deliver_to(seen.append)
    for payload in payloads:
        reader.data_received(frame(payload))
    split = frame(b"split")
    reader.data_received(split[:3])
    reader.data_received(split[3:])
    reader.data_received(frame(b"first") + frame(b"second"))
    assert seen == [*payloads, b"split", b"first", b"second"]
    assert reader.active and transport.protocol is reader and library.data == b""


async def test_an_unmasked_frame_from_a_client_is_left_to_the_library() -> None:
    reader, transport, library = _reader(masked=True)
    unmasked = text_frame(b"no mask")
    reader.data_received(unmasked + text_frame(b"next", b"abcd"))
    assert not reader.active and transport.protocol is library
    assert library.data == unmasked + text_frame(b"next", b"abcd")


async def test_an_unmasked_frame_alone_in_a_read_is_left_to_the_library() -> None:
    reader, transport, library = _reader(masked=True)
    reader.data_received(text_frame(b"no mask"))
    reader.data_received(text_frame(b"next", b"abcd"))
    assert not reader.active and transport.protocol is library
    assert library.data == text_frame(b"no mask") + text_frame(b"next", b"abcd")


async def test_a_handler_that_steps_aside_leaves_the_rest_to_the_library() -> None:
    reader, transport, library = _reader(masked=False)
    seen: list[bytes] = []

    def handler(message: bytes) -> None:
        seen.append(message)
        reader.step_aside()

    reader.deliver_to(handler)
    reader.data_received(text_frame(b"first") + text_frame(b"second"))
    assert seen == [b"first"]
    assert library.data == text_frame(b"second") and transport.protocol is library


async def test_reading_pauses_while_too_many_messages_wait() -> None:
    reader, transport, _ = _reader(masked=False)
    reader.data_received(text_frame(b"m") * MAX_QUEUED)
    assert not transport.reading
    for _ in range(MAX_QUEUED // 2 + 1):
        assert await reader.next() == b"m"
    assert transport.reading


async def test_a_response_head_that_never_ends_is_refused_not_waited_for() -> None:
    async def endless_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nX-Filler: ")
        for _ in range(20):
            writer.write(b"a" * 8192)
            await writer.drain()
        await reader.read()  # the client gives up on the response: it closes its side
        writer.close()

    server = await asyncio.start_server(endless_head, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        with pytest.raises(InvalidMessage):
            await connect(
                f"ws://127.0.0.1:{port}", create_connection=FastClientConnection, open_timeout=5
            )
