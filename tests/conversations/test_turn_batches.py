"""A turn's events in the batches a channel sends at once: a streaming model's deltas go out
one by one as they come (the visitor's stored message before the first of them), the offline
engine's whole answer together with the visitor's message; the last batch says it is. A
model is asked while the visitor's message is being committed, and nothing of its answer
goes out before that commit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from demandly.config import Settings
from demandly.conversations import service as conversations
from demandly.engine.providers.base import CompletionRequest, Finished, ProviderEvent, TextDelta
from demandly.engine.service import EngineEvent, EventBatch, Turn, TurnRunner, VisitorAccess
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.kit.errors import Gone
from tests.conversations.conftest import PublishedAgent, start


class StreamingModel:
    """A model that streams two deltas, counting those it produced."""

    name = "streaming"

    def __init__(self) -> None:
        self.produced = 0

    async def stream(self, request: CompletionRequest) -> AsyncIterator[ProviderEvent]:
        for text in ("Guten ", "Tag"):
            self.produced += 1
            yield TextDelta(text=text)
        yield Finished(reason="stop")


class GatedModel:
    """A model that says nothing until its gate opens; it notes whether it was asked and
    whether its request was closed."""

    name = "gated"

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.asked = False
        self.closed = False

    async def stream(self, request: CompletionRequest) -> AsyncIterator[ProviderEvent]:
        self.asked = True
        try:
            await self.gate.wait()
            yield TextDelta(text="Gern.")
            yield Finished(reason="stop")
        finally:
            self.closed = True


async def begun(
    runner: TurnRunner, visitor: httpx.AsyncClient, agent: PublishedAgent, text: str
) -> Turn:
    started = await start(visitor, agent.public_key)
    scope = Scope.for_client(agent.tenant.agency.id, agent.tenant.clients[0].id)
    return await runner.begin(scope, started["conversation_id"], text)


def kinds(batch: EventBatch) -> list[str]:
    return [event.type for event in batch.events]


def role(event: EngineEvent) -> Any:
    return event.data["message"]["role"]


async def test_a_streaming_model_s_deltas_go_out_one_by_one_as_they_come(
    db: Database, settings: Settings, visitor: httpx.AsyncClient, agent: PublishedAgent
) -> None:
    gated = GatedModel()
    runner = TurnRunner(db, settings, provider_factory=lambda settings, llm: gated)
    batches = runner.answer_in_batches(await begun(runner, visitor, agent, "Hallo"))
    # The stored message goes out while the model has not said a word yet (a guard against
    # waiting for its first delta: that would never come).
    stored = await asyncio.wait_for(anext(batches), 10)
    assert kinds(stored) == ["message"] and role(stored.events[0]) == "user"
    gated.gate.set()
    assert [e.type for b in [b async for b in batches] for e in b.events] == ["delta", "message"]

    model = StreamingModel()
    runner = TurnRunner(db, settings, provider_factory=lambda settings, llm: model)
    batches = runner.answer_in_batches(await begun(runner, visitor, agent, "Hallo"))
    stored = await anext(batches)
    assert kinds(stored) == ["message"] and role(stored.events[0]) == "user"
    first = await anext(batches)
    assert first.events == [EngineEvent("delta", {"text": "Guten "})]
    assert model.produced == 1  # handed out before the model went on
    rest = [batch async for batch in batches]
    assert rest[0].events == [EngineEvent("delta", {"text": "Tag"})]
    assert kinds(rest[-1]) == ["message"] and role(rest[-1].events[0]) == "assistant"
    assert rest[-1].last and not any(b.last for b in (stored, first, *rest[:-1]))


async def test_the_offline_engine_s_answer_goes_out_with_the_visitor_s_message(
    db: Database, settings: Settings, visitor: httpx.AsyncClient, agent: PublishedAgent
) -> None:
    runner = TurnRunner(db, settings)
    turn = await begun(runner, visitor, agent, "Guten Tag, ich hätte gern einen Termin.")
    batches = [batch async for batch in runner.answer_in_batches(turn)]

    first = batches[0]
    assert role(first.events[0]) == "user"
    assert len(first.events) > 2 and set(kinds(first)[1:]) == {"delta"}
    last = batches[-1]
    assert last.last and role(last.events[0]) == "assistant"
    answer = "".join(e.data["text"] for b in batches for e in b.events if e.type == "delta")
    assert last.events[0].data["message"]["content"] == answer
    # The flattened events are the same, in the same order (on a second conversation, with
    # the agent's setup cached: its history must see the visitor's message all the same).
    again = await begun(runner, visitor, agent, "Guten Tag, ich hätte gern einen Termin.")
    flat = [event.type for event in [e async for e in runner.answer(again)]]
    assert flat == [kind for batch in batches for kind in kinds(batch)]


async def test_the_offline_engine_s_turn_is_one_transaction_a_model_s_two(
    db: Database, settings: Settings, visitor: httpx.AsyncClient, agent: PublishedAgent
) -> None:
    """The offline engine answers in the turn's first transaction; a model (the network,
    seconds) is asked as the visitor's message is committed, its answer goes out after that
    commit, and it is stored in a second one."""
    commits: list[object] = []
    listen = event.listens_for(db.engine.sync_engine, "commit")

    def counted(connection: object) -> None:
        commits.append(connection)

    listen(counted)
    try:
        offline = TurnRunner(db, settings)
        turn = await begun(offline, visitor, agent, "Bieten Sie Zahnreinigung an?")
        commits.clear()  # (``begun`` started the conversation first)
        turn = await offline.begin(turn.scope, turn.conversation.id, "Und was kostet das?")
        answered = [batch async for batch in offline.answer_in_batches(turn)]
        assert len(commits) == 1 and answered[-1].last

        model = StreamingModel()
        streaming = TurnRunner(db, settings, provider_factory=lambda settings, llm: model)
        turn = await begun(streaming, visitor, agent, "Hallo")
        [batch async for batch in streaming.answer_in_batches(turn)]
        commits.clear()
        model.produced = 0
        turn = await streaming.begin(turn.scope, turn.conversation.id, "Noch eine Frage")
        assert len(commits) == 1  # the visitor's message; the model's answer not yet out
        [batch async for batch in streaming.answer_in_batches(turn)]
        assert len(commits) == 2 and model.produced == 2
    finally:
        event.remove(db.engine.sync_engine, "commit", counted)


async def _transcript(db: Database, conversation_id: str) -> list[tuple[int, str, str | None]]:
    async with db.session(Scope.for_system()) as session:
        stored = await conversations.messages(session, conversation_id)
        return [(m.seq, m.role, m.content) for m in stored]


async def test_a_visitor_s_message_is_stored_before_a_model_is_called_and_with_the_answer(
    db: Database, settings: Settings, visitor: httpx.AsyncClient, agent: PublishedAgent
) -> None:
    """By the visitor's token (the public chat's path): the visitor's message is stored
    before anything of a model's answer goes out; the offline engine's answer is stored with
    it (on SQLite in the same statement), and the engine read it all the same."""
    model = StreamingModel()
    streaming = TurnRunner(db, settings, provider_factory=lambda settings, llm: model)
    started = await start(visitor, agent.public_key)
    conversation_id = started["conversation_id"]
    turn = await streaming.begin(VisitorAccess(started["token"]), conversation_id, "Eine Frage")
    assert (await _transcript(db, conversation_id))[1:] == [(2, "user", "Eine Frage")]
    [batch async for batch in streaming.answer_in_batches(turn)]
    assert (await _transcript(db, conversation_id))[1:] == [
        (2, "user", "Eine Frage"),
        (3, "assistant", "Guten Tag"),
    ]

    offline = TurnRunner(db, settings)
    started = await start(visitor, agent.public_key)
    conversation_id = started["conversation_id"]
    text = "Bieten Sie Zahnreinigung an?"
    turn = await offline.begin(VisitorAccess(started["token"]), conversation_id, text)
    deltas = [event.data["text"] async for event in offline.answer(turn) if event.type == "delta"]
    answer = "".join(deltas)
    assert "89" in answer  # the FAQ's answer: the engine read the visitor's question
    assert (await _transcript(db, conversation_id))[1:] == [
        (2, "user", text),
        (3, "assistant", answer),
    ]


async def test_by_scope_an_ended_conversation_takes_nothing_and_a_retry_reserves_nothing(
    db: Database, settings: Settings, visitor: httpx.AsyncClient, agent: PublishedAgent
) -> None:
    """The channels that act in the client's scope (the phone, the socket): a retried message
    (Twilio's retry of a callback) is answered from what is stored, with no position reserved
    for it; an ended conversation refuses the message before anything is stored."""
    runner = TurnRunner(db, settings)
    turn = await begun(runner, visitor, agent, "Bieten Sie Zahnreinigung an?")
    conversation_id = turn.conversation.id
    [e async for e in runner.answer(turn)]
    again = await runner.begin(turn.scope, conversation_id, "Hallo", client_message_id="CA1:1")
    first = [e async for e in runner.answer(again)]
    stored = await _transcript(db, conversation_id)
    retried = await runner.begin(turn.scope, conversation_id, "Hallo", client_message_id="CA1:1")
    assert [e async for e in runner.answer(retried)] == [e for e in first if e.type == "message"]
    assert await _transcript(db, conversation_id) == stored

    async with db.session(Scope.for_system()) as session:
        conversation = await conversations.get(session, conversation_id)
        await conversations.end(session, conversation, "finished")
        await session.commit()
    with pytest.raises(Gone):
        await runner.begin(turn.scope, conversation_id, "Noch da?")
    assert await _transcript(db, conversation_id) == stored
    async with db.session(Scope.for_system()) as session:
        ended = await conversations.get(session, conversation_id)
        assert ended.message_count == len(stored)


async def test_a_model_is_asked_while_the_visitor_s_message_is_committed(
    db: Database, settings: Settings, visitor: httpx.AsyncClient, agent: PublishedAgent
) -> None:
    """On PostgreSQL the request to the model goes out before the first transaction commits
    (the model works while the database does); what it says is held until the turn is
    answered. On SQLite, whose one connection the transaction holds, it goes out after."""
    seen_at_commit: list[bool] = []
    gated = GatedModel()

    def note(session: Session) -> None:
        seen_at_commit.append(gated.asked)

    runner = TurnRunner(db, settings, provider_factory=lambda settings, llm: gated)
    started = await start(visitor, agent.public_key)
    event.listen(Session, "before_commit", note)
    try:
        turn = await runner.begin(
            VisitorAccess(started["token"]), started["conversation_id"], "Eine Frage"
        )
    finally:
        event.remove(Session, "before_commit", note)
    assert seen_at_commit == [db.dialect != "sqlite"]
    gated.gate.set()
    events = [e async for e in runner.answer(turn)]
    assert [e.type for e in events] == ["message", "delta", "message"]
    assert events[1].data == {"text": "Gern."}


async def test_a_failed_commit_closes_the_model_s_request_unread(
    db: Database, settings: Settings, visitor: httpx.AsyncClient, agent: PublishedAgent
) -> None:
    """When the visitor's message cannot be committed, a model's request begun meanwhile
    (PostgreSQL) is closed: no answer runs on for a message that was not kept. Nothing is
    stored."""
    gated = GatedModel()
    runner = TurnRunner(db, settings, provider_factory=lambda settings, llm: gated)
    started = await start(visitor, agent.public_key)
    conversation_id = started["conversation_id"]
    before = await _transcript(db, conversation_id)

    def fail(session: Session) -> None:
        raise RuntimeError("the database went away")

    event.listen(Session, "before_commit", fail)
    try:
        with pytest.raises(RuntimeError, match="went away"):
            await runner.begin(VisitorAccess(started["token"]), conversation_id, "Eine Frage")
    finally:
        event.remove(Session, "before_commit", fail)
    assert gated.asked == (db.dialect != "sqlite")
    assert gated.closed == gated.asked
    assert await _transcript(db, conversation_id) == before
