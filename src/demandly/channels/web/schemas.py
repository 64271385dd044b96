from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from demandly.conversations.schemas import MAX_MESSAGE_CHARS


class PublicAgent(BaseModel):
    """What the widget shows before anything is processed."""

    public_key: str
    name: str
    persona_name: str
    language: str
    greeting: str
    brand: dict[str, Any]
    widget: dict[str, Any]
    privacy_notice: str
    privacy_policy_url: str | None


class StartConversation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    consent: Literal[True] = Field(
        description="The visitor accepted the privacy notice; nothing is processed before."
    )


class SourceLink(BaseModel):
    title: str
    url: str | None = None


class PublicMessage(BaseModel):
    id: str
    seq: int
    role: Literal["user", "assistant", "human"]
    content: str | None
    quick_replies: list[str] = []
    sources: list[SourceLink] = []
    created_at: str


class ConversationStarted(BaseModel):
    conversation_id: str
    token: str = Field(description="The visitor's bearer token for this conversation.")
    status: str
    messages: list[PublicMessage]


class VisitorMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=MAX_MESSAGE_CHARS)
    client_message_id: str | None = Field(
        None,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The widget's own id for this message: a retry is never stored twice.",
    )


class Transcript(BaseModel):
    conversation_id: str
    status: str
    messages: list[PublicMessage]


class SocketFrame(BaseModel):
    """What a visitor sends over the WebSocket."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["message", "resume", "ping"]
    text: str | None = Field(None, max_length=MAX_MESSAGE_CHARS)
    client_message_id: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    after_seq: int | None = Field(None, ge=0, le=10**9)
