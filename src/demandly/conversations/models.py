"""Conversations between a visitor (or caller) and an agent, and their messages."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from demandly.kit.db import RecordModel, TenantMixin


class ConversationStatus(StrEnum):
    ACTIVE = "active"
    # A person of the client answers; the bot is silent.
    HANDOFF = "handoff"
    ENDED = "ended"


class Channel(StrEnum):
    WEB = "web"
    PHONE = "phone"
    API = "api"
    TEST = "test"


class MessageRole(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"
    # A person of the client, answering during a handoff.
    HUMAN = "human"


class Conversation(RecordModel, TenantMixin):
    __tablename__ = "conversations"
    __id_prefix__ = "conv"
    __table_args__ = (Index("ix_conversations_client_activity", "client_id", "last_activity_at"),)
    # Bookkeeping the engine does on every turn is not an edit by anyone: not audited.
    __audit_ignore__ = (
        "last_activity_at",
        "message_count",
        "turns_without_progress",
        "lead_fields",
    )

    client_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    agent_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("agents.id", ondelete="CASCADE"), index=True
    )
    # The published version the conversation runs on, for its whole life.
    agent_version_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("agent_versions.id", ondelete="CASCADE")
    )
    channel: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10), default=ConversationStatus.ACTIVE, index=True)
    language: Mapped[str] = mapped_column(String(5))
    # The visitor's bearer token, hashed (kit.crypto.hash_token).
    visitor_token_hash: Mapped[str | None] = mapped_column(String(64), default=None, unique=True)
    # When the visitor accepted the privacy notice (nothing is processed before).
    consent_at: Mapped[datetime | None] = mapped_column(default=None)
    last_activity_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    end_reason: Mapped[str | None] = mapped_column(String(40), default=None)
    handoff_reason: Mapped[str | None] = mapped_column(String(200), default=None)
    # What the agent captured with save_lead_details (the leads domain takes it over).
    lead_fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Turns in a row in which nothing new was captured (handoff rule "after N turns").
    turns_without_progress: Mapped[int] = mapped_column(Integer, default=0)
    message_count: Mapped[int] = mapped_column(Integer, default=0)


class Message(RecordModel, TenantMixin):
    __tablename__ = "messages"
    __id_prefix__ = "msg"
    # A transcript is append-only and is itself the record of what was said: its rows are not
    # audited one by one (that would put every chat turn on the agency's audit chain).
    __audited__ = False
    __table_args__ = (
        UniqueConstraint("conversation_id", "seq"),
        UniqueConstraint("conversation_id", "client_message_id"),
    )

    client_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    conversation_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("conversations.id", ondelete="CASCADE")
    )
    # Position in the conversation (1, 2, …): what a reconnecting widget resumes after.
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(10))
    content: Mapped[str | None] = mapped_column(Text, default=None)
    tool_calls: Mapped[list[Any]] = mapped_column(JSON, default=list)
    tool_call_id: Mapped[str | None] = mapped_column(String(64), default=None)
    # Quick replies offered with an assistant message.
    quick_replies: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # Knowledge the answer cites ([{"title", "url"}]), shown as links under it.
    sources: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # The visitor's own id for a message they sent: a retry never stores it twice.
    client_message_id: Mapped[str | None] = mapped_column(String(64), default=None)
    author_user_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    model: Mapped[str | None] = mapped_column(String(100), default=None)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    latency_ms: Mapped[int | None] = mapped_column(Integer, default=None)
