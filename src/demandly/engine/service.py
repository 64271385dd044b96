"""The turn loop: the only way any channel talks to an agent.

A turn never holds a database transaction while the model thinks: it stores the visitor's
message and reads what it needs in one short transaction, streams the model's answer with no
transaction open, then stores the answer and runs the tools in a second one. (On PostgreSQL
the model's request goes out while the first transaction commits; what it says is shown only
after.) A model that fails or times out yields a polite fallback; the conversation goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from demandly.agents import service as agents
from demandly.agents.models import AgentVersion
from demandly.config import Settings
from demandly.conversations import service as conversations
from demandly.conversations.models import Conversation, ConversationStatus, Message, MessageRole
from demandly.conversations.service import NewMessage
from demandly.engine.offline.hours import is_open, local_now
from demandly.engine.offline.texts import language_of, say
from demandly.engine.prompt import system_prompt
from demandly.engine.providers.base import (
    AgentContext,
    ChatMessage,
    CompletionRequest,
    Finished,
    LLMProvider,
    ProviderError,
    ProviderEvent,
    QuickReplies,
    Sources,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolSpec,
    Usage,
)
from demandly.engine.tools import PROGRESS_SIGNALS, ToolContext, run_tool, specs_for
from demandly.kit.cache import TTLCache
from demandly.kit.context import Actor, Scope
from demandly.kit.crypto import hash_token
from demandly.kit.db import Database, set_scope
from demandly.kit.logging import get_logger
from demandly.tenancy.models import Client

log = get_logger(__name__)

MAX_MODEL_ROUNDS = 4
# The model sees at most this many of the latest messages.
HISTORY_LIMIT = 60
# Tools whose success moves a conversation on (the "handoff after N turns without progress"
# rule), besides captured lead details.
PROGRESS_TOOLS = frozenset(
    {"check_availability", "book_appointment", "reschedule_appointment", "cancel_appointment"}
)
BUILT_IN_TOOLS = frozenset({"save_lead_details", "request_handoff", "end_conversation"})
FALLBACK = {
    "de": "Entschuldigung, ich habe gerade technische Schwierigkeiten. Ihre Angaben sind "
    "gespeichert, und das Team meldet sich bei Ihnen.",
    "en": "Sorry, I'm having technical difficulties right now. Your details are saved and "
    "the team will get back to you.",
}


def _needs_results(provider: LLMProvider, calls: list[ToolCall]) -> bool:
    """A model that calls tools usually needs their results to go on. The offline engine
    answers and calls tools in one go, except for the tools it names as needing a second
    round (looking up availability or knowledge before it can answer)."""
    if getattr(provider, "needs_tool_results", True):
        return True
    wanted: frozenset[str] = getattr(provider, "tools_needing_results", frozenset())
    return any(call.name in wanted for call in calls)


@dataclass(frozen=True)
class EngineEvent:
    """What a channel shows: ``delta`` {text}, ``quick_replies`` {options}, ``message``
    {message}, ``handoff`` {reason}, ``ended`` {reason}."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EventBatch:
    """Events a channel can send together (``TurnRunner.answer_in_batches``)."""

    events: list[EngineEvent]
    last: bool = False


@dataclass(frozen=True)
class VisitorAccess:
    """A visitor's bearer token for one conversation, checked in the turn's first transaction
    (no separate look-up). ``admit`` runs once the conversation is known, before anything is
    stored: it raises to refuse the message (rate limits)."""

    token: str
    admit: Callable[[Conversation], None] = lambda conversation: None


@dataclass
class _Prepared:
    conversation: Conversation
    context: AgentContext
    enabled_tools: frozenset[str]
    request: CompletionRequest
    provider: LLMProvider
    handoff_after: int | None
    # Messages of the turn read into the request but not stored yet: the answer's store
    # writes them with its own, in one statement.
    unstored: tuple[conversations.NewMessage, ...] = ()


ProviderFactory = Callable[[Settings, "agents.ResolvedLLM | None"], LLMProvider]


# One provider (and so one HTTP connection pool) per endpoint, key and model, not per turn.
_providers = TTLCache[tuple[str, str, str], LLMProvider](ttl_seconds=3600, max_items=256)


def default_provider(settings: Settings, llm: agents.ResolvedLLM | None) -> LLMProvider:
    """The offline engine when no model is configured, else the OpenAI-compatible one."""
    if llm is None:
        from demandly.engine.offline import OfflineEngine

        return OfflineEngine()
    from demandly.engine.providers.openai_compat import OpenAICompatibleProvider

    key = (llm.base_url, hash_token(llm.api_key or ""), llm.model)
    provider = _providers.get(key)
    if provider is None:
        provider = OpenAICompatibleProvider(llm.base_url, llm.api_key, llm.model)
        _providers.put(key, provider)
    return provider


def opening_greeting(context: AgentContext, now: datetime | None = None) -> str:
    """The conversation's first message on every channel: the agent's greeting (or one in its
    persona's words) and, when the agent keeps opening hours and it is closed now, the
    out-of-hours message, so nobody waits for a person who is not there."""
    greeting = conversations.greeting_text(
        context.greeting, context.language, context.persona_name, context.business_name
    )
    clock = (lambda: now) if now is not None else None
    if not context.opening_hours or is_open(context, local_now(clock, context)):
        return greeting
    language = language_of(context.language)
    notice = context.out_of_hours_message or say(language, "out_of_hours_default")
    return f"{greeting.rstrip()} {notice.strip()}"


def message_view(message: Message | NewMessage) -> dict[str, Any]:
    """A message as channels show it (tool traffic stays internal)."""
    return {
        "id": message.id,
        "seq": message.seq,
        "role": message.role,
        "content": message.content,
        "quick_replies": list(message.quick_replies or []),
        "sources": list(message.sources or []),
        "created_at": message.created_at.isoformat(),
    }


def _message_event(message: Message | NewMessage) -> EngineEvent:
    return EngineEvent("message", {"message": message_view(message)})


def visible(message: Message | NewMessage) -> bool:
    return message.role != MessageRole.TOOL and bool(message.content)


class TurnRunner:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        provider_factory: ProviderFactory = default_provider,
    ) -> None:
        self.db = db
        self.settings = settings
        self.provider_factory = provider_factory

    async def run(
        self,
        scope: Scope,
        conversation_id: str,
        text: str,
        *,
        actor: Actor | None = None,
        client_message_id: str | None = None,
    ) -> AsyncIterator[EngineEvent]:
        """Take the visitor's ``text`` and stream the agent's answer as events."""
        turn = await self.begin(
            scope, conversation_id, text, actor=actor, client_message_id=client_message_id
        )
        async for event in self.answer(turn):
            yield event

    async def begin(
        self,
        who: Scope | VisitorAccess,
        conversation_id: str,
        text: str,
        *,
        actor: Actor | None = None,
        client_message_id: str | None = None,
    ) -> Turn:
        """The turn's first transaction: find the conversation (for a visitor, by the token,
        in the same transaction), store the visitor's message and read what the model needs.
        Raises before anything is stored when the conversation may not take the message; a
        visitor's token that does not fit raises ``NotFound``."""
        # A visitor's turn begins in its workspace once this process has seen it.
        first = who if isinstance(who, Scope) else _workspaces.get(conversation_id)
        async with self.db.session(first or Scope.for_system(), actor, reuse_plans=True) as session:
            counted = await self._count_message(
                session, who, conversation_id, actor, client_message_id
            )
            if counted is not None:
                conversation, scope = counted
                turn = Turn(scope=scope, actor=actor, conversation=conversation)
                user_message = conversations.new_message(
                    conversation,
                    conversation.message_count,
                    MessageRole.USER,
                    text,
                    client_message_id=client_message_id,
                )
                turn.events.append(_message_event(user_message))
                return await self._end_first_transaction(session, turn, [user_message])
            # A retry of a message already stored.
            if isinstance(who, VisitorAccess):
                who = VisitorAccess(who.token)  # admitted already
            conversation, scope = await self._open(session, who, conversation_id, actor)
            conversations.ensure_open(conversation)
            turn = Turn(scope=scope, actor=actor, conversation=conversation)
            repeat = None
            if client_message_id:
                repeat = await conversations.repeat_of(session, conversation, client_message_id)
            if repeat is not None:
                turn.events += [_message_event(m) for m in repeat]
                if len(repeat) > 1 or repeat[0].seq != conversation.message_count:
                    return turn
                # Stored, but its answer never was (the server stopped mid-turn): answer now.
            else:
                user_message = await conversations.append(
                    session,
                    conversation,
                    MessageRole.USER,
                    text,
                    client_message_id=client_message_id,
                )
                turn.events.append(_message_event(user_message))
            return await self._end_first_transaction(session, turn)

    async def _end_first_transaction(
        self,
        session: AsyncSession,
        turn: Turn,
        unstored: Sequence[conversations.NewMessage] = (),
    ) -> Turn:
        """The end of the first transaction: what the model needs read, all of it stored
        (``unstored``, the visitor's message, too).
        A provider that answers at once (the offline engine: in this process, nothing to
        wait for) answers in this transaction too: one transaction instead of two (on SQLite
        one turn of the database's single write lock; on PostgreSQL a quarter to a third
        less of the server's CPU per turn), and the visitor's message is written with the
        answer; the events are sent once it has committed. A streaming provider's turn keeps
        two, so that no transaction stays open while the model answers. On PostgreSQL its
        request goes out as this transaction writes and commits (``_Answer``, ``ahead``): the
        SDK's work and the way to the model overlap the database's; nothing of the answer is
        shown before the commit, and a failed commit closes the request unread."""
        if turn.conversation.status != ConversationStatus.HANDOFF:  # else a person answers
            turn.prepared = await self._prepare(session, turn.conversation, unstored)
            if getattr(turn.prepared.provider, "answers_at_once", False):
                turn.prepared = replace(turn.prepared, unstored=tuple(unstored))
                turn.answered = [batch async for batch in self._rounds(turn, session)]
                unstored = ()  # stored with the answer
            elif self.db.dialect != "sqlite":
                # SQLite runs the statements in this thread, on its one connection: a request
                # begun now would only add its own CPU to that connection's hold. A database
                # server's statements wait on the network, and the request goes out meanwhile.
                turn.early = _Answer(turn.prepared.provider, turn.prepared.request, ahead=True)
        try:
            await conversations.store_messages(session, unstored)
            await session.commit()
        except BaseException:
            if turn.early is not None:
                await turn.early.aclose()
            raise
        return turn

    async def _count_message(
        self,
        session: AsyncSession,
        who: Scope | VisitorAccess,
        conversation_id: str,
        actor: Actor | None,
        client_message_id: str | None,
    ) -> tuple[Conversation, Scope] | None:
        """A new message: the conversation found (for a visitor, by the token), locked and
        the message's position reserved in one statement (a refusal raises, and the
        session's rollback undoes it). None, with the transaction rolled back, when the
        message is a retry of one already stored: ``_open`` then answers it as before."""
        if isinstance(who, Scope):
            conversation, scope = await conversations.advance(session, conversation_id, 1), who
        else:
            conversation = await conversations.count_visitor_message(
                session, conversation_id, who.token
            )
            scope = remember_workspace(conversation)  # the token fits: it is the visitor's
            await set_scope(session, scope, actor)
            who.admit(conversation)
        conversations.ensure_open(conversation)
        if client_message_id and await conversations.repeat_of(
            session, conversation, client_message_id
        ):
            await session.rollback()
            return None
        return conversation, scope

    async def _open(
        self,
        session: AsyncSession,
        who: Scope | VisitorAccess,
        conversation_id: str,
        actor: Actor | None,
    ) -> tuple[Conversation, Scope]:
        if isinstance(who, Scope):
            return await conversations.get(session, conversation_id, for_update=True), who
        conversation = await conversations.by_visitor_token(
            session, conversation_id, who.token, for_update=True
        )
        scope = remember_workspace(conversation)
        await set_scope(session, scope, actor)
        who.admit(conversation)
        return conversation, scope

    async def answer(self, turn: Turn) -> AsyncIterator[EngineEvent]:
        """The events of a begun turn: what its first transaction stored, then the agent's
        answer, streamed with no transaction open, then what storing it brought."""
        async for batch in self.answer_in_batches(turn):
            for event in batch.events:
                yield event

    async def answer_in_batches(self, turn: Turn) -> AsyncIterator[EventBatch]:
        """``answer``'s events in batches of those available together, for a channel to send
        each batch at once: a provider that streams sends every delta as it comes (the
        events stored before it go first, not held for its first delta); one that computes
        its answer at once (``answers_at_once``, the offline engine) sends them all with the
        turn's stored events; what storing each round brought follows as one batch. The
        last batch (``last``, possibly empty) ends the turn."""
        if turn.answered is not None:  # answered in the turn's first transaction
            for batch in turn.answered:
                yield batch
            return
        async for batch in self._rounds(turn):
            yield batch

    async def _rounds(
        self, turn: Turn, session: AsyncSession | None = None
    ) -> AsyncIterator[EventBatch]:
        """The model's rounds of a turn, each stored in a transaction of its own, or all in
        ``session`` (left to its owner to commit)."""
        batch = list(turn.events)
        prepared = turn.prepared
        if prepared is None:
            yield EventBatch(batch, last=True)
            return
        scope, actor = turn.scope, turn.actor
        progressed = False
        cited: list[dict[str, str | None]] = []
        early, turn.early = turn.early, None
        for round_number in range(1, MAX_MODEL_ROUNDS + 1):
            at_once = getattr(prepared.provider, "answers_at_once", False)
            outcome = _Outcome()
            if batch and not at_once:
                yield EventBatch(batch)
                batch = []
            answer = early or _Answer(prepared.provider, prepared.request)
            early = None
            async for event in self._stream(prepared, answer, outcome):
                if at_once:
                    batch.append(event)
                else:
                    yield EventBatch([event])
            if batch:
                yield EventBatch(batch)
            if outcome.text and not outcome.sources:
                outcome.sources = cited
            wants_more = (
                _needs_results(prepared.provider, outcome.tool_calls)
                and outcome.finish == "tool_calls"
                and bool(outcome.tool_calls)
                and round_number < MAX_MODEL_ROUNDS
            )
            result = await self._store(
                scope,
                actor,
                prepared,
                outcome,
                final=not wants_more,
                progressed=progressed,
                session=session,
            )
            progressed = progressed or result.progressed
            cited = _merge_sources(cited, result.sources)
            batch = result.events  # held: the last batch unless another round follows
            if not (wants_more and result.active):
                break
            if batch:
                yield EventBatch(batch)
                batch = []
            prepared = await self._refresh(scope, actor, prepared, session)
        yield EventBatch(batch, last=True)

    async def _prepare(
        self,
        session: AsyncSession,
        conversation: Conversation,
        unstored: Sequence[conversations.NewMessage] = (),
    ) -> _Prepared:
        setup = await self._setup(session, conversation)
        # ``unstored``: the turn's own message, read into the request before it is written.
        history = await conversations.history(session, conversation.id, HISTORY_LIMIT, unstored)
        llm = setup.llm
        request = CompletionRequest(
            messages=(setup.system, *map(_chat_message, history)),
            tools=setup.tools,
            model=llm.model if llm else None,
            temperature=llm.temperature if llm else None,
            max_tokens=llm.max_tokens if llm else None,
            context=setup.context,
        )
        return _Prepared(
            conversation=conversation,
            context=setup.context,
            enabled_tools=setup.enabled,
            request=request,
            provider=self.provider_factory(self.settings, llm),
            handoff_after=setup.handoff_after,
        )

    async def _setup(self, session: AsyncSession, conversation: Conversation) -> _Setup:
        cached = _setups.get(conversation.agent_version_id)
        if cached is not None:
            return cached
        version = await session.get(AgentVersion, conversation.agent_version_id)
        client = await session.get(Client, conversation.client_id)
        if version is None or client is None:
            raise ProviderError("the agent version or client is gone")
        definition = agents.definition_of(version)
        context = agents.agent_context(version, client)
        enabled = frozenset(definition.tools) | BUILT_IN_TOOLS
        setup = _Setup(
            context=context,
            enabled=enabled,
            tools=specs_for(sorted(enabled)),
            system=ChatMessage("system", system_prompt(context)),
            llm=await agents.llm_for(session, self.settings, version),
            handoff_after=definition.handoff.after_turns_without_progress,
        )
        _setups.put(conversation.agent_version_id, setup)
        return setup

    async def _refresh(
        self,
        scope: Scope,
        actor: Actor | None,
        prepared: _Prepared,
        session: AsyncSession | None = None,
    ) -> _Prepared:
        async with self._unit(scope, actor, session) as unit:
            history = await conversations.history(unit, prepared.conversation.id, HISTORY_LIMIT)
        system = prepared.request.messages[0]
        request = CompletionRequest(
            messages=(system, *map(_chat_message, history)),
            tools=prepared.request.tools,
            model=prepared.request.model,
            temperature=prepared.request.temperature,
            max_tokens=prepared.request.max_tokens,
            context=prepared.context,
        )
        return replace(prepared, request=request, unstored=())

    async def _stream(
        self, prepared: _Prepared, answer: _Answer, outcome: _Outcome
    ) -> AsyncIterator[EngineEvent]:
        try:
            async for event in answer:
                if isinstance(event, TextDelta):
                    outcome.text.append(event.text)
                    yield EngineEvent("delta", {"text": event.text})
                elif isinstance(event, ToolCallEvent):
                    outcome.tool_calls.append(event.call)
                elif isinstance(event, QuickReplies):
                    outcome.quick_replies = list(event.options)
                elif isinstance(event, Sources):
                    outcome.sources = [{"title": s.title, "url": s.url} for s in event.items]
                elif isinstance(event, Usage):
                    outcome.usage = event
                elif isinstance(event, Finished):
                    outcome.finish = event.reason
        except Exception as exc:  # any provider failure degrades, never drops the visitor
            log.warning(
                "provider_failed",
                conversation_id=prepared.conversation.id,
                provider=getattr(prepared.provider, "name", "?"),
                error_type=type(exc).__name__,
            )
            fallback = FALLBACK.get(prepared.context.language, FALLBACK["en"])
            if not outcome.text:
                outcome.text = [fallback]
                yield EngineEvent("delta", {"text": fallback})
            outcome.tool_calls = []
            outcome.finish = "error"
            outcome.model = "fallback"
        finally:
            await answer.aclose()
        outcome.latency_ms = int((time.perf_counter() - answer.started) * 1000)
        if outcome.model is None:
            outcome.model = prepared.request.model or getattr(prepared.provider, "name", None)

    async def _store(
        self,
        scope: Scope,
        actor: Actor | None,
        prepared: _Prepared,
        outcome: _Outcome,
        *,
        final: bool,
        progressed: bool,
        session: AsyncSession | None = None,
    ) -> _Stored:
        """Store the answer and run its tools, in a transaction of its own unless
        ``session`` is given; on the turn's last round, count whether the turn got anywhere
        (the "handoff after N turns without progress" rule)."""
        async with self._unit(scope, actor, session) as session:
            events: list[EngineEvent] = []
            answering = bool(outcome.text or outcome.tool_calls)
            # The answer and one result per tool call; the turn counted as one without progress
            # until a tool says otherwise (``_count_progress``).
            conversation = await conversations.advance(
                session,
                prepared.conversation.id,
                1 + len(outcome.tool_calls) if answering else 0,
                turns_without_progress=0 if final and progressed else None,
                one_more_turn_without_progress=final and not progressed,
            )
            tools = ToolContext(session=session, conversation=conversation, agent=prepared.context)
            sources: list[dict[str, str | None]] = []
            if answering:
                events += await self._store_answer(
                    session, conversation, tools, prepared, outcome, sources
                )
            else:
                await conversations.store_messages(session, prepared.unstored)
            kinds = {kind: data for kind, data in tools.signals}
            progressed = progressed or not PROGRESS_SIGNALS.isdisjoint(kinds)
            if final:
                await self._count_progress(session, conversation, prepared, progressed, kinds)
            events += await self._apply_signals(session, conversation, kinds)
            return _Stored(
                events=events,
                sources=sources,
                progressed=progressed,
                active=conversation.status == ConversationStatus.ACTIVE,
            )

    @contextlib.asynccontextmanager
    async def _unit(
        self, scope: Scope, actor: Actor | None, session: AsyncSession | None
    ) -> AsyncIterator[AsyncSession]:
        """``session`` when the turn's first transaction is still open (its owner commits),
        else a transaction of its own, committed at the end."""
        if session is not None:
            yield session
            return
        async with self.db.session(scope, actor, reuse_plans=True) as own:
            yield own
            await own.commit()

    async def _store_answer(
        self,
        session: AsyncSession,
        conversation: Conversation,
        tools: ToolContext,
        prepared: _Prepared,
        outcome: _Outcome,
        sources: list[dict[str, str | None]],
    ) -> list[EngineEvent]:
        """Store the answer and its tool results at the positions ``advance`` reserved;
        ``sources`` collects what knowledge searches found, so the answer a model gives from
        them cites them."""
        seq = conversation.message_count - len(outcome.tool_calls)
        reply = conversations.new_message(
            conversation,
            seq,
            MessageRole.ASSISTANT,
            "".join(outcome.text) or None,
            tool_calls=[_call_json(c) for c in outcome.tool_calls],
            quick_replies=outcome.quick_replies,
            sources=outcome.sources,
            model=outcome.model,
            prompt_tokens=outcome.usage.prompt_tokens if outcome.usage else None,
            completion_tokens=outcome.usage.completion_tokens if outcome.usage else None,
            latency_ms=outcome.latency_ms,
        )
        stored = [*prepared.unstored, reply]
        for offset, call in enumerate(outcome.tool_calls, start=1):
            result = await run_tool(tools, call, prepared.enabled_tools)
            sources.extend(_cited_sources(result))
            if result.get("ok") and call.name in PROGRESS_TOOLS:
                tools.signal("progress", tool=call.name)
            stored.append(
                conversations.new_message(
                    conversation,
                    seq + offset,
                    MessageRole.TOOL,
                    _json(result),
                    tool_call_id=call.id,
                )
            )
        await conversations.store_messages(session, stored)
        return [EngineEvent("message", {"message": message_view(reply)})] if visible(reply) else []

    async def _count_progress(
        self,
        session: AsyncSession,
        conversation: Conversation,
        prepared: _Prepared,
        progressed: bool,
        kinds: dict[str, dict[str, Any]],
    ) -> None:
        """Hand off after too many turns without progress (a ``handoff`` in ``kinds``).
        ``advance`` already counted the turn as one without progress (or reset the count
        when an earlier round progressed); a tool of this round that made progress reset it
        when it said so (``ToolContext.signal``)."""
        limit = prepared.handoff_after
        if (
            not progressed
            and limit
            and conversation.turns_without_progress >= limit
            and "handoff" not in kinds
            and await conversations.request_handoff(session, conversation, "no progress")
        ):
            kinds["handoff"] = {"reason": "no progress"}

    async def _apply_signals(
        self, session: AsyncSession, conversation: Conversation, kinds: dict[str, dict[str, Any]]
    ) -> list[EngineEvent]:
        events: list[EngineEvent] = []
        if "handoff" in kinds:
            events.append(EngineEvent("handoff", {"reason": kinds["handoff"].get("reason")}))
        if "end" in kinds:
            reason = str(kinds["end"].get("reason") or "finished")
            if await conversations.end(session, conversation, reason):
                events.append(EngineEvent("ended", {"reason": reason}))
        return events


@dataclass(frozen=True)
class _Setup:
    """What a turn needs of its agent version; a version never changes."""

    context: AgentContext
    enabled: frozenset[str]
    tools: tuple[ToolSpec, ...]
    system: ChatMessage
    llm: agents.ResolvedLLM | None
    handoff_after: int | None


# Kept briefly: the client's name or time zone and the agency's provider connection can change
# under a version, and turns see such a change within SETUP_CACHE_SECONDS.
SETUP_CACHE_SECONDS = 30
_setups = TTLCache[str, _Setup](ttl_seconds=SETUP_CACHE_SECONDS, max_items=2000)

# The workspace a conversation belongs to never changes. A visitor's next turn begins in it (the
# token is still checked, inside it), so that PostgreSQL's row-level security is set once, as
# the transaction begins, instead of again after the token check: one round trip a turn.
_workspaces = TTLCache[str, Scope](ttl_seconds=3600, max_items=20_000)


def remember_workspace(conversation: Conversation) -> Scope:
    """The conversation's workspace, kept for its visitor's next turn (the start's too, so
    that the first turn begins in it)."""
    scope = Scope.for_client(conversation.agency_id, conversation.client_id)
    _workspaces.put(conversation.id, scope)
    return scope


_END = object()


class _Answer:
    """A provider's answer to one round, iterated once. ``ahead``: its first event is asked
    for at once, in a task of its own. A turn begins its first round so before its first
    transaction writes and commits, and the request (the SDK's work, the way to the model
    and the model's own) runs meanwhile. The events reach the visitor only through
    iteration, which the turn starts after the commit; a turn whose commit fails closes the
    answer unread."""

    def __init__(
        self, provider: LLMProvider, request: CompletionRequest, *, ahead: bool = False
    ) -> None:
        self.started = time.perf_counter()
        self._events = aiter(provider.stream(request))
        self._first: asyncio.Future[Any] | None = None
        if ahead:
            self._first = asyncio.ensure_future(anext(self._events, _END))
            # A turn dropped unanswered must not log "exception was never retrieved".
            self._first.add_done_callback(_retrieve_exception)

    async def __aiter__(self) -> AsyncIterator[ProviderEvent]:
        if self._first is not None:
            first = await self._first
            if first is _END:
                return
            yield first
        async for event in self._events:
            yield event

    async def aclose(self) -> None:
        """Stop asking (the provider's own ``finally`` closes its response)."""
        if self._first is not None and not self._first.done():
            self._first.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._first
        close = getattr(self._events, "aclose", None)
        if close is not None:
            await close()


def _retrieve_exception(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


@dataclass
class Turn:
    """A turn after its first transaction (``TurnRunner.begin``): ``prepared`` is None when
    the agent has nothing to answer (a person answers, or a retried message was answered)."""

    scope: Scope
    actor: Actor | None
    conversation: Conversation
    events: list[EngineEvent] = field(default_factory=list)
    prepared: _Prepared | None = None
    # The answer's batches, when it was stored in the turn's first transaction.
    answered: list[EventBatch] | None = None
    # The streaming provider's answer, begun before the first transaction committed.
    early: _Answer | None = None


@dataclass
class _Stored:
    events: list[EngineEvent]
    sources: list[dict[str, str | None]]
    progressed: bool
    active: bool


@dataclass
class _Outcome:
    text: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    quick_replies: list[str] = field(default_factory=list)
    sources: list[dict[str, str | None]] = field(default_factory=list)
    usage: Usage | None = None
    finish: str = "stop"
    model: str | None = None
    latency_ms: int = 0


def _chat_message(message: Any) -> ChatMessage:
    if message.role == MessageRole.TOOL:
        return ChatMessage("tool", message.content, tool_call_id=message.tool_call_id)
    if message.role == MessageRole.USER:
        return ChatMessage("user", message.content)
    calls = tuple(
        ToolCall(id=c["id"], name=c["name"], arguments=c.get("arguments") or {})
        for c in (message.tool_calls or [])
    )
    # A person's answer during a handoff reads to the model as the business speaking.
    return ChatMessage("assistant", message.content, tool_calls=calls)


MAX_SOURCES = 5


def _cited_sources(result: dict[str, Any]) -> list[dict[str, str | None]]:
    """The title and URL of each passage a knowledge search returned."""
    passages = result.get("passages") if result.get("ok") else None
    if not isinstance(passages, list):
        return []
    return [
        {"title": str(p.get("title") or ""), "url": p.get("url")}
        for p in passages
        if isinstance(p, dict) and (p.get("title") or p.get("url"))
    ]


def _merge_sources(
    known: list[dict[str, str | None]], new: list[dict[str, str | None]]
) -> list[dict[str, str | None]]:
    merged = list(known)
    seen = {(s["title"], s["url"]) for s in merged}
    for source in new:
        key = (source["title"], source["url"])
        if key not in seen and len(merged) < MAX_SOURCES:
            seen.add(key)
            merged.append(source)
    return merged


def _call_json(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "name": call.name, "arguments": call.arguments}


def _json(value: dict[str, Any]) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
