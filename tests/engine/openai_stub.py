"""A scriptable OpenAI-compatible chat-completions server over real HTTP, for tests and benchmarks.

It speaks the published wire format: ``POST /v1/chat/completions`` answers with
``data: {chat.completion.chunk}`` SSE events and a final ``data: [DONE]`` when the request has
``"stream": true`` (a usage chunk with ``choices: []`` first when ``stream_options.include_usage``
is set), or with one plain ``chat.completion`` JSON object otherwise. ``GET /v1/models`` lists
one model.

Usage in tests (the ``openai_stub`` fixture in tests/engine/conftest.py)::

    openai_stub.script_text("Hal", "lo!")                       # next request: streamed text
    openai_stub.script(error(500), text("Hallo"))               # a 500, then a text reply
    openai_stub.script_tool_calls(StubToolCall("save", ('{"a"', ': 1}')))
    ... provider = OpenAICompatibleProvider(openai_stub.base_url, "sk-test", "stub-model")
    openai_stub.requests[-1].body["messages"]                   # what the client sent

Each request takes the next scripted reply; when none is left the default reply (a short text)
answers. ``zero_latency()`` makes the default an instant reply and stops recording, for
benchmarks. Standalone (e.g. for bench/chat.py in another process)::

    python -m tests.engine.openai_stub --port 8099      # prints the base URL, zero-latency
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

DEFAULT_TEXT = ("Gern ", "helfe ", "ich ", "Ihnen ", "weiter.")


@dataclass(frozen=True)
class StubToolCall:
    """A tool call the stub streams: id and name in the first piece, then one piece per
    entry of ``argument_chunks`` (concatenated they should form the JSON arguments)."""

    name: str
    argument_chunks: tuple[str, ...] = ("{}",)
    id: str | None = None


@dataclass(frozen=True)
class ScriptedReply:
    text_chunks: tuple[str, ...] = ()
    tool_calls: tuple[StubToolCall, ...] = ()
    interleave_tool_calls: bool = False  # round-robin the argument pieces of parallel calls
    finish_reason: str | None = None  # default: "tool_calls" with tool calls, else "stop"
    usage: tuple[int, int] | None = None  # (prompt, completion); default: estimated
    status: int = 200
    error_message: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0  # before the response status and headers
    # after the headers and the role-only first chunk, before the first content (the model
    # "thinking")
    first_token_delay: float = 0.0
    chunk_delay: float = 0.0  # between SSE events after the first content
    drop_after: int | None = None  # abort the connection after this many SSE events
    raw_body: bytes | None = None  # sent verbatim as the (streamed) response body


def text(*chunks: str, **options: Any) -> ScriptedReply:
    """A streamed text answer, one SSE event per chunk."""
    return ScriptedReply(text_chunks=chunks, **options)


def tool_calls(
    *calls: StubToolCall, text_chunks: tuple[str, ...] = (), **options: Any
) -> ScriptedReply:
    """One or more (parallel) tool calls, optionally after some text."""
    return ScriptedReply(text_chunks=text_chunks, tool_calls=calls, **options)


def error(
    status: int, message: str | None = None, *, retry_after: float | None = None
) -> ScriptedReply:
    """An HTTP error with the OpenAI error body (``{"error": {...}}``)."""
    headers = (("retry-after", f"{retry_after:g}"),) if retry_after is not None else ()
    return ScriptedReply(
        status=status, error_message=message or f"stub error {status}", headers=headers
    )


def raw(body: bytes, *, status: int = 200) -> ScriptedReply:
    """A response body sent as is (for broken or unusual servers)."""
    return ScriptedReply(raw_body=body, status=status)


def hang(seconds: float, *, after_headers: bool = False) -> ScriptedReply:
    """A reply that keeps the client waiting ``seconds`` before the headers (or, with
    ``after_headers``, after the headers and the role-only first chunk) and then answers with
    a short text."""
    if after_headers:
        return text(*DEFAULT_TEXT, first_token_delay=seconds)
    return text(*DEFAULT_TEXT, delay=seconds)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names; the Authorization value is redacted
    body: Any  # parsed JSON (None if the body was not JSON)
    authorization_sha256: str | None  # of the full Authorization header value

    def bearer_token_is(self, token: str) -> bool:
        expected = hashlib.sha256(f"Bearer {token}".encode()).hexdigest()
        return self.authorization_sha256 == expected

    @property
    def streamed(self) -> bool:
        return isinstance(self.body, dict) and bool(self.body.get("stream"))


@dataclass
class _State:
    queue: deque[ScriptedReply] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    default: ScriptedReply = field(default_factory=lambda: text(*DEFAULT_TEXT))
    record: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)


class OpenAIStub:
    """The server runs uvicorn in a background thread; every method is thread-safe."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._state = _State()
        self._stopping = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        self.base_url = f"http://{self.host}:{self.port}/v1"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = _build_app(self._state, self._stopping)

    # -- scripting ---------------------------------------------------------------------------

    def script(self, *replies: ScriptedReply) -> None:
        """Queue replies; each request takes the next one."""
        with self._state.lock:
            self._state.queue.extend(replies)

    def script_text(self, *chunks: str, **options: Any) -> None:
        self.script(text(*chunks, **options))

    def script_tool_calls(self, *calls: StubToolCall, **options: Any) -> None:
        self.script(tool_calls(*calls, **options))

    def script_error(self, status: int, message: str | None = None, **options: Any) -> None:
        self.script(error(status, message, **options))

    def script_hang(self, seconds: float, *, after_headers: bool = False) -> None:
        self.script(hang(seconds, after_headers=after_headers))

    def set_default(self, reply: ScriptedReply) -> None:
        """The reply used when the queue is empty."""
        with self._state.lock:
            self._state.default = reply

    def zero_latency(self, *chunks: str, record: bool = False) -> None:
        """Benchmark mode: every unscripted request gets an instant streamed reply."""
        with self._state.lock:
            self._state.default = text(*(chunks or DEFAULT_TEXT))
            self._state.record = record

    def reset(self) -> None:
        with self._state.lock:
            self._state.queue.clear()
            self._state.requests.clear()
            self._state.default = text(*DEFAULT_TEXT)
            self._state.record = True

    @property
    def requests(self) -> list[RecordedRequest]:
        """Chat-completion requests received so far (a copy), oldest first."""
        with self._state.lock:
            return list(self._state.requests)

    @property
    def pending(self) -> int:
        """Scripted replies not yet used."""
        with self._state.lock:
            return len(self._state.queue)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> OpenAIStub:
        config = uvicorn.Config(
            self.app,
            log_level="critical",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the OpenAI stub server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> OpenAIStub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def running_stub() -> Iterator[OpenAIStub]:
    """A started stub, stopped afterwards: ``yield from running_stub()`` in a fixture."""
    stub = OpenAIStub().start()
    try:
        yield stub
    finally:
        stub.stop()


# -- the HTTP application ------------------------------------------------------------------------

_ids = itertools.count(1)
_sse_type = "text/event-stream"


def _build_app(state: _State, stopping: threading.Event) -> Starlette:
    async def chat_completions(request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with state.lock:
            reply = state.queue.popleft() if state.queue else state.default
            if state.record:
                state.requests.append(_record(request, body))
        if not isinstance(body, dict):
            return _error_response(400, "request body must be a JSON object")
        if reply.delay:
            await _sleep(reply.delay, stopping)
        if reply.raw_body is not None:
            return Response(reply.raw_body, status_code=reply.status, media_type=_sse_type)
        if reply.status != 200:
            return _error_response(reply.status, reply.error_message, dict(reply.headers))
        model = str(body.get("model") or "stub-model")
        if not body.get("stream"):
            return JSONResponse(_completion(reply, model, body), headers=dict(reply.headers))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events = _events(reply, model, body, include_usage)
        headers = {"cache-control": "no-cache", **dict(reply.headers)}
        if reply.first_token_delay or reply.chunk_delay or reply.drop_after is not None:
            return StreamingResponse(
                _paced(events, reply, stopping), media_type=_sse_type, headers=headers
            )
        # Instant replies go out in one write: same SSE events, far less server CPU (benchmarks).
        return Response(b"".join(events), media_type=_sse_type, headers=headers)

    async def models(request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": "stub-model", "object": "model", "created": 0, "owned_by": "stub"}],
            }
        )

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )


def _record(request: Request, body: Any) -> RecordedRequest:
    headers = {name.lower(): value for name, value in request.headers.items()}
    authorization = headers.get("authorization")
    if authorization is not None:
        headers["authorization"] = "[redacted]"
    return RecordedRequest(
        method=request.method,
        path=request.url.path,
        headers=headers,
        body=body,
        authorization_sha256=(
            hashlib.sha256(authorization.encode()).hexdigest() if authorization else None
        ),
    )


async def _sleep(seconds: float, stopping: threading.Event) -> None:
    """Sleep, but wake up early when the server shuts down (so hanging replies never block
    the end of a test run)."""
    end = time.monotonic() + seconds
    while not stopping.is_set():
        remaining = end - time.monotonic()
        if remaining <= 0:
            return
        await asyncio.sleep(min(remaining, 0.05))


def _error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    kind = {
        400: "invalid_request_error",
        401: "invalid_request_error",
        403: "permission_denied",
        404: "not_found_error",
        429: "rate_limit_exceeded",
    }.get(status, "server_error")
    code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
    payload = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(payload, status_code=status, headers=headers)


def _finish_reason(reply: ScriptedReply) -> str:
    return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")


def _usage(reply: ScriptedReply, body: dict[str, Any]) -> dict[str, int]:
    if reply.usage is not None:
        prompt, completion = reply.usage
    else:
        characters = sum(len(str(m.get("content") or "")) for m in body.get("messages") or ())
        prompt = characters // 4 + 1
        completion = len(reply.text_chunks) + sum(
            len(call.argument_chunks) for call in reply.tool_calls
        )
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _call_ids(reply: ScriptedReply) -> list[str]:
    return [call.id or f"call_stub{next(_ids):06d}" for call in reply.tool_calls]


def _completion(reply: ScriptedReply, model: str, body: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(reply.text_chunks) if reply.text_chunks else None,
        "refusal": None,
    }
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": "".join(call.argument_chunks)},
            }
            for call_id, call in zip(_call_ids(reply), reply.tool_calls, strict=True)
        ]
    return {
        "id": f"chatcmpl-stub{next(_ids):08d}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _finish_reason(reply),
            }
        ],
        "usage": _usage(reply, body),
    }


def _deltas(reply: ScriptedReply) -> Iterator[tuple[dict[str, Any], str | None]]:
    """(delta, finish_reason) per choice chunk, in wire order."""
    yield {"role": "assistant", "content": ""}, None
    for piece in reply.text_chunks:
        yield {"content": piece}, None
    ids = _call_ids(reply)
    heads = [
        {
            "index": index,
            "id": call_id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        for index, (call_id, call) in enumerate(zip(ids, reply.tool_calls, strict=True))
    ]
    pieces = [
        [{"index": index, "function": {"arguments": part}} for part in call.argument_chunks]
        for index, call in enumerate(reply.tool_calls)
    ]
    if reply.interleave_tool_calls:
        for head in heads:
            yield {"tool_calls": [head]}, None
        for group in itertools.zip_longest(*pieces):
            for piece in group:
                if piece is not None:
                    yield {"tool_calls": [piece]}, None
    else:
        for head, call_pieces in zip(heads, pieces, strict=True):
            yield {"tool_calls": [head]}, None
            for piece in call_pieces:
                yield {"tool_calls": [piece]}, None
    yield {}, _finish_reason(reply)


class _DroppedConnection(Exception):
    """Raised inside the streaming body: uvicorn then aborts the connection mid-response."""


def _events(
    reply: ScriptedReply, model: str, body: dict[str, Any], include_usage: bool
) -> Iterator[bytes]:
    completion_id = f"chatcmpl-stub{next(_ids):08d}"
    created = int(time.time())
    base = {"id": completion_id, "object": "chat.completion.chunk", "created": created}
    base |= {"model": model, "system_fingerprint": None}
    if include_usage:
        base["usage"] = None
    for delta, finish in _deltas(reply):
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        yield _event(base | {"choices": [choice]})
    if include_usage:
        yield _event(base | {"choices": [], "usage": _usage(reply, body)})
    yield b"data: [DONE]\n\n"


async def _paced(
    events: Iterator[bytes], reply: ScriptedReply, stopping: threading.Event
) -> AsyncIterator[bytes]:
    """The events one write each, with the scripted delays; event 0 is the role-only chunk."""
    for sent, event in enumerate(events):
        if reply.drop_after is not None and sent >= reply.drop_after:
            raise _DroppedConnection
        if sent == 1 and reply.first_token_delay:
            await _sleep(reply.first_token_delay, stopping)
        elif sent > 1 and reply.chunk_delay:
            await _sleep(reply.chunk_delay, stopping)
        yield event


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="Zero-latency OpenAI-compatible stub server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--record", action="store_true", help="keep every request in memory")
    arguments = parser.parse_args()
    stub = OpenAIStub(arguments.host, arguments.port)
    stub.zero_latency(record=arguments.record)
    stub.start()
    print(stub.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stub.stop()


if __name__ == "__main__":
    main()
