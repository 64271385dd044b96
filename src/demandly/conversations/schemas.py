from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_MESSAGE_CHARS = 4000


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    seq: int
    role: str
    content: str | None
    tool_calls: list[Any]
    tool_call_id: str | None
    quick_replies: list[Any]
    sources: list[Any] = []
    author_user_id: str | None
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: int | None
    created_at: datetime


class ConversationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    agency_id: str
    client_id: str
    agent_id: str
    agent_version_id: str
    channel: str
    status: str
    language: str
    consent_at: datetime | None
    last_activity_at: datetime
    ended_at: datetime | None
    end_reason: str | None
    handoff_reason: str | None
    lead_fields: dict[str, Any]
    message_count: int
    created_at: datetime


class ConversationDetail(ConversationOut):
    messages: list[MessageOut]


class PersonReply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
