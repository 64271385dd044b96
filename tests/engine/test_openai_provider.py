"""The OpenAI-compatible provider against a real local OpenAI-style server over HTTP."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable

import httpx
import openai
import pytest
import structlog

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
from demandly.engine.providers.openai_compat import OpenAICompatibleProvider
from tests.engine.openai_stub import (
    OpenAIStub,
    StubToolCall,
    error,
    hang,
    raw,
    text,
    tool_calls,
)

API_KEY = "sk-test-4f9c1e7d2b8a6035"
HELLO = CompletionRequest(messages=(ChatMessage(role="user", content="Hallo"),))

SAVE_LEAD = ToolSpec(
    name="save_lead_details",
    description="Store what the visitor told us.",
    parameters={
        "type": "object",
        "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
    },
)


@pytest.fixture
async def make_provider(
    openai_stub: OpenAIStub,
) -> AsyncIterator[Callable[..., OpenAICompatibleProvider]]:
    providers: list[OpenAICompatibleProvider] = []

    def factory(**options: object) -> OpenAICompatibleProvider:
        settings: dict[str, object] = {
            "base_url": openai_stub.base_url,
            "api_key": API_KEY,
            "model": "stub-model",
            "timeout_seconds": 5.0,
            "first_token_timeout_seconds": 5.0,
        }
        settings.update(options)
        provider = OpenAICompatibleProvider(**settings)  # type: ignore[arg-type]
        providers.append(provider)
        return provider

    yield factory
    for provider in providers:
        await provider.aclose()


async def collect(
    provider: OpenAICompatibleProvider, request: CompletionRequest = HELLO
) -> list[ProviderEvent]:
    return [event async for event in provider.stream(request)]


def texts(events: list[ProviderEvent]) -> list[str]:
    return [event.text for event in events if isinstance(event, TextDelta)]


def calls(events: list[ProviderEvent]) -> list[ToolCall]:
    return [event.call for event in events if isinstance(event, ToolCallEvent)]


async def test_streamed_text_arrives_as_several_deltas_in_order(openai_stub, make_provider):
    openai_stub.script_text("Guten ", "Tag, ", "wie kann ", "ich helfen?", usage=(21, 4))

    events = await collect(make_provider())

    assert texts(events) == ["Guten ", "Tag, ", "wie kann ", "ich helfen?"]
    assert events[-2:] == [Usage(prompt_tokens=21, completion_tokens=4), Finished("stop")]


async def test_text_is_yielded_while_the_stream_is_still_open(openai_stub, make_provider):
    # The second chunk is held back 5 s; the first must reach us before it (streaming, not
    # buffering). We stop reading after the first delta, so the test never waits for it.
    openai_stub.script_text("Erster Teil", " zweiter Teil", chunk_delay=5.0)
    stream = make_provider().stream(HELLO)

    first = await anext(stream)
    await stream.aclose()

    assert first == TextDelta("Erster Teil")


async def test_tool_call_with_arguments_split_over_chunks_arrives_once_parsed(
    openai_stub, make_provider
):
    openai_stub.script_tool_calls(
        StubToolCall(
            "save_lead_details",
            ('{"na', 'me": "Anna Sch', 'midt", "em', 'ail": "anna@', 'example.org"}'),
            id="call_abc123",
        )
    )

    events = await collect(make_provider())

    assert calls(events) == [
        ToolCall(
            id="call_abc123",
            name="save_lead_details",
            arguments={"name": "Anna Schmidt", "email": "anna@example.org"},
        )
    ]
    assert texts(events) == []
    assert events[-1] == Finished("tool_calls")


async def test_two_parallel_tool_calls_with_interleaved_chunks(openai_stub, make_provider):
    openai_stub.script(
        tool_calls(
            StubToolCall("save_lead_details", ('{"name"', ': "Jonas"}'), id="call_1"),
            StubToolCall("request_handoff", ('{"reas', 'on": "Preisfrage"', "}"), id="call_2"),
            text_chunks=("Einen Moment ", "bitte."),
            interleave_tool_calls=True,
        )
    )

    events = await collect(make_provider())

    assert texts(events) == ["Einen Moment ", "bitte."]
    assert calls(events) == [
        ToolCall(id="call_1", name="save_lead_details", arguments={"name": "Jonas"}),
        ToolCall(id="call_2", name="request_handoff", arguments={"reason": "Preisfrage"}),
    ]
    kinds = [type(event).__name__ for event in events]
    assert kinds == [
        "TextDelta",
        "TextDelta",
        "ToolCallEvent",
        "ToolCallEvent",
        "Usage",
        "Finished",
    ]


async def test_malformed_tool_arguments_come_back_raw_instead_of_crashing(
    openai_stub, make_provider
):
    openai_stub.script_tool_calls(
        StubToolCall("save_lead_details", ('{"name": "Anna', ", email: }"), id="call_x")
    )

    events = await collect(make_provider())

    assert calls(events) == [
        ToolCall(
            id="call_x", name="save_lead_details", arguments={"_raw": '{"name": "Anna, email: }'}
        )
    ]
    assert events[-1] == Finished("tool_calls")


async def test_usage_from_the_final_chunk_is_reported(openai_stub, make_provider):
    openai_stub.script_text("Ja.", usage=(1234, 56))

    events = await collect(make_provider())

    assert [event for event in events if isinstance(event, Usage)] == [Usage(1234, 56)]


async def test_length_limit_is_reported_as_finish_reason(openai_stub, make_provider):
    openai_stub.script_text("Das ist eine sehr lange", finish_reason="length")

    events = await collect(make_provider())

    assert events[-1] == Finished("length")


async def test_request_body_is_in_openai_shape(openai_stub, make_provider):
    earlier_call = ToolCall(
        id="call_prev", name="save_lead_details", arguments={"name": "Jörg Müller"}
    )
    request = CompletionRequest(
        messages=(
            ChatMessage(role="system", content="Du bist die Rezeption der Praxis."),
            ChatMessage(role="user", content="Ich heiße Jörg Müller."),
            ChatMessage(role="assistant", content=None, tool_calls=(earlier_call,)),
            ChatMessage(role="tool", content='{"ok": true}', tool_call_id="call_prev"),
            ChatMessage(role="assistant", content="Danke, Herr Müller!"),
            ChatMessage(role="user", content="Wann haben Sie offen?"),
        ),
        tools=(SAVE_LEAD,),
        model="gpt-test-mini",
        temperature=0.3,
        max_tokens=256,
    )
    openai_stub.script_text("Montags ab 8 Uhr.")

    await collect(make_provider(), request)

    [sent] = openai_stub.requests
    assert sent.method == "POST" and sent.path == "/v1/chat/completions"
    body = sent.body
    assert body["model"] == "gpt-test-mini"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.3
    assert body["max_tokens"] == 256
    assert body["messages"] == [
        {"role": "system", "content": "Du bist die Rezeption der Praxis."},
        {"role": "user", "content": "Ich heiße Jörg Müller."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_prev",
                    "type": "function",
                    "function": {
                        "name": "save_lead_details",
                        "arguments": '{"name": "Jörg Müller"}',
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_prev", "content": '{"ok": true}'},
        {"role": "assistant", "content": "Danke, Herr Müller!"},
        {"role": "user", "content": "Wann haben Sie offen?"},
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "save_lead_details",
                "description": "Store what the visitor told us.",
                "parameters": SAVE_LEAD.parameters,
            },
        }
    ]


async def test_defaults_apply_when_the_request_leaves_them_open(openai_stub, make_provider):
    await collect(make_provider(model="default-model"))

    body = openai_stub.requests[0].body
    assert body["model"] == "default-model"
    assert "tools" not in body and "temperature" not in body and "max_tokens" not in body


async def test_server_error_is_retried_once_then_succeeds(openai_stub, make_provider):
    openai_stub.script(error(500), text("Hallo ", "zurück!"))

    events = await collect(make_provider())

    assert texts(events) == ["Hallo ", "zurück!"]
    assert len(openai_stub.requests) == 2


async def test_two_server_errors_raise_provider_error(openai_stub, make_provider):
    openai_stub.script(error(500), error(503), text("never sent"))

    with pytest.raises(ProviderError, match="HTTP 503"):
        await collect(make_provider())

    assert len(openai_stub.requests) == 2
    assert openai_stub.pending == 1


async def test_retries_can_be_switched_off(openai_stub, make_provider):
    openai_stub.script(error(502), text("never sent"))

    with pytest.raises(ProviderError, match="HTTP 502"):
        await collect(make_provider(max_retries=0))

    assert len(openai_stub.requests) == 1


@pytest.mark.parametrize("after_headers", [False, True], ids=["before-headers", "after-role"])
async def test_no_first_token_in_time_raises_provider_error(
    openai_stub, make_provider, after_headers
):
    # Both attempts hang far longer than the first-token timeout.
    openai_stub.script(hang(30, after_headers=after_headers), hang(30, after_headers=after_headers))

    with pytest.raises(ProviderError, match="no response"):
        await collect(make_provider(first_token_timeout_seconds=0.3))

    assert len(openai_stub.requests) == 2


async def test_first_token_timeout_does_not_cut_a_long_answer(openai_stub, make_provider):
    # The first words come at once; the whole answer takes longer than the first-token limit.
    openai_stub.script_text(
        "Wir ", "haben ", "montags ", "bis ", "18 Uhr ", "offen.", chunk_delay=0.3
    )

    events = await collect(make_provider(first_token_timeout_seconds=1.0))

    assert "".join(texts(events)) == "Wir haben montags bis 18 Uhr offen."
    assert len(openai_stub.requests) == 1


async def test_slow_first_token_then_fast_retry_succeeds(openai_stub, make_provider):
    openai_stub.script(hang(30, after_headers=True), text("Da bin ich."))

    events = await collect(make_provider(first_token_timeout_seconds=0.3))

    assert texts(events) == ["Da bin ich."]


async def test_unauthorized_is_not_retried_and_never_reveals_the_key(openai_stub, make_provider):
    # Real servers echo (part of) the key in their message; that must not reach our error.
    openai_stub.script(error(401, f"Incorrect API key provided: {API_KEY}"), text("never sent"))

    with pytest.raises(ProviderError) as caught:
        await collect(make_provider())

    assert "401" in str(caught.value)
    assert API_KEY not in str(caught.value) and API_KEY[-6:] not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    [sent] = openai_stub.requests
    assert sent.bearer_token_is(API_KEY)
    assert API_KEY not in str(sent.headers)
    assert openai_stub.pending == 1


async def test_other_client_errors_are_not_retried(openai_stub, make_provider):
    openai_stub.script(error(400, "model 'x' does not support tools"), text("never sent"))

    with pytest.raises(ProviderError, match="HTTP 400"):
        await collect(make_provider())

    assert len(openai_stub.requests) == 1


async def test_rate_limit_with_short_retry_after_is_retried(openai_stub, make_provider):
    openai_stub.script(error(429, retry_after=0), text("Jetzt klappt es."))

    events = await collect(make_provider())

    assert texts(events) == ["Jetzt klappt es."]
    assert len(openai_stub.requests) == 2


async def test_rate_limit_with_long_retry_after_fails_at_once(openai_stub, make_provider):
    openai_stub.script(error(429, retry_after=60), text("never sent"))

    with pytest.raises(ProviderError, match="429"):
        await collect(make_provider())

    assert len(openai_stub.requests) == 1


async def test_failure_after_text_was_yielded_is_not_retried(openai_stub, make_provider):
    # The visitor already saw the first words: a retry would repeat them.
    openai_stub.script(text("Unsere ", "Praxis ", "ist ", drop_after=3), text("never sent"))
    seen: list[ProviderEvent] = []

    with pytest.raises(ProviderError, match="connection to the LLM provider failed"):
        async for event in make_provider().stream(HELLO):
            seen.append(event)

    assert texts(seen) == ["Unsere ", "Praxis "]
    assert len(openai_stub.requests) == 1


async def test_garbage_from_the_server_raises_provider_error(openai_stub, make_provider):
    openai_stub.script(raw(b"data: {this is not json\n\ndata: [DONE]\n\n"), text("never sent"))

    with pytest.raises(ProviderError, match="malformed"):
        await collect(make_provider())

    assert len(openai_stub.requests) == 1


@pytest.mark.parametrize(
    "chunk",
    [
        b"[1, 2]",
        b'"text"',
        b'{"choices": "Hallo"}',
        b'{"choices": [{"index": 0, "delta": "Hallo"}]}',
        b'{"choices": [{"index": 0, "delta": {"tool_calls": [{"index": "x"}]}}]}',
        b'{"choices": [], "usage": {"prompt_tokens": "many"}}',
    ],
)
async def test_json_of_the_wrong_shape_raises_provider_error(openai_stub, make_provider, chunk):
    openai_stub.script(raw(b"data: " + chunk + b"\n\ndata: [DONE]\n\n"), text("never sent"))

    with pytest.raises(ProviderError, match="malformed"):
        await collect(make_provider())

    assert len(openai_stub.requests) == 1


async def test_an_error_event_in_the_stream_raises_provider_error_without_its_text(
    openai_stub, make_provider
):
    # What OpenAI sends when a stream fails after its 200: an object with ``error``.
    body = b'data: {"error": {"message": "overloaded: Max Muster max@example.com"}}\n\n'
    openai_stub.script(raw(body), text("never sent"))

    with pytest.raises(ProviderError) as failure:
        await collect(make_provider())

    assert str(failure.value) == "the LLM provider reported an error"
    assert failure.value.__context__ is None
    assert len(openai_stub.requests) == 1


async def test_chunks_with_unknown_fields_and_nulls_are_read(openai_stub, make_provider):
    # Servers differ: nulls for absent fields, extra fields, a role-only first chunk.
    body = (
        b'data: {"id": "c1", "choices": [{"index": 0, "delta": {"role": "assistant",'
        b' "content": null}, "logprobs": null, "finish_reason": null}]}\n\n'
        b'data: {"id": "c1", "choices": [{"index": 0, "delta": {"content": "Guten Tag",'
        b' "refusal": null, "tool_calls": null}, "finish_reason": null}], "x_extra": 1}\n\n'
        b'data: {"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],'
        b' "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}}\n\n'
        b"data: [DONE]\n\n"
    )
    openai_stub.script(raw(body))

    events = await collect(make_provider())

    assert texts(events) == ["Guten Tag"]
    assert Usage(prompt_tokens=12, completion_tokens=3) in events
    assert events[-1] == Finished("stop")


async def test_an_empty_stream_is_retried(openai_stub, make_provider):
    openai_stub.script(raw(b"data: [DONE]\n\n"), text("Jetzt aber."))

    events = await collect(make_provider())

    assert texts(events) == ["Jetzt aber."]
    assert len(openai_stub.requests) == 2


async def test_unreachable_server_raises_provider_error(make_provider):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    with pytest.raises(ProviderError, match="connection to the LLM provider failed") as caught:
        await collect(make_provider(base_url=f"http://127.0.0.1:{closed_port}/v1"))

    assert API_KEY not in str(caught.value)


async def test_without_api_key_the_platform_key_from_the_environment_is_not_sent(
    openai_stub, make_provider, monkeypatch
):
    # A self-hosted endpoint configured without a key must never receive OPENAI_API_KEY.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-platform-secret")
    openai_stub.script_text("Hallo!")

    events = await collect(make_provider(api_key=None))

    assert texts(events) == ["Hallo!"]
    assert not openai_stub.requests[0].bearer_token_is("sk-platform-secret")


async def test_a_shared_http_client_can_be_passed_in(openai_stub, make_provider):
    openai_stub.script(text("eins"), text("zwei"))
    async with httpx.AsyncClient() as shared:
        first = make_provider(http_client=shared)
        second = make_provider(http_client=shared)
        results = [texts(await collect(first)), texts(await collect(second))]
        await first.aclose()  # must leave the shared client usable
        assert not shared.is_closed

    assert results == [["eins"], ["zwei"]]


async def test_retries_are_logged_without_key_or_message_content(openai_stub, make_provider):
    openai_stub.script(error(500, f"boom {API_KEY}"), text("Antwort"))
    secret_question = "Meine Nummer ist 0171 2345678, rufen Sie mich an"
    request = CompletionRequest(messages=(ChatMessage(role="user", content=secret_question),))

    with structlog.testing.capture_logs() as logs:
        await collect(make_provider(), request)

    assert [entry["event"] for entry in logs] == ["llm_provider_retry"]
    assert "HTTP 500" in logs[0]["reason"]
    assert API_KEY not in repr(logs) and "0171" not in repr(logs)


async def test_stub_answers_non_streaming_requests_in_openai_format(openai_stub):
    # Other components (and the official SDK) may call the stub without streaming.
    openai_stub.script(
        tool_calls(
            StubToolCall("end_conversation", ('{"reason":', ' "done"}'), id="call_end"),
            text_chunks=("Tschüss ", "und alles Gute!"),
            usage=(10, 5),
        )
    )
    async with openai.AsyncOpenAI(base_url=openai_stub.base_url, api_key=API_KEY) as client:
        completion = await client.chat.completions.create(
            model="stub-model", messages=[{"role": "user", "content": "Danke, tschüss"}]
        )

    message = completion.choices[0].message
    assert message.content == "Tschüss und alles Gute!"
    assert message.tool_calls[0].id == "call_end"
    assert message.tool_calls[0].function.arguments == '{"reason": "done"}'
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.usage.prompt_tokens == 10 and completion.usage.completion_tokens == 5
    assert openai_stub.requests[0].streamed is False
