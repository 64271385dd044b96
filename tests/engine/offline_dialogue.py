"""Driving the offline engine through whole dialogues, the way the turn loop will."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from demandly.engine.offline import OfflineEngine
from demandly.engine.providers.base import (
    AgentContext,
    ChatMessage,
    CompletionRequest,
    FaqPair,
    Finished,
    OpeningRange,
    QualificationField,
    QuickReplies,
    Source,
    Sources,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolSpec,
)

BERLIN = ZoneInfo("Europe/Berlin")
ALL_TOOLS = ("save_lead_details", "request_handoff", "end_conversation")
# What a tool answers in a dialogue: by default {"ok": true}; tests of lookups (knowledge,
# booking) give a function that answers like the real tool would.
ToolResults = Callable[[ToolCall], dict[str, Any]]


def tools(*names: str) -> tuple[ToolSpec, ...]:
    return tuple(
        ToolSpec(name=name, description=name, parameters={"type": "object"}) for name in names
    )


def at(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


# Wednesday 12 March 2025, 10:00 in Berlin: inside the practice's hours.
INSIDE = at(2025, 3, 12, 10)
# Saturday 15 March 2025, 20:00: outside; next opening Monday 8:00.
OUTSIDE = at(2025, 3, 15, 20)

WEEKDAY_HOURS = tuple(OpeningRange(weekday=day, opens=time(8), closes=time(18)) for day in range(5))

FIELDS = (
    QualificationField(key="name", labels={"de": "Name", "en": "Name"}),
    QualificationField(key="email", labels={"de": "E-Mail-Adresse", "en": "Email"}, type="email"),
    QualificationField(
        key="phone", labels={"de": "Telefonnummer", "en": "Phone number"}, type="phone"
    ),
)


def practice(language: str = "de", **overrides: Any) -> AgentContext:
    """A dental practice like the demo's: name, e-mail and phone required, FAQ, weekday hours."""
    values: dict[str, Any] = {
        "language": language,
        "persona_name": "Lena",
        "business_name": "Zahnarztpraxis Dr. Sonnenschein",
        "qualification": FIELDS,
        "faq": (
            FaqPair(
                question="Nehmen Sie neue Patienten auf?",
                answer="Ja, wir nehmen gern neue Patientinnen und Patienten auf.",
            ),
            FaqPair(
                question="Haben Sie Parkplätze?",
                answer="Direkt vor der Praxis gibt es drei kostenlose Parkplätze.",
            ),
            FaqPair(
                question="Do you accept new patients?",
                answer="Yes, we are happy to welcome new patients.",
            ),
            FaqPair(question="Is there parking?", answer="There are three free spaces in front."),
        ),
        "opening_hours": WEEKDAY_HOURS,
        "out_of_hours_message": (
            "Wir sind gerade nicht in der Praxis."
            if language == "de"
            else "We are out of the practice right now."
        ),
        "timezone": "Europe/Berlin",
        "phone_region": "DE",
    }
    values.update(overrides)
    return AgentContext(**values)


@dataclass
class Turn:
    text: str
    chunks: int
    calls: list[ToolCall]  # every call of the turn, lookups included
    quick_replies: tuple[str, ...]
    finish: str
    sources: tuple[Source, ...] = ()
    rounds: int = 1  # provider calls that produced the turn (lookups need one more each)

    def call(self, name: str) -> ToolCall | None:
        return next((c for c in self.calls if c.name == name), None)

    @property
    def saved(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for call in self.calls:
            if call.name == "save_lead_details":
                result.update(call.arguments["fields"])
        return result


@dataclass
class _Round:
    parts: list[str] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    quick: tuple[str, ...] = ()
    sources: tuple[Source, ...] = ()
    finish: str = ""


@dataclass
class Dialogue:
    context: AgentContext
    clock: datetime = INSIDE
    offered: tuple[str, ...] = ALL_TOOLS
    messages: list[ChatMessage] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    results: ToolResults | None = None

    @property
    def engine(self) -> OfflineEngine:
        return OfflineEngine(clock=lambda: self.clock)

    def request(self) -> CompletionRequest:
        return CompletionRequest(
            messages=tuple(self.messages), tools=tools(*self.offered), context=self.context
        )

    async def _round(self) -> _Round:
        got = _Round()
        async for event in self.engine.stream(self.request()):
            if isinstance(event, TextDelta):
                got.parts.append(event.text)
            elif isinstance(event, ToolCallEvent):
                got.calls.append(event.call)
            elif isinstance(event, QuickReplies):
                got.quick = event.options
            elif isinstance(event, Sources):
                got.sources = event.items
            elif isinstance(event, Finished):
                got.finish = event.reason
        return got

    async def run(self) -> Turn:
        """One turn as the turn loop runs it: store the answer, run its tools, and call the
        engine again while it waits for the result of a lookup (at most four rounds)."""
        calls: list[ToolCall] = []
        needing = OfflineEngine.tools_needing_results
        rounds = 0
        while True:
            rounds += 1
            got = await self._round()
            text = "".join(got.parts)
            self.messages.append(
                ChatMessage(role="assistant", content=text or None, tool_calls=tuple(got.calls))
            )
            for call in got.calls:
                result = self.results(call) if self.results else {"ok": True}
                self.messages.append(
                    ChatMessage(role="tool", content=json.dumps(result), tool_call_id=call.id)
                )
            calls += got.calls
            if rounds == 4 or not any(c.name in needing for c in got.calls):
                break
            assert not got.parts, "a lookup goes out without text"
        turn = Turn(text, len(got.parts), calls, got.quick, got.finish, got.sources, rounds)
        if got.calls:
            # The turn loop calls the provider again after tool results: nothing more to say.
            after = [event async for event in self.engine.stream(self.request())]
            assert after == [Finished(reason="stop")]
        self.turns.append(turn)
        return turn

    async def greet(self) -> Turn:
        return await self.run()

    async def say(self, text: str) -> Turn:
        self.messages.append(ChatMessage(role="user", content=text))
        return await self.run()

    @property
    def captured(self) -> dict[str, Any]:
        """Everything saved so far, as the lead would hold it."""
        result: dict[str, Any] = {}
        for turn in self.turns:
            result.update(turn.saved)
        return result
