"""Where an offline conversation stands and what one reply holds (shared by the dialogue parts:
engine.py for the form and answers, booking.py for appointments)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from demandly.engine.offline.extract import Extraction
from demandly.engine.offline.intents import Intents
from demandly.engine.offline.when import When
from demandly.engine.providers.base import AgentContext, QualificationField, Source

PromptKind = Literal[
    "field",  # a qualification field (also a contact detail the booking needs)
    "optional",
    "anything_else",
    "open",
    "booking_when",  # "when would suit you?"
    "slots",  # free slots offered
    "confirm",  # "shall I book ...?"
    "confirm_cancel",  # "shall I cancel ...?"
]


@dataclass(frozen=True)
class Prompt:
    """What the engine last asked the visitor for."""

    kind: PromptKind
    key: str | None = None


@dataclass(frozen=True)
class Slot:
    start: datetime  # in the client's time zone
    raw: str  # the start exactly as check_availability gave it (passed back when booking)


@dataclass(frozen=True)
class Appointment:
    id: str | None
    start: datetime | None
    manage_url: str | None


@dataclass
class BookingState:
    """The appointment dialogue, rebuilt from the history like everything else."""

    mode: Literal["book", "reschedule"] = "book"
    wish: When | None = None
    waiting_for_contact: bool = False
    # Why the pending check_availability was called: first offer, "none of these fit" (the
    # rest of the day: "more", then the days after: "more_days"), "later that day" ("later"),
    # or a wider search after an empty day ("wider").
    purpose: Literal["offer", "more", "more_days", "later", "wider"] = "offer"
    checked: dict[str, Any] = field(default_factory=dict)  # arguments of the last check
    found: tuple[Slot, ...] = ()  # slots of "more" waiting for those of "more_days"
    offered: tuple[Slot, ...] = ()
    shown_until: datetime | None = None  # start of the latest slot offered so far
    proposed: Slot | None = None
    appointment: Appointment | None = None


@dataclass
class Continuation:
    """The rest of a visitor turn, finished once a looked-up result is in."""

    text: str
    intents: Intents
    found: Extraction
    previous: dict[str, Any]
    greeted_now: bool


@dataclass
class DialogueState:
    values: dict[str, Any] = field(default_factory=dict)
    greeted: bool = False
    prompt: Prompt | None = None
    form_started: bool = False
    summary_given: bool = False
    offered: set[str] = field(default_factory=set)
    declined: set[str] = field(default_factory=set)
    misunderstood: int = 0
    turn: int = 0
    booking: BookingState = field(default_factory=BookingState)
    continuation: Continuation | None = None

    @property
    def pending(self) -> str | None:
        if self.prompt and self.prompt.kind in ("field", "optional"):
            return self.prompt.key
        return None


@dataclass
class Reply:
    parts: list[str] = field(default_factory=list)
    quick_replies: tuple[str, ...] = ()
    saves: dict[str, Any] = field(default_factory=dict)
    handoff: str | None = None
    end: str | None = None
    # A call whose result the reply waits for (search_knowledge, check_availability, ...):
    # emitted alone, without text; the reply is finished when the result comes back.
    lookup: tuple[str, dict[str, Any]] | None = None
    sources: tuple[Source, ...] = ()

    @property
    def text(self) -> str:
        return re.sub(r"\s+", " ", " ".join(p.strip() for p in self.parts if p.strip())).strip()


@dataclass
class Turn:
    """Everything one step needs besides the state."""

    context: AgentContext
    lang: str
    tools: frozenset[str]
    now: datetime
    # Contact fields the booking dialogue added because the agent's form lacks them.
    booking_only: frozenset[str] = frozenset()

    @property
    def required(self) -> list[QualificationField]:
        return [f for f in self.context.qualification if f.required]

    @property
    def optional(self) -> list[QualificationField]:
        return [
            f
            for f in self.context.qualification
            if not f.required and f.key not in self.booking_only
        ]

    def field(self, key: str | None) -> QualificationField | None:
        return next((f for f in self.context.qualification if f.key == key), None)
