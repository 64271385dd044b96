"""Conversation rules: starting one, appending messages, handoff to a person, ending.

Nothing here talks to a model: the turn loop (engine/service.py) does, and calls these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from demandly.audit.service import record_change
from demandly.conversations.models import (
    Channel,
    Conversation,
    ConversationStatus,
    Message,
    MessageRole,
)
from demandly.conversations.repository import ConversationRepository
from demandly.jobs.service import emit
from demandly.kit.crypto import hash_token
from demandly.kit.errors import Conflict, Gone, NotFound
from demandly.kit.ids import new_id, random_token
from demandly.kit.time import utcnow

VISITOR_TOKEN_PREFIX = "vt_"
HANDOFF_REQUESTED = "handoff.requested"
CONVERSATION_STARTED = "conversation.started"
CONVERSATION_ENDED = "conversation.ended"

DEFAULT_GREETINGS = {
    "de": "Guten Tag! Ich bin {persona} von {business}. Wie kann ich Ihnen helfen?",
    "en": "Hello! I'm {persona} from {business}. How can I help you?",
}


def greeting_text(greeting: str | None, language: str, persona: str, business: str) -> str:
    if greeting:
        return greeting
    template = DEFAULT_GREETINGS.get(language, DEFAULT_GREETINGS["en"])
    return template.format(persona=persona, business=business or "uns").replace(" von uns", "")


async def start(
    session: AsyncSession,
    *,
    agency_id: str,
    client_id: str,
    agent_id: str,
    agent_version_id: str,
    channel: Channel,
    language: str,
    greeting: str,
    consent: bool,
) -> tuple[Conversation, str, NewMessage]:
    """A new conversation with its greeting; returns it, the visitor's token (shown once) and
    the greeting as stored."""
    now = utcnow()
    token = random_token(VISITOR_TOKEN_PREFIX)
    conversation = await ConversationRepository(session).insert(
        {
            "id": new_id(Conversation.__id_prefix__),
            "created_at": now,
            "updated_at": now,
            "agency_id": agency_id,
            "client_id": client_id,
            "agent_id": agent_id,
            "agent_version_id": agent_version_id,
            "channel": channel.value,
            "status": ConversationStatus.ACTIVE.value,
            "language": language,
            "visitor_token_hash": hash_token(token),
            "consent_at": now if consent else None,
            "last_activity_at": now,
            "lead_fields": {},
            # The greeting, stored with it, is message 1.
            "message_count": 1,
            "turns_without_progress": 0,
        }
    )
    await record_change(session, conversation, "created")
    message = new_message(conversation, 1, MessageRole.ASSISTANT, greeting, model="greeting")
    await store_messages(session, [message])
    await emit(
        session,
        CONVERSATION_STARTED,
        agency_id=agency_id,
        client_id=client_id,
        entity_type="conversation",
        entity_id=conversation.id,
        payload={"agent_id": agent_id, "channel": channel.value},
    )
    return conversation, token, message


async def by_visitor_token(
    session: AsyncSession, conversation_id: str, token: str, *, for_update: bool = False
) -> Conversation:
    """The conversation the token belongs to; 404 for any mismatch (never tells which)."""
    conversation = await ConversationRepository(session).by_visitor_token(
        hash_token(token), for_update=for_update
    )
    if conversation is None or conversation.id != conversation_id:
        raise NotFound("Conversation not found.")
    return conversation


async def get(
    session: AsyncSession, conversation_id: str, *, for_update: bool = False
) -> Conversation:
    conversation = await ConversationRepository(session).get(conversation_id, for_update=for_update)
    if conversation is None:
        raise NotFound("Conversation not found.")
    return conversation


def ensure_open(conversation: Conversation) -> None:
    if conversation.status == ConversationStatus.ENDED:
        raise Gone("This conversation has ended.", code="conversation_ended")


async def append(
    session: AsyncSession,
    conversation: Conversation,
    role: MessageRole,
    content: str | None,
    **fields: Any,
) -> Message:
    """Add the next message (its ``seq`` is the conversation's count + 1)."""
    conversation.message_count += 1
    conversation.last_activity_at = utcnow()
    return add_at(session, conversation, conversation.message_count, role, content, **fields)


def add_at(
    session: AsyncSession,
    conversation: Conversation,
    seq: int,
    role: MessageRole,
    content: str | None,
    **fields: Any,
) -> Message:
    """Add a message at a position already counted (``advance``), leaving the counters be."""
    message = Message(**vars(new_message(conversation, seq, role, content, **fields)))
    session.add(message)
    return message


@dataclass(frozen=True)
class NewMessage:
    """A message as ``store_messages`` writes it: every column of its row, so that it reads
    like a stored ``Message`` without the ORM (a turn writes two or three)."""

    id: str
    created_at: datetime
    agency_id: str
    client_id: str
    conversation_id: str
    seq: int
    role: str
    content: str | None
    tool_calls: list[Any] = field(default_factory=list)
    tool_call_id: str | None = None
    quick_replies: list[Any] = field(default_factory=list)
    sources: list[Any] = field(default_factory=list)
    client_message_id: str | None = None
    author_user_id: str | None = None
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: int | None = None
    updated_at: datetime | None = None


def new_message(
    conversation: Conversation, seq: int, role: MessageRole, content: str | None, **fields: Any
) -> NewMessage:
    """The message at a position already counted (``advance``), to ``store_messages``."""
    return NewMessage(
        id=new_id(Message.__id_prefix__),
        created_at=utcnow(),
        agency_id=conversation.agency_id,
        client_id=conversation.client_id,
        conversation_id=conversation.id,
        seq=seq,
        role=role.value,
        content=content,
        **fields,
    )


async def store_messages(session: AsyncSession, messages: Sequence[NewMessage]) -> None:
    """Write messages made by ``new_message`` in one statement (no ORM unit of work: a turn's
    messages are written once and never changed)."""
    if messages:
        await ConversationRepository(session).insert_messages([vars(m) for m in messages])


async def advance(
    session: AsyncSession,
    conversation_id: str,
    messages: int,
    *,
    turns_without_progress: int | None = None,
    one_more_turn_without_progress: bool = False,
) -> Conversation:
    """Lock the conversation, reserve the positions of the next ``messages`` messages
    (``message_count - messages + 1`` … ``message_count`` of the conversation returned) and
    set or count its turns without progress, in one statement."""
    conversation = await ConversationRepository(session).advance(
        conversation_id,
        messages,
        utcnow(),
        turns_without_progress,
        one_more_turn_without_progress=one_more_turn_without_progress,
    )
    if conversation is None:
        raise NotFound("Conversation not found.")
    return conversation


async def count_visitor_message(
    session: AsyncSession, conversation_id: str, token: str
) -> Conversation:
    """The conversation the visitor's token belongs to, with the position of the visitor's
    next message reserved (its ``message_count``) and its activity time set: one
    ``UPDATE … RETURNING`` that checks the token, finds and locks the row. 404 for any
    mismatch, as ``by_visitor_token``. The caller rolls back if it refuses the message."""
    conversation = await ConversationRepository(session).advance(
        conversation_id, 1, utcnow(), visitor_token_hash=hash_token(token)
    )
    if conversation is None:
        raise NotFound("Conversation not found.")
    return conversation


async def repeat_of(
    session: AsyncSession, conversation: Conversation, client_message_id: str
) -> list[Message] | None:
    """A visitor's message sent again (a retry after a dropped connection): the stored message
    and the answers that followed it, or None when it is new."""
    repo = ConversationRepository(session)
    first = await repo.message_by_client_id(conversation.id, client_message_id)
    if first is None:
        return None
    answers = []
    for message in await repo.messages(conversation.id, after_seq=first.seq):
        if message.role == MessageRole.USER:
            break
        if message.role != MessageRole.TOOL and message.content:
            answers.append(message)
    return [first, *answers]


async def history(
    session: AsyncSession,
    conversation_id: str,
    limit: int,
    unstored: Sequence[NewMessage] = (),
) -> list[Any]:
    """The latest messages for a model (role, content, tool calls), oldest first, starting at
    a visitor's message so that no tool result is cut off from its call; ``unstored`` are
    the newest, not written yet."""
    stored = await ConversationRepository(session).latest_for_model(
        conversation_id, limit - len(unstored)
    )
    rows = [*stored, *unstored]
    for start, row in enumerate(rows):
        if row.role == MessageRole.USER:
            return rows[start:] if len(rows) == limit else rows
    return rows


async def messages(
    session: AsyncSession, conversation_id: str, after_seq: int = 0
) -> list[Message]:
    return await ConversationRepository(session).messages(conversation_id, after_seq)


async def request_handoff(session: AsyncSession, conversation: Conversation, reason: str) -> bool:
    """Hand the conversation to a person of the client; False if it already is."""
    if conversation.status != ConversationStatus.ACTIVE:
        return False
    conversation.status = ConversationStatus.HANDOFF.value
    conversation.handoff_reason = reason[:200]
    await emit(
        session,
        HANDOFF_REQUESTED,
        agency_id=conversation.agency_id,
        client_id=conversation.client_id,
        entity_type="conversation",
        entity_id=conversation.id,
        payload={"reason": reason[:200], "agent_id": conversation.agent_id},
    )
    return True


def release(conversation: Conversation) -> None:
    """The bot answers again."""
    if conversation.status != ConversationStatus.HANDOFF:
        raise Conflict("The conversation is not handed off.", code="not_handed_off")
    conversation.status = ConversationStatus.ACTIVE.value
    conversation.handoff_reason = None


async def take_over(session: AsyncSession, conversation: Conversation, user_id: str) -> None:
    ensure_open(conversation)
    await request_handoff(session, conversation, f"taken over by {user_id}")


async def reply_as_person(
    session: AsyncSession, conversation: Conversation, user_id: str, text: str
) -> Message:
    """A person of the client answers; this hands the conversation off if it was not."""
    ensure_open(conversation)
    if conversation.status == ConversationStatus.ACTIVE:
        await request_handoff(session, conversation, "answered by a person")
    return await append(session, conversation, MessageRole.HUMAN, text, author_user_id=user_id)


async def end(session: AsyncSession, conversation: Conversation, reason: str) -> bool:
    if conversation.status == ConversationStatus.ENDED:
        return False
    await ConversationRepository(session).end(conversation, reason[:40], utcnow())
    await record_change(session, conversation, "updated", ["status", "ended_at", "end_reason"])
    await emit(
        session,
        CONVERSATION_ENDED,
        agency_id=conversation.agency_id,
        client_id=conversation.client_id,
        entity_type="conversation",
        entity_id=conversation.id,
        payload={"reason": reason[:40], "lead_fields": sorted(conversation.lead_fields)},
    )
    return True


async def end_idle(session: AsyncSession, idle_for: timedelta, now: datetime | None = None) -> int:
    """End conversations nobody wrote in for ``idle_for`` (run by a periodic job)."""
    repo = ConversationRepository(session)
    ended = 0
    for conversation_id in await repo.idle_ids((now or utcnow()) - idle_for):
        conversation = await repo.get(conversation_id, for_update=True)
        if conversation is not None and await end(session, conversation, "idle"):
            ended += 1
    return ended


async def save_lead_fields(
    session: AsyncSession, conversation: Conversation, fields: dict[str, Any]
) -> list[str]:
    """Captured values join what was captured, and the conversation counts as progressing
    (its turns without progress start again from none); returns the keys that changed
    (nothing is written when none did)."""
    current = dict(conversation.lead_fields or {})
    changed = [key for key, value in fields.items() if current.get(key) != value]
    if changed:
        await ConversationRepository(session).save_lead_fields(
            conversation, {**current, **fields}, utcnow()
        )
    return changed
