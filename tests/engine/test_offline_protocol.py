"""The offline engine as a provider: streamed events, only offered tools, statelessness over
the history, determinism, and the injectable clock."""

from __future__ import annotations

import json
from datetime import time

from demandly.engine.offline import OfflineEngine
from demandly.engine.providers.base import (
    ChatMessage,
    CompletionRequest,
    Finished,
    OpeningRange,
    QuickReplies,
    TextDelta,
    ToolCall,
    ToolCallEvent,
)
from tests.engine.offline_dialogue import (
    ALL_TOOLS,
    INSIDE,
    OUTSIDE,
    Dialogue,
    practice,
    tools,
)


async def events(engine: OfflineEngine, request: CompletionRequest) -> list[object]:
    return [event async for event in engine.stream(request)]


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


async def test_a_reply_streams_in_several_chunks_then_tool_calls_then_finished() -> None:
    engine = OfflineEngine(clock=lambda: INSIDE)
    request = CompletionRequest(
        messages=(
            ChatMessage(role="system", content="You are Lena."),
            user("Ich bin Max Muster, max@example.com, 0171 1234567"),
        ),
        tools=tools(*ALL_TOOLS),
        context=practice("de"),
    )
    got = await events(engine, request)
    kinds = [type(e).__name__ for e in got]
    deltas = [e for e in got if isinstance(e, TextDelta)]
    assert len(deltas) >= 3, "the reply streams in word groups"
    first_other = kinds.index("ToolCallEvent")
    assert set(kinds[:first_other]) == {"TextDelta"}
    assert got[-1] == Finished(reason="tool_calls")
    text = "".join(d.text for d in deltas)
    assert "  " not in text and text == text.strip()
    calls = [e.call for e in got if isinstance(e, ToolCallEvent)]
    assert [c.name for c in calls] == ["save_lead_details"]
    assert calls[0].arguments == {
        "fields": {"name": "Max Muster", "email": "max@example.com", "phone": "+491711234567"}
    }
    json.dumps(calls[0].arguments)  # arguments are plain JSON


async def test_a_choice_question_offers_quick_replies_before_finishing() -> None:
    from demandly.engine.providers.base import QualificationField

    context = practice(
        "en",
        qualification=(
            QualificationField(
                key="service", labels={"en": "Service"}, type="choice", options=("Repair", "Sale")
            ),
        ),
    )
    got = await events(
        OfflineEngine(clock=lambda: INSIDE), CompletionRequest(messages=(), context=context)
    )
    assert QuickReplies(options=("Repair", "Sale")) in got
    assert got[-1] == Finished(reason="stop")


async def test_tools_that_are_not_offered_are_never_called() -> None:
    for offered in ((), ("request_handoff",), ("save_lead_details",)):
        d = Dialogue(practice("en"), offered=offered)
        await d.greet()
        turns = [
            await d.say("I'm Jane Doe, jane@example.com, 0171 1234567"),
            await d.say("Can I talk to a human?"),
            await d.say("bye"),
        ]
        for turn in turns:
            assert {c.name for c in turn.calls} <= set(offered)
            assert turn.finish == ("tool_calls" if turn.calls else "stop")


async def test_without_the_handoff_tool_the_request_is_passed_on_and_the_form_goes_on() -> None:
    d = Dialogue(practice("de"), offered=("save_lead_details", "end_conversation"))
    await d.greet()
    turn = await d.say("Ich möchte mit einem Mitarbeiter sprechen")
    assert turn.calls == []
    assert "persönlich" in turn.text and "Name" in turn.text


async def test_the_same_history_gives_the_same_reply() -> None:
    async def run() -> list[tuple[str, list[ToolCall]]]:
        d = Dialogue(practice("de"))
        await d.greet()
        for line in ("Max Muster", "max@example", "Wann haben Sie geöffnet?", "max@example.com"):
            await d.say(line)
        return [(t.text, t.calls) for t in d.turns]

    assert await run() == await run()


async def test_tool_call_ids_are_unique_in_a_conversation() -> None:
    d = Dialogue(practice("de"))
    await d.greet()
    for line in ("Max Muster", "max@example.com", "0171 1234567", "Mensch bitte"):
        await d.say(line)
    ids = [c.id for t in d.turns for c in t.calls]
    assert len(ids) == len(set(ids)) == 4


async def test_captured_values_come_from_the_save_calls_in_the_history() -> None:
    # A history written by someone else (another provider, an earlier version): the engine
    # trusts the save_lead_details calls it finds, and asks only for what is still missing.
    history = (
        user("Hallo"),
        ChatMessage(
            role="assistant",
            content="Hallo!",
            tool_calls=(
                ToolCall(id="x1", name="save_lead_details", arguments={"fields": {"name": "Max"}}),
                ToolCall(
                    id="x2",
                    name="save_lead_details",
                    arguments={"fields": {"email": "max@example.com"}},
                ),
            ),
        ),
        ChatMessage(role="tool", content='{"ok": true}', tool_call_id="x1"),
        ChatMessage(role="tool", content='{"ok": false, "error": "db down"}', tool_call_id="x2"),
        user("Wie geht es weiter?"),
    )
    request = CompletionRequest(messages=history, tools=tools(*ALL_TOOLS), context=practice("de"))
    got = await events(OfflineEngine(clock=lambda: INSIDE), request)
    text = "".join(e.text for e in got if isinstance(e, TextDelta))
    assert text.rstrip().endswith("Wie lautet Ihre E-Mail-Adresse?"), (
        "the failed save is asked again"
    )


async def test_after_its_own_tool_results_the_engine_has_nothing_more_to_say() -> None:
    d = Dialogue(practice("de"))
    await d.greet()
    await d.say("Max Muster")  # the helper asserts the second call yields only Finished
    assert d.messages[-1].role == "tool"
    again = await events(d.engine, d.request())
    assert again == [Finished(reason="stop")]


async def test_the_greeting_uses_the_agents_own_text_when_given() -> None:
    d = Dialogue(practice("de", greeting="Grüß Gott in der Praxis Sonnenschein!"))
    turn = await d.greet()
    assert turn.text.startswith("Grüß Gott in der Praxis Sonnenschein!")
    assert "Name" in turn.text


async def test_without_required_fields_the_greeting_just_offers_help() -> None:
    turn = await Dialogue(practice("en", qualification=())).greet()
    assert turn.text.endswith("How can I help you?")
    assert turn.calls == []


async def test_a_naive_clock_is_read_in_the_agents_time_zone() -> None:
    naive_evening = OUTSIDE.replace(tzinfo=None)
    d = Dialogue(practice("de"))
    engine = OfflineEngine(clock=lambda: naive_evening)
    request = CompletionRequest(
        messages=(user("Haben Sie gerade geöffnet?"),), tools=tools(*ALL_TOOLS), context=d.context
    )
    text = "".join(e.text for e in await events(engine, request) if isinstance(e, TextDelta))
    assert "geschlossen" in text and "am Montag ab 8:00 Uhr" in text


async def test_the_default_clock_is_the_real_time() -> None:
    always = tuple(
        OpeningRange(weekday=day, opens=time(0), closes=time(23, 59, 59, 999999))
        for day in range(7)
    )
    request = CompletionRequest(
        messages=(user("Are you open right now?"),),
        context=practice("en", opening_hours=always, timezone="Not/AZone"),
    )
    got = await events(OfflineEngine(), request)
    text = "".join(e.text for e in got if isinstance(e, TextDelta))
    assert "We're open right now" in text


async def test_odd_input_never_breaks_the_engine() -> None:
    d = Dialogue(practice("de"))
    await d.greet()
    for line in (
        "",
        "   ",
        "@",
        "@@@@",
        "+",
        "????",
        "1" * 300,
        "ä" * 4000,
        "31.13.2025",
        "<script>",
    ):
        turn = await d.say(line)
        assert turn.finish in ("stop", "tool_calls")
        assert turn.text


async def test_a_greeting_written_by_the_channel_is_followed_by_the_form() -> None:
    # conversations.start stores its own short greeting before the first visitor message.
    d = Dialogue(practice("de"))
    d.messages.append(
        ChatMessage(role="assistant", content="Guten Tag! Ich bin Lena. Wie kann ich helfen?")
    )
    turn = await d.say("Ich möchte einen Termin vereinbaren")
    assert turn.calls == []
    assert turn.text.endswith("Wie lautet Ihr Name?")
    turn = await d.say("Max")
    assert turn.saved == {"name": "Max"}

    bare = Dialogue(practice("de"))
    bare.messages.append(ChatMessage(role="assistant", content="Guten Tag! Wie kann ich helfen?"))
    turn = await bare.say("Max Muster")
    assert turn.saved == {"name": "Max Muster"}, "a bare full name is understood as the name"


async def test_the_engines_own_greeting_still_counts_after_closing_time() -> None:
    d = Dialogue(practice("de"), clock=INSIDE)
    await d.greet()
    d.clock = OUTSIDE  # the greeting now reads differently, the question it asked is the same
    turn = await d.say("Max")
    assert turn.saved == {"name": "Max"}
