"""Queries for conversations and their messages (the session's scope applies to all)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Literal

from sqlalchemy import Insert, Select, Update, and_, bindparam, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from demandly.conversations.models import (
    Conversation,
    ConversationStatus,
    Message,
    MessageRole,
)
from demandly.kit.context import Scope
from demandly.kit.db import (
    ScopedQuery,
    TenantFilter,
    as_loaded,
    as_written,
    ensure_writable,
    execute_core,
    grants_criteria,
)

# How ``advance`` changes the count of turns without progress: set it, count one more, or not.
ProgressChange = Literal["set", "count"] | None


@dataclass(frozen=True)
class ConversationFilters:
    client_id: str | None = None
    agent_id: str | None = None
    status: str | None = None
    channel: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class ConversationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, conversation_id: str, *, for_update: bool = False) -> Conversation | None:
        statement = select(Conversation).where(Conversation.id == conversation_id)
        if for_update and self.session.get_bind().dialect.name == "postgresql":
            statement = statement.with_for_update()
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def advance(
        self,
        conversation_id: str,
        messages: int,
        now: datetime,
        turns_without_progress: int | None = None,
        *,
        one_more_turn_without_progress: bool = False,
        visitor_token_hash: str | None = None,
    ) -> Conversation | None:
        """Reserve the next ``messages`` positions and count the turn, returning the
        conversation as it is now: one ``UPDATE … RETURNING``, which also locks the row (within
        the session's scope). With ``visitor_token_hash`` only the conversation that token
        belongs to is touched. The row replaces any copy the session holds."""
        change: ProgressChange = None
        if one_more_turn_without_progress:
            change = "count"
        elif turns_without_progress is not None:
            change = "set"
        query = _advance_query(bool(messages), change, visitor_token_hash is not None)
        # Only the statement's own parameters: a column's name would join its SET clause.
        parameters: dict[str, Any] = {"conversation_id": conversation_id, "messages": messages}
        if messages:
            parameters["now"] = now
        if change == "set":
            parameters["progress"] = turns_without_progress
        if visitor_token_hash is not None:
            parameters["token_hash"] = visitor_token_hash
        result = await execute_core(self.session, query.statement(self.session), parameters)
        row = result.mappings().first()
        return None if row is None else as_loaded(self.session, Conversation, row)

    async def by_visitor_token(
        self, token_hash: str, *, for_update: bool = False
    ) -> Conversation | None:
        statement = select(Conversation).where(Conversation.visitor_token_hash == token_hash)
        if for_update and self.session.get_bind().dialect.name == "postgresql":
            statement = statement.with_for_update()
        return (await self.session.execute(statement)).scalar_one_or_none()

    def listing(self, filters: ConversationFilters, within: Scope | None = None) -> Select[Any]:
        statement = select(Conversation)
        if within is not None:
            statement = statement.where(
                grants_criteria(within, Conversation.agency_id, Conversation.client_id)
            )
        for column, value in (
            (Conversation.client_id, filters.client_id),
            (Conversation.agent_id, filters.agent_id),
            (Conversation.status, filters.status),
            (Conversation.channel, filters.channel),
        ):
            if value is not None:
                statement = statement.where(column == value)
        if filters.since is not None:
            statement = statement.where(Conversation.created_at >= filters.since)
        if filters.until is not None:
            statement = statement.where(Conversation.created_at < filters.until)
        return statement

    async def messages(self, conversation_id: str, after_seq: int = 0) -> list[Message]:
        result = await self.session.execute(
            select(Message)
            .where(Message.conversation_id == conversation_id, Message.seq > after_seq)
            .order_by(Message.seq)
        )
        return list(result.scalars())

    async def latest_for_model(self, conversation_id: str, limit: int) -> list[Row[Any]]:
        """The last ``limit`` messages (only what a model reads), oldest first."""
        statement = _LATEST_FOR_MODEL.statement(self.session)
        parameters = {"conversation_id": conversation_id, "limit": limit}
        return list(reversed((await execute_core(self.session, statement, parameters)).all()))

    async def insert(self, values: dict[str, Any]) -> Conversation:
        """Write a new conversation (``values`` hold every column) and hand it back as written,
        without the ORM's unit of work (its audit event is the caller's to record)."""
        ensure_writable(self.session, values["agency_id"], values["client_id"])
        await execute_core(self.session, _INSERT_CONVERSATION, values)
        return as_written(self.session, Conversation, values)

    async def end(self, conversation: Conversation, reason: str, now: datetime) -> Conversation:
        """Mark the conversation ended, without the ORM's unit of work (its audit event is the
        caller's)."""
        return await self._update(conversation, _END, {"reason": reason, "now": now})

    async def save_lead_fields(
        self, conversation: Conversation, lead_fields: dict[str, Any], now: datetime
    ) -> Conversation:
        """Write the conversation's captured answers, its count of turns without progress
        reset (an answer is progress), without the ORM's unit of work (neither column is
        audited)."""
        parameters = {"lead_fields": lead_fields, "now": now}
        return await self._update(conversation, _SAVE_LEAD_FIELDS, parameters)

    async def _update(
        self, conversation: Conversation, query: ScopedQuery[Update], parameters: dict[str, Any]
    ) -> Conversation:
        """One ``UPDATE … RETURNING`` of the conversation (within the session's scope), whose
        row the session's instance takes."""
        ensure_writable(self.session, conversation.agency_id, conversation.client_id)
        statement = query.statement(self.session)
        result = await execute_core(
            self.session, statement, {"conversation_id": conversation.id, **parameters}
        )
        return as_loaded(self.session, Conversation, result.mappings().one())

    async def insert_messages(self, rows: Sequence[dict[str, Any]]) -> None:
        """Write messages, each row holding every column (one statement, however many)."""
        for row in rows:
            ensure_writable(self.session, row["agency_id"], row["client_id"])
        await execute_core(self.session, _INSERT_MESSAGE, list(rows))

    async def message_by_client_id(
        self, conversation_id: str, client_message_id: str
    ) -> Message | None:
        result = await self.session.execute(
            select(Message).where(
                Message.conversation_id == conversation_id,
                Message.client_message_id == client_message_id,
            )
        )
        return result.scalar_one_or_none()

    async def idle_ids(self, before: datetime, limit: int = 500) -> list[str]:
        result = await self.session.execute(
            select(Conversation.id)
            .where(
                Conversation.status != ConversationStatus.ENDED,
                Conversation.last_activity_at < before,
            )
            .limit(limit)
        )
        return list(result.scalars())

    # --- the dashboard's inbox

    async def activity_page(
        self,
        filters: ConversationFilters,
        within: Scope | None,
        before: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Conversation]:
        """Newest activity first, after the keyset ``before`` (last activity, id)."""
        statement = self.listing(filters, within)
        if before is not None:
            at, conversation_id = before
            statement = statement.where(
                or_(
                    Conversation.last_activity_at < at,
                    and_(Conversation.last_activity_at == at, Conversation.id < conversation_id),
                )
            )
        statement = statement.order_by(
            Conversation.last_activity_at.desc(), Conversation.id.desc()
        ).limit(limit)
        return list((await self.session.execute(statement)).scalars())

    async def active_since(
        self, filters: ConversationFilters, since: datetime, limit: int = 50
    ) -> list[Conversation]:
        """Conversations with activity after ``since``, oldest activity first (the live inbox
        polls this: ``filters.client_id`` and the activity index keep it cheap)."""
        statement = (
            self.listing(filters)
            .where(Conversation.last_activity_at > since)
            .order_by(Conversation.last_activity_at, Conversation.id)
            .limit(limit)
        )
        return list((await self.session.execute(statement)).scalars())

    async def previews(self, conversation_ids: list[str]) -> dict[str, Message]:
        """The latest message with text (visitor, assistant or person) of each conversation.

        First the ids (one short backward walk of the (conversation_id, seq) index per
        conversation), then those rows by primary key: both plans stay right whatever plan
        PostgreSQL caches for a prepared statement (a grouped max, or one statement with the
        ids as a subquery, turned several times slower under its generic plan)."""
        if not conversation_ids:
            return {}
        earlier = aliased(Message)
        latest_id = (
            select(earlier.id)
            .where(
                earlier.conversation_id == Conversation.id,
                earlier.role != MessageRole.TOOL,
                earlier.content.is_not(None),
            )
            .order_by(earlier.seq.desc())
            .limit(1)
            .correlate(Conversation)
            .scalar_subquery()
        )
        found = await self.session.execute(
            select(latest_id).where(Conversation.id.in_(conversation_ids))
        )
        ids = [message_id for message_id in found.scalars() if message_id is not None]
        if not ids:
            return {}
        rows = await self.session.execute(select(Message).where(Message.id.in_(ids)))
        return {m.conversation_id: m for m in rows.scalars()}


# --- hot statements of a turn, built once (per scope: kit.db.ScopedQuery) ---------------------

_CONVERSATIONS = Conversation.__table__
_MESSAGES = Message.__table__
_INSERT_MESSAGE: Insert = insert(_MESSAGES)
_INSERT_CONVERSATION: Insert = insert(_CONVERSATIONS)


@cache
def _advance_query(touch: bool, change: ProgressChange, by_token: bool) -> ScopedQuery[Update]:
    columns = _CONVERSATIONS.c

    def build(tenant: TenantFilter) -> Update:
        count = columns.message_count
        values: dict[Any, Any] = {count: count + bindparam("messages")}
        if touch:
            values[columns.last_activity_at] = bindparam("now", type_=columns.last_activity_at.type)
        if change == "count":
            values[columns.turns_without_progress] = columns.turns_without_progress + 1
        elif change == "set":
            values[columns.turns_without_progress] = bindparam("progress")
        statement = update(_CONVERSATIONS).where(
            columns.id == bindparam("conversation_id"), tenant(Conversation)
        )
        if by_token:
            statement = statement.where(columns.visitor_token_hash == bindparam("token_hash"))
        return statement.values(values).returning(*columns)

    return ScopedQuery(build)


def _end(tenant: TenantFilter) -> Update:
    columns = _CONVERSATIONS.c
    now = bindparam("now", type_=columns.ended_at.type)
    return (
        update(_CONVERSATIONS)
        .where(columns.id == bindparam("conversation_id"), tenant(Conversation))
        .values(
            status=ConversationStatus.ENDED.value,
            ended_at=now,
            end_reason=bindparam("reason"),
            updated_at=now,
        )
        .returning(*columns)
    )


_END = ScopedQuery(_end)


def _save_lead_fields(tenant: TenantFilter) -> Update:
    columns = _CONVERSATIONS.c
    return (
        update(_CONVERSATIONS)
        .where(columns.id == bindparam("conversation_id"), tenant(Conversation))
        .values(
            lead_fields=bindparam("lead_fields", type_=columns.lead_fields.type),
            turns_without_progress=0,
            updated_at=bindparam("now", type_=columns.updated_at.type),
        )
        .returning(*columns)
    )


_SAVE_LEAD_FIELDS = ScopedQuery(_save_lead_fields)


def _latest_for_model(tenant: TenantFilter) -> Select[Any]:
    columns = _MESSAGES.c
    return (
        select(columns.seq, columns.role, columns.content, columns.tool_calls, columns.tool_call_id)
        .where(columns.conversation_id == bindparam("conversation_id"), tenant(Message))
        .order_by(columns.seq.desc())
        .limit(bindparam("limit"))
    )


_LATEST_FOR_MODEL = ScopedQuery(_latest_for_model)
