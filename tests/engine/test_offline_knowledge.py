"""The offline engine answers from knowledge: it asks search_knowledge, then answers with the
sentences of the best passage that answer the question, plus the source; below the threshold
it says it does not know and passes the question on.

The search results here have the shape knowledge/tools.py returns: ``passages`` with text,
score, title, heading and url, ``known`` and ``not_known_below``. The same dialogues through
the public chat API and a real knowledge base: tests/channels/web/test_knowledge_answers.py."""

from __future__ import annotations

import json
from typing import Any

from demandly.engine.offline import OfflineEngine
from demandly.engine.offline.knowledge import answer_from, answer_sentences, split_sentences
from demandly.engine.providers.base import (
    ChatMessage,
    CompletionRequest,
    Finished,
    QualificationField,
    Source,
    Sources,
    TextDelta,
    ToolCall,
    ToolCallEvent,
)
from tests.engine.offline_dialogue import ALL_TOOLS, INSIDE, Dialogue, practice, tools

WITH_SEARCH = (*ALL_TOOLS, "search_knowledge")

CLEANING_DE = (
    "# Professionelle Zahnreinigung\n\n"
    "Bei der professionellen Zahnreinigung entfernen wir Beläge und Zahnstein. "
    "Die Reinigung dauert etwa 45 bis 60 Minuten. "
    "Sie kostet 89 Euro, viele Zusatzversicherungen übernehmen die Kosten. "
    "Wir empfehlen sie z. B. zweimal im Jahr."
)
CLEANING_EN = (
    "Professional cleaning\n\n"
    "During a professional cleaning we remove plaque and tartar. "
    "The appointment takes about 45 to 60 minutes. "
    "It costs 89 euros; many supplementary insurances cover it. "
    "We recommend it twice a year."
)
SOURCE_URL = "https://praxis.example/zahnreinigung"


def search(passages: list[dict[str, Any]]) -> dict[str, Any]:
    known = any(p["score"] >= 0.5 for p in passages)
    return {"passages": passages, "known": known, "not_known_below": 0.5}


def passage(text: str, score: float, title: str = "Zahnreinigung") -> dict[str, Any]:
    return {
        "text": text,
        "score": score,
        "title": title,
        "heading": None,
        "url": SOURCE_URL,
        "source_id": "ks_1",
        "chunk_id": "kc_1",
    }


class Knowledge:
    """Answers search_knowledge like the tool would; records the queries."""

    def __init__(self, answers: dict[str, dict[str, Any]]) -> None:
        self.answers = answers
        self.queries: list[str] = []

    def __call__(self, call: ToolCall) -> dict[str, Any]:
        if call.name != "search_knowledge":
            return {"ok": True}
        query = call.arguments["query"]
        self.queries.append(query)
        for word, result in self.answers.items():
            if word in query.lower():
                return result
        return search([passage("Unsere Praxis liegt im Zentrum.", 0.2, "Anfahrt")])


def dialogue(language: str = "de", **context: Any) -> tuple[Dialogue, Knowledge]:
    knowledge = Knowledge(
        {
            "reinigung": search([passage(CLEANING_DE, 0.82)]),
            "cleaning": search([passage(CLEANING_EN, 0.8, "Cleaning")]),
        }
    )
    d = Dialogue(practice(language, **context), offered=WITH_SEARCH, results=knowledge)
    return d, knowledge


async def test_a_question_is_answered_with_the_sentence_that_answers_it_and_the_source() -> None:
    d, knowledge = dialogue("de")
    await d.greet()
    turn = await d.say("Wie lange dauert eine Zahnreinigung?")
    assert knowledge.queries == ["Wie lange dauert eine Zahnreinigung?"]
    assert turn.text.startswith("Die Reinigung dauert etwa 45 bis 60 Minuten.")
    assert "89 Euro" not in turn.text and "Beläge" not in turn.text, "not a whole chunk"
    assert turn.sources == (Source(title="Zahnreinigung", url=SOURCE_URL),)
    assert turn.text.endswith("Wie lautet Ihr Name?"), "then back to the form"
    assert turn.rounds == 2


async def test_the_search_goes_out_alone_and_the_answer_follows_its_result() -> None:
    d, _ = dialogue("de")
    await d.greet()
    turn = await d.say("Was kostet die Reinigung der Zähne?")
    lookup = d.messages[-3]  # assistant (search), tool result, assistant (answer)
    assert lookup.role == "assistant" and lookup.content is None
    assert [c.name for c in lookup.tool_calls] == ["search_knowledge"]
    assert "89 Euro" in turn.text
    assert turn.finish == "stop"


async def test_an_english_question_finds_its_sentences() -> None:
    d, _ = dialogue("en")
    await d.greet()
    turn = await d.say("How much does a professional cleaning cost?")
    assert turn.text.startswith("It costs 89 euros; many supplementary insurances cover it.")
    assert "twice a year" not in turn.text
    assert turn.sources == (Source(title="Cleaning", url=SOURCE_URL),)


async def test_below_the_threshold_it_says_it_does_not_know_and_passes_the_question_on() -> None:
    concern = QualificationField(key="anliegen", labels={"de": "Ihr Anliegen"}, required=False)
    d, _ = dialogue("de", qualification=(*practice("de").qualification, concern))
    await d.greet()
    turn = await d.say("Kann man bei Ihnen mit Bitcoin bezahlen?")
    assert "keine sichere Antwort" in turn.text and "weiter" in turn.text
    assert turn.sources == ()
    assert d.captured["anliegen"] == "Kann man bei Ihnen mit Bitcoin bezahlen?"
    assert turn.text.endswith("Wie lautet Ihr Name?")


async def test_no_passages_or_a_failed_search_is_not_knowing() -> None:
    for result in (search([]), {"ok": False, "error": "no knowledge base"}):
        d = Dialogue(practice("en"), offered=WITH_SEARCH, results=lambda call, r=result: r)
        await d.greet()
        turn = await d.say("Do you offer teeth whitening?")
        assert "can't find a reliable answer" in turn.text
        assert turn.sources == ()


async def test_faq_hours_and_the_form_need_no_search() -> None:
    d, knowledge = dialogue("de")
    await d.greet()
    assert (await d.say("Haben Sie Parkplätze?")).text.startswith("Direkt vor der Praxis")
    assert "Öffnungszeiten" in (await d.say("Wann haben Sie geöffnet?")).text
    await d.say("Max Muster")
    assert knowledge.queries == []


async def test_without_the_tool_the_question_is_passed_on_as_before() -> None:
    d = Dialogue(practice("de"))
    await d.greet()
    turn = await d.say("Wie lange dauert eine Zahnreinigung?")
    assert "nicht sicher beantworten" in turn.text
    assert all(c.name != "search_knowledge" for c in turn.calls)


async def test_a_knowledge_answer_is_the_same_on_every_replay() -> None:
    async def run() -> list[tuple[str, tuple[Source, ...]]]:
        d, _ = dialogue("de")
        await d.greet()
        for line in ("Hallo, wie lange dauert eine Zahnreinigung?", "Max Muster", "Bitcoin?"):
            await d.say(line)
        return [(t.text, t.sources) for t in d.turns]

    assert await run() == await run()


# --- choosing the sentences -------------------------------------------------------------------


def test_abbreviations_and_list_marks_do_not_break_sentences() -> None:
    text = "## Team\n- Dr. Sonnenschein behandelt z. B. Kinder.\n- Wir haben ca. 5 Plätze."
    assert split_sentences(text) == [
        "Team",
        "Dr. Sonnenschein behandelt z. B. Kinder.",
        "Wir haben ca. 5 Plätze.",
    ]


def test_compound_parts_and_stems_match() -> None:
    text = (
        "Wir bieten Implantate aus Titan an. Die Behandlung von Kindern ist uns wichtig. "
        "Für Angstpatienten nehmen wir uns besonders viel Zeit."
    )
    assert answer_sentences(text, "Behandeln Sie auch Patienten mit Angst?") == (
        "Für Angstpatienten nehmen wir uns besonders viel Zeit."
    )
    assert answer_sentences(text, "Werden Kinder behandelt?") == (
        "Die Behandlung von Kindern ist uns wichtig."
    )


def test_at_most_three_sentences_in_their_original_order() -> None:
    text = " ".join(f"Parkplatz {n} liegt an der Straße {n}." for n in range(6))
    chosen = answer_sentences(text, "Wo ist ein Parkplatz an der Straße?")
    assert chosen.count(".") == 3
    assert chosen.startswith("Parkplatz 0")


def test_the_result_names_its_threshold() -> None:
    result = {"passages": [passage(CLEANING_DE, 0.45)], "not_known_below": 0.4}
    found = answer_from(result, "Wie lange dauert die Zahnreinigung?")
    assert found is not None and found.text.startswith("Die Reinigung dauert")
    assert answer_from({**result, "not_known_below": 0.5}, "Wie lange dauert das?") is None


async def test_the_protocol_a_tool_result_as_last_message_gets_the_answer() -> None:
    # What the turn loop sends in its second round: the question, the engine's lookup, and the
    # tool's result; the engine answers, cites the source and finishes.
    engine = OfflineEngine(clock=lambda: INSIDE)
    question = ChatMessage(role="user", content="Wie lange dauert eine Zahnreinigung?")
    first = [
        e
        async for e in engine.stream(
            CompletionRequest(
                messages=(question,), tools=tools(*WITH_SEARCH), context=practice("de")
            )
        )
    ]
    [lookup] = [e.call for e in first if isinstance(e, ToolCallEvent)]
    assert lookup.name == "search_knowledge" and first[-1] == Finished(reason="tool_calls")
    assert not [e for e in first if isinstance(e, TextDelta)]

    history = (
        question,
        ChatMessage(role="assistant", content=None, tool_calls=(lookup,)),
        ChatMessage(
            role="tool",
            content=json.dumps(search([passage(CLEANING_DE, 0.9)])),
            tool_call_id=lookup.id,
        ),
    )
    second = [
        e
        async for e in engine.stream(
            CompletionRequest(messages=history, tools=tools(*WITH_SEARCH), context=practice("de"))
        )
    ]
    text = "".join(e.text for e in second if isinstance(e, TextDelta))
    assert text.startswith("Die Reinigung dauert etwa 45 bis 60 Minuten.")
    assert Sources(items=(Source(title="Zahnreinigung", url=SOURCE_URL),)) in second
    assert second[-1] == Finished(reason="stop")
