"""The one protocol every LLM provider implements: stream a chat completion with tools.

The OpenAI-compatible provider (any OpenAI-style endpoint) and the built-in offline engine both
implement ``LLMProvider``; the turn loop (engine/service.py) neither knows nor cares which one
it talks to. Messages and tool calls follow the OpenAI chat-completions shapes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, time
from typing import Any, Literal, Protocol

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None  # for role "tool": the call it answers


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments


FieldType = Literal["text", "email", "phone", "number", "choice", "date", "boolean"]


@dataclass(frozen=True)
class QualificationField:
    key: str
    labels: dict[str, str]  # language -> label, e.g. {"de": "Telefonnummer", "en": "Phone"}
    type: FieldType = "text"
    required: bool = True
    options: tuple[str, ...] = ()  # for "choice"
    hint: str | None = None

    def label(self, language: str) -> str:
        return self.labels.get(language) or next(iter(self.labels.values()), self.key)


@dataclass(frozen=True)
class FaqPair:
    question: str
    answer: str


@dataclass(frozen=True)
class OpeningRange:
    weekday: int  # 0 = Monday
    opens: time
    closes: time


@dataclass(frozen=True)
class AgentContext:
    """What the agent knows beyond the messages: used by the offline engine to act, and by
    LLM providers only through the system prompt the turn loop builds from it."""

    language: str = "de"  # "de" | "en"
    persona_name: str = "Assistant"
    business_name: str = ""
    greeting: str | None = None
    instructions: str = ""
    timezone: str = "Europe/Berlin"
    phone_region: str = "DE"  # default region for national phone numbers
    qualification: tuple[QualificationField, ...] = ()
    faq: tuple[FaqPair, ...] = ()
    opening_hours: tuple[OpeningRange, ...] = ()
    closed_dates: tuple[date, ...] = ()
    out_of_hours_message: str | None = None
    price_info: str | None = None
    handoff_keywords: tuple[str, ...] = ()
    knowledge_base_ids: tuple[str, ...] = ()
    calendar_id: str | None = None


@dataclass(frozen=True)
class CompletionRequest:
    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolSpec, ...] = ()
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    context: AgentContext = field(default_factory=AgentContext)


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCallEvent:
    call: ToolCall


@dataclass(frozen=True)
class QuickReplies:
    """Choices the visitor can tap (the widget shows buttons); never required to answer."""

    options: tuple[str, ...]


@dataclass(frozen=True)
class Source:
    title: str
    url: str | None = None


@dataclass(frozen=True)
class Sources:
    """Where the answer being streamed comes from (knowledge citations); the widget shows them
    as links under the message."""

    items: tuple[Source, ...]


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Finished:
    reason: Literal["stop", "tool_calls", "length", "error"] = "stop"


ProviderEvent = TextDelta | ToolCallEvent | QuickReplies | Sources | Usage | Finished


class LLMProvider(Protocol):
    name: str

    def stream(self, request: CompletionRequest) -> AsyncIterator[ProviderEvent]:
        """Yield text deltas and complete tool calls, then one ``Finished``. Raise
        ``ProviderError`` on failure (the turn loop turns it into a polite fallback)."""
        ...


class ProviderError(Exception):
    """The provider failed (timeout, HTTP error, malformed stream)."""
