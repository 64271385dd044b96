"""Request and response bodies of contacts, leads, notes and a client's lead settings.

Phone numbers are read in the client's region, which only the service knows: the schema takes
them as text and the service answers 422 (naming ``phone``) when one is not a number.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from demandly.agents.schemas import Id, ShortText, Text
from demandly.tenancy.schemas import Email, PlainText

Status = Literal["new", "qualified", "disqualified", "contacted", "won", "lost"]
Source = Literal["manual", "api", "import", "chat", "phone", "booking"]
Operator = Literal["equals", "in", "exists", "gte", "lte", "contains"]
NotifyOn = Literal["created", "qualified"]
Scalar = str | int | float | bool | None

_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
TAG_PATTERN = r"^[\w][\w .:/&+-]{0,39}$"
_TAG = re.compile(TAG_PATTERN)
MAX_VALUE_CHARS = 2000


def _key(value: str) -> str:
    if not _KEY.match(value):
        raise ValueError("keys are 1-64 characters: a letter, then letters, digits or '_'")
    return value


def _values(value: dict[str, Any]) -> dict[str, Any]:
    for key, item in value.items():
        _key(key)
        if isinstance(item, str) and len(item) > MAX_VALUE_CHARS:
            raise ValueError(f"{key}: at most {MAX_VALUE_CHARS} characters")
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{key}: must be a finite number")
    return value


def _tag(value: str) -> str:
    if not _TAG.match(value):
        raise ValueError("tags are 1-40 characters: letters, digits, spaces and . : / & + - _")
    return value


def _unique_tags(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    seen: dict[str, str] = {}
    for tag in value:
        seen.setdefault(tag.casefold(), tag)
    return list(seen.values())


def _reject_null(value: Any) -> Any:
    if value is None:
        raise ValueError("may not be null")
    return value


Values = Annotated[dict[str, Scalar], Field(max_length=50), AfterValidator(_values)]
Tag = Annotated[str, AfterValidator(_tag)]
Tags = Annotated[list[Tag], Field(max_length=30), AfterValidator(_unique_tags)]
Phone = Annotated[
    PlainText, Field(min_length=3, max_length=40, description="Any format; stored as E.164.")
]
Company = Annotated[PlainText, Field(min_length=1, max_length=200)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --- contacts ------------------------------------------------------------------------------


class ContactFields(_Input):
    name: ShortText | None = None
    email: Email | None = None
    phone: Phone | None = None
    company: Company | None = None


class ContactCreate(ContactFields):
    """A new contact; one with the e-mail address or phone number of an existing contact of
    the client is merged into that contact instead (answer 200, not 201)."""

    client_id: Id
    source: Source = "manual"
    custom_fields: Values = Field(default_factory=dict)
    consent_contact: bool = False
    consent_marketing: bool = False
    processing_restricted: bool = False
    do_not_call: bool = False

    @model_validator(mode="after")
    def _identifiable(self) -> ContactCreate:
        if not (self.name or self.email or self.phone):
            raise ValueError("a contact needs a name, an e-mail address or a phone number")
        return self


class ContactUpdate(ContactFields):
    """Only the fields sent change; null clears name, e-mail, phone or company.
    ``custom_fields`` merge key by key (a null value removes the key)."""

    custom_fields: Values | None = None
    consent_contact: bool | None = None
    consent_marketing: bool | None = None
    processing_restricted: bool | None = None
    do_not_call: bool | None = None

    _not_null = field_validator(
        "custom_fields",
        "consent_contact",
        "consent_marketing",
        "processing_restricted",
        "do_not_call",
        mode="before",
    )(_reject_null)


class ContactMerge(_Input):
    other_id: Id = Field(description="This contact is merged into the one in the path and goes.")


class Contact(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    agency_id: str
    client_id: str
    name: str | None
    email: str | None
    phone: str | None
    company: str | None
    source: str
    custom_fields: dict[str, Any]
    consent_contact: bool
    consent_marketing: bool
    processing_restricted: bool
    do_not_call: bool
    created_at: datetime
    updated_at: datetime | None = None


# --- scoring and notifications -------------------------------------------------------------


class ScoringRule(_Input):
    field: Annotated[str, AfterValidator(_key)] = Field(description="An answer's key.")
    op: Operator
    value: Scalar | list[Scalar] = Field(
        None, description="A list for `in`, a number for `gte`/`lte`, ignored by `exists`."
    )
    points: int = Field(ge=-1000, le=1000)

    @model_validator(mode="after")
    def _value_fits(self) -> ScoringRule:
        value = self.value
        if self.op == "in":
            if not isinstance(value, list) or not value or len(value) > 50:
                raise ValueError("`in` needs a list of 1 to 50 values")
        elif isinstance(value, list):
            raise ValueError(f"`{self.op}` takes one value, not a list")
        elif self.op in ("gte", "lte"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"`{self.op}` needs a number")
            if not math.isfinite(value):
                raise ValueError(f"`{self.op}` needs a finite number")
        elif self.op in ("equals", "contains") and value is None:
            raise ValueError(f"`{self.op}` needs a value")
        if isinstance(value, str) and len(value) > 500:
            raise ValueError("values are at most 500 characters")
        return self


class LeadScoring(_Input):
    """Points per rule that matches a lead's answers; a lead whose required answers are all in
    becomes qualified on its own once its score reaches ``qualify_at`` (null: never)."""

    rules: Annotated[list[ScoringRule], Field(max_length=100)] = Field(default_factory=list)
    qualify_at: int | None = Field(0, ge=-100_000, le=100_000)


class LeadNotifications(_Input):
    """Who is e-mailed about new and qualified leads, in the agency's brand."""

    notify_emails: Annotated[list[Email], Field(max_length=20)] = Field(default_factory=list)
    notify_on: Annotated[list[NotifyOn], Field(max_length=2)] = Field(
        default_factory=lambda: ["created", "qualified"]
    )

    @field_validator("notify_emails", "notify_on")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


# --- leads ---------------------------------------------------------------------------------


class LeadCreate(_Input):
    client_id: Id
    contact_id: Id | None = Field(None, description="An existing contact of the client …")
    contact: ContactFields | None = Field(
        None, description="… or the person's details (merged into a matching contact)."
    )
    agent_id: Id | None = Field(None, description="Its answers follow this agent's form.")
    answers: Values = Field(default_factory=dict)
    status: Status = "new"
    status_reason: Annotated[PlainText, Field(max_length=200)] | None = None
    owner_id: Id | None = None
    tags: Tags = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_contact(self) -> LeadCreate:
        if self.contact_id is not None and self.contact is not None:
            raise ValueError("send contact_id or contact, not both")
        return self


class LeadUpdate(_Input):
    """Only the fields sent change. ``answers`` merge key by key (a null value removes one);
    ``tags`` are replaced."""

    contact_id: Id | None = None
    answers: Values | None = None
    status: Status | None = None
    status_reason: Annotated[PlainText, Field(max_length=200)] | None = None
    owner_id: Id | None = None
    tags: Tags | None = None

    _not_null = field_validator("answers", "status", "tags", mode="before")(_reject_null)


class NoteCreate(_Input):
    body: Annotated[Text, Field(min_length=1, max_length=10_000)]


class Note(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    lead_id: str
    author_id: str
    body: str
    created_at: datetime


class Lead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    agency_id: str
    client_id: str
    contact_id: str | None
    contact: Contact | None = None
    agent_id: str | None
    conversation_id: str | None
    answers: dict[str, Any]
    score: int
    status: str
    status_reason: str | None
    qualified_at: datetime | None
    owner_id: str | None
    tags: list[str]
    created_at: datetime
    updated_at: datetime | None = None


class LeadDetail(Lead):
    notes: list[Note] = Field(default_factory=list)
