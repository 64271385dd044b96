"""LLM provider for any OpenAI-compatible chat-completions endpoint, through the official SDK.

Streams text deltas as they arrive; tool calls are assembled from their streamed pieces (id and
name first, ``function.arguments`` split over later chunks, keyed by ``index``) and yielded
whole once the stream is complete, followed by ``Usage`` and ``Finished``.

Failures become ``ProviderError`` with a short reason that never contains the API key or any
message content (the turn loop shows a polite fallback). Transient failures (connection errors,
timeouts, HTTP 429 and 5xx) are retried ``max_retries`` times, but only while nothing has been
yielded yet: a half-streamed answer cannot be taken back from the visitor.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai

from demandly.engine.providers.base import (
    ChatMessage,
    CompletionRequest,
    Finished,
    ProviderError,
    ProviderEvent,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolSpec,
    Usage,
)
from demandly.kit.logging import get_logger

log = get_logger(__name__)
# The SDK's debug logs (switched on by OPENAI_LOG=debug) print whole request options, i.e. the
# visitors' messages: personal data must never reach the logs.
logging.getLogger("openai").setLevel(logging.WARNING)

# Self-hosted servers (vLLM, Ollama, llama.cpp) need no key, but the SDK insists on one; a
# placeholder also keeps the SDK from silently falling back to OPENAI_API_KEY from the env.
_NO_KEY = "no-key"
_RETRY_DELAY_SECONDS = 0.2
# A live visitor is waiting: honour a short Retry-After, give up on a long one.
_MAX_RETRY_AFTER_SECONDS = 2.0
_FINISH_REASONS = {"stop": "stop", "length": "length", "tool_calls": "tool_calls"}


class _Retryable(Exception):
    def __init__(self, reason: str, delay: float = _RETRY_DELAY_SECONDS) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: str = ""

    def complete(self) -> ToolCall:
        return ToolCall(
            id=self.id or f"call_{uuid.uuid4().hex[:24]}",
            name=self.name,
            arguments=parse_arguments(self.arguments),
        )


def parse_arguments(raw: str) -> dict[str, Any]:
    """The model's JSON arguments; anything else comes back as ``{"_raw": raw}`` so the tool
    layer can answer the model with an error instead of crashing the turn."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"_raw": raw}


def message_to_openai(message: ChatMessage) -> dict[str, Any]:
    if message.role == "tool":
        return {
            "role": "tool",
            "tool_call_id": message.tool_call_id or "",
            "content": message.content or "",
        }
    payload: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.role != "assistant" and message.content is None:
        payload["content"] = ""
    if message.role == "assistant" and message.tool_calls:
        payload["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": json.dumps(call.arguments, ensure_ascii=False),
                },
            }
            for call in message.tool_calls
        ]
    return payload


def tool_to_openai(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


class OpenAICompatibleProvider:
    """``LLMProvider`` for OpenAI and every server speaking its chat-completions API.

    ``timeout_seconds`` bounds connecting and each wait for data from the server;
    ``first_token_timeout_seconds`` bounds the time from sending the request to the first
    content, tool call or finish (role-only chunks do not count). Pass a shared
    ``http_client`` to reuse connections across provider instances.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        *,
        timeout_seconds: float = 20.0,
        first_token_timeout_seconds: float = 10.0,
        max_retries: int = 1,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.model = model
        self.first_token_timeout_seconds = first_token_timeout_seconds
        self.max_retries = max(0, max_retries)
        self._owns_http_client = http_client is None
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or _NO_KEY,
            max_retries=0,  # retries are ours: only before anything reached the visitor
            timeout=timeout_seconds,
            http_client=http_client,  # type: ignore[arg-type]  # the SDK accepts httpx too
        )

    async def aclose(self) -> None:
        """Close the SDK's own connection pool (a shared ``http_client`` stays open)."""
        if self._owns_http_client:
            await self._client.close()

    async def stream(self, request: CompletionRequest) -> AsyncIterator[ProviderEvent]:
        retries = 0
        while True:
            yielded = False
            failure: _Retryable | None = None
            try:
                async for event in self._stream_once(request):
                    yielded = True
                    yield event
                return
            except _Retryable as caught:
                failure = caught
            # Raised outside the except block so no SDK exception rides along as __context__.
            if yielded or retries >= self.max_retries:
                raise ProviderError(failure.reason)
            retries += 1
            log.warning(
                "llm_provider_retry", provider=self.name, reason=failure.reason, retry=retries
            )
            await asyncio.sleep(failure.delay)

    def request_params(self, request: CompletionRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": request.model or self.model,
            "messages": [message_to_openai(message) for message in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            params["tools"] = [tool_to_openai(tool) for tool in request.tools]
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.max_tokens is not None:
            params["max_tokens"] = request.max_tokens
        return params

    async def _stream_once(self, request: CompletionRequest) -> AsyncIterator[ProviderEvent]:
        deadline: float | None = (
            asyncio.get_running_loop().time() + self.first_token_timeout_seconds
        )
        calls: dict[int, _PartialCall] = {}
        finish: str | None = None
        usage: Usage | None = None
        received_anything = False
        stream: openai.AsyncStream[object] | None = None
        failure: Exception | None = None
        try:
            async with asyncio.timeout_at(deadline):
                stream = await self._open_stream(self.request_params(request))
            chunks = aiter(stream)
            while True:
                chunk = await _next_chunk(chunks, deadline)
                if chunk is None:
                    break
                usage = _usage(chunk) or usage
                for choice in chunk.get("choices") or ():
                    if choice.get("index") not in (0, None):
                        continue
                    delta = choice.get("delta") or {}
                    if delta.get("tool_calls"):
                        received_anything = True
                        deadline = None
                        _collect_tool_calls(calls, delta["tool_calls"])
                    if choice.get("finish_reason"):
                        received_anything = True
                        deadline = None
                        finish = choice["finish_reason"]
                    if delta.get("content"):
                        received_anything = True
                        deadline = None
                        yield TextDelta(str(delta["content"]))
        except TimeoutError:
            failure = _Retryable(
                f"no response from the LLM provider within {self.first_token_timeout_seconds:g} s"
            )
        except openai.APIError as error:
            failure = _failure(error)
        except (ValueError, TypeError, AttributeError, KeyError) as error:
            log.warning("llm_provider_malformed_stream", error_type=type(error).__name__)
            failure = ProviderError("malformed response from the LLM provider")
        finally:
            if stream is not None:
                await stream.close()

        # Raised outside the except blocks: the SDK's exception (whose message may echo the
        # response body or a key) must not travel along as __context__.
        if failure is not None:
            raise failure
        if not received_anything:
            raise _Retryable("empty response from the LLM provider")
        for index in sorted(calls):
            yield ToolCallEvent(calls[index].complete())
        if usage is not None:
            yield usage
        yield Finished(_finish_reason(finish, has_calls=bool(calls)))

    async def _open_stream(self, params: dict[str, Any]) -> openai.AsyncStream[object]:
        """The request through the SDK's own client (its HTTP, authentication, status errors
        and server-sent events, an ``error`` event raising ``APIError``), with the body sent as
        the JSON it already is and each chunk given back as parsed JSON (``cast_to=object``).
        ``chat.completions.create`` would walk the body against its typed parameters and
        build a typed model of every chunk: about half of a turn's CPU against a local
        server, for values that are plain JSON either way."""
        return await self._client.post(
            "/chat/completions",
            body=params,
            cast_to=object,
            stream=True,
            # ``object``, not ``Any``: the chunk type the SDK hands each chunk back as, as is.
            stream_cls=openai.AsyncStream[object],
        )


async def _next_chunk(chunks: AsyncIterator[Any], deadline: float | None) -> dict[str, Any] | None:
    try:
        if deadline is None:
            chunk = await anext(chunks)
        else:
            async with asyncio.timeout_at(deadline):
                chunk = await anext(chunks)
    except StopAsyncIteration:
        return None
    if not isinstance(chunk, dict):
        raise TypeError("a chunk is not a JSON object")
    return chunk


def _collect_tool_calls(calls: dict[int, _PartialCall], pieces: list[Any]) -> None:
    for piece in pieces:
        index = piece.get("index")
        partial = calls.setdefault(int(index) if index is not None else 0, _PartialCall())
        if piece.get("id") and not partial.id:
            partial.id = str(piece["id"])
        function = piece.get("function")
        if not function:
            continue
        # The name arrives whole in the first piece; some servers repeat it in every piece.
        if function.get("name") and not partial.name:
            partial.name = str(function["name"])
        if function.get("arguments"):
            partial.arguments += str(function["arguments"])


def _usage(chunk: dict[str, Any]) -> Usage | None:
    usage = chunk.get("usage")
    if not usage:
        return None
    return Usage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
    )


def _finish_reason(reason: str | None, *, has_calls: bool) -> Any:
    # Some servers report "stop" although the turn ended in tool calls.
    if has_calls:
        return "tool_calls"
    return _FINISH_REASONS.get(reason or "stop", "stop")


def _failure(error: openai.APIError) -> Exception:
    """A retryable marker or a final ProviderError; the SDK's message (which may echo the
    response body) is deliberately not carried over."""
    if isinstance(error, openai.APITimeoutError):
        return _Retryable("the LLM provider timed out")
    if isinstance(error, openai.APIConnectionError):
        return _Retryable("connection to the LLM provider failed")
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        if status == 429:
            delay = _retry_after(error.response.headers.get("retry-after"))
            if delay is None:
                return ProviderError("the LLM provider is rate limiting (HTTP 429)")
            return _Retryable("the LLM provider is rate limiting (HTTP 429)", delay)
        if status >= 500:
            return _Retryable(f"the LLM provider failed (HTTP {status})")
        return ProviderError(f"the LLM provider rejected the request (HTTP {status})")
    return ProviderError("the LLM provider reported an error")


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait before the retry, or None when the wait is too long for a live chat."""
    if value is None:
        return _RETRY_DELAY_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        return _RETRY_DELAY_SECONDS
    return max(seconds, 0.0) if seconds <= _MAX_RETRY_AFTER_SECONDS else None
