"""Request and response bodies of the agents API: agent definitions (draft and versions) and
provider connections.

Rules about one value live here (a key is snake_case, a choice field has options, a range
closes after it opens, an origin has no path); rules across items of a list (unique keys,
overlapping opening ranges) are checked by the service, which names the exact item.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from datetime import date, datetime
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from demandly.tenancy.schemas import ID_PATTERN, HexColor, Name, PlainText, TimeZone, WebUrl

Id = Annotated[str, Field(min_length=1, max_length=40, pattern=ID_PATTERN)]
Language = Literal["de", "en"]
Kind = Literal["chat", "phone"]
Position = Literal["bottom-right", "bottom-left"]
RegionLabel = Literal["eu", "us", "self-hosted"]
FieldType = Literal["text", "email", "phone", "number", "choice", "date", "boolean"]
ToolName = Literal[
    "save_lead_details",
    "request_handoff",
    "end_conversation",
    "search_knowledge",
    "check_availability",
    "book_appointment",
    "reschedule_appointment",
    "cancel_appointment",
    "qualify_lead",
    "transfer_call",
]
KNOWN_TOOLS: tuple[str, ...] = get_args(ToolName)
DEFAULT_TOOLS: tuple[str, ...] = ("save_lead_details", "request_handoff", "end_conversation")

_SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
_HHMM = r"^(?:[01]\d|2[0-3]):[0-5]\d$"
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _text(value: str) -> str:
    # Multi-line text: line breaks and tabs are fine, other control characters (NUL) are not.
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\r\t" for ch in value):
        raise ValueError("must not contain control characters")
    return value


def _snake_case(value: str) -> str:
    if not _SNAKE_CASE.match(value):
        raise ValueError("must be snake_case: a-z, 0-9 and single '_', starting with a letter")
    return value


def _host(raw: str) -> str:
    if raw.startswith("["):
        try:
            return f"[{ipaddress.IPv6Address(raw[1:-1]).compressed}]"
        except ValueError as exc:
            raise ValueError("must have a valid IPv6 address") from exc
    try:
        host = raw.rstrip(".").lower().encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError("must have a valid host name") from exc
    if not host or len(host) > 253 or not all(_HOST_LABEL.match(p) for p in host.split(".")):
        raise ValueError("must have a valid host name")
    return host


def _origin(value: str) -> str:
    """``scheme://host[:port]`` as a browser sends it in ``Origin``: lower case, IDNA host,
    no default port. A trailing slash is forgiven; any other path is not."""
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must be an origin such as https://www.example.com, without spaces")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError("must be an origin such as https://www.example.com") from exc
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError("must start with https:// (or http://)")
    if "@" in parts.netloc:
        raise ValueError("must not contain user name or password")
    if parts.path not in ("", "/") or "?" in value or "#" in value:
        raise ValueError("must be an origin (scheme://host[:port]) without a path or query")
    netloc = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    if not netloc:
        raise ValueError("must name a host, such as https://www.example.com")
    host = _host(netloc)
    suffix = "" if port is None or port == _DEFAULT_PORTS[scheme] else f":{port}"
    return f"{scheme}://{host}{suffix}"


def _base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not contain credentials; use api_key")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ValueError("must not contain a query or fragment")
    return value.rstrip("/")


def _reject_null(value: Any) -> Any:
    if value is None:
        raise ValueError("may not be null")
    return value


ShortText = Annotated[PlainText, Field(min_length=1, max_length=200)]
Text = Annotated[str, AfterValidator(_text)]
Origin = Annotated[str, Field(max_length=300), AfterValidator(_origin)]
ModelName = Annotated[PlainText, Field(min_length=1, max_length=100)]
HHMM = Annotated[str, Field(pattern=_HHMM, description="24-hour time HH:MM")]
Keyword = Annotated[PlainText, Field(min_length=1, max_length=100)]
Option = Annotated[PlainText, Field(min_length=1, max_length=100)]
BaseUrl = Annotated[WebUrl, AfterValidator(_base_url)]
ApiKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=512,
        pattern=r"^[\x21-\x7e]+$",
        description="Write-only: stored encrypted, never returned.",
    ),
]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --- the definition's sections ------------------------------------------------------------


class LLMSettings(_Input):
    connection_id: Id | None = Field(
        None, description="A provider connection of the agent's agency; null: platform default."
    )
    model: ModelName | None = Field(None, description="Default: the connection's default model.")
    temperature: float = Field(0.3, ge=0, le=2)
    max_tokens: int = Field(512, ge=1, le=4096)


class Label(_Input):
    de: ShortText | None = None
    en: ShortText | None = None

    @model_validator(mode="after")
    def _one_language(self) -> Label:
        if not self.de and not self.en:
            raise ValueError("needs a label in at least one language (de or en)")
        return self


class QualificationField(_Input):
    key: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_snake_case)]
    label: Label
    type: FieldType = "text"
    required: bool = True
    options: Annotated[list[Option], Field(max_length=50)] | None = Field(
        None, validate_default=True, description="The choices of a `choice` field."
    )
    hint: Annotated[PlainText, Field(max_length=300)] | None = None

    @field_validator("options")
    @classmethod
    def _options_fit_type(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        kind = info.data.get("type")
        if kind == "choice":
            if not value:
                raise ValueError("a choice field needs at least one option")
            if len({o.casefold() for o in value}) != len(value):
                raise ValueError("options must be unique")
        elif value and kind is not None:
            raise ValueError("only choice fields take options")
        return value or None


class FaqPair(_Input):
    question: Annotated[Text, Field(min_length=1, max_length=500)]
    answer: Annotated[Text, Field(min_length=1, max_length=4000)]


class OpeningRange(_Input):
    weekday: int = Field(ge=0, le=6, description="0 = Monday")
    opens: HHMM
    closes: HHMM

    @field_validator("closes")
    @classmethod
    def _after_opening(cls, value: str, info: ValidationInfo) -> str:
        opens = info.data.get("opens")
        if opens is not None and value <= opens:
            raise ValueError("must be later than opens")
        return value


class BusinessHours(_Input):
    timezone: TimeZone | None = Field(None, description="Default: the client's time zone.")
    weekly: Annotated[list[OpeningRange], Field(max_length=70)] = Field(default_factory=list)
    closed_dates: Annotated[list[date], Field(max_length=366)] = Field(default_factory=list)
    out_of_hours_message: Annotated[Text, Field(max_length=1000)] | None = None


class Handoff(_Input):
    keywords: Annotated[list[Keyword], Field(max_length=50)] = Field(default_factory=list)
    after_turns_without_progress: int | None = Field(None, ge=1, le=100)


class Widget(_Input):
    allowed_origins: Annotated[list[Origin], Field(max_length=50)] = Field(
        default_factory=list, description="Websites that may embed the widget."
    )
    primary_color: HexColor | None = None
    accent_color: HexColor | None = None
    position: Position = "bottom-right"
    avatar_url: WebUrl | None = None
    privacy_notice: Annotated[Text, Field(max_length=2000)] | None = None


E164 = Annotated[str, Field(pattern=r"^\+[1-9][0-9]{6,14}$", description="E.164, e.g. +4940123456")]


class PhoneSettings(_Input):
    """How a phone agent answers calls (issue: phone agents on Twilio)."""

    voice_mode: Literal["gather", "realtime"] = Field(
        "gather",
        description="gather: Twilio speech recognition, one engine turn per utterance; "
        "realtime: a Media Stream bridged to a realtime speech model.",
    )
    say_voice: ShortText | None = Field(None, description="Twilio <Say> voice (gather mode).")
    realtime_voice: ShortText | None = Field(None, description="Voice of the realtime model.")
    record_calls: bool = Field(
        False, description="Record after the caller agreed (asked in the greeting)."
    )
    transfer_number: E164 | None = Field(None, description="Where transfer_call dials.")
    transfer_caller_id: Literal["agent_number", "caller"] = "agent_number"
    warm_transfer_sms: bool = Field(
        False, description="Text the transfer target a summary before dialling."
    )
    silence_reprompts: int = Field(2, ge=0, le=5)
    voicemail_message: Annotated[Text, Field(max_length=1000)] | None = None


class AgentDefinition(_Input):
    """Everything an agent version holds besides its name and kind."""

    language: Language
    persona_name: ShortText | None = None
    greeting: Annotated[Text, Field(max_length=1000)] | None = None
    instructions: Annotated[Text, Field(max_length=20000)] | None = None
    llm: LLMSettings = Field(default_factory=LLMSettings)
    tools: Annotated[list[ToolName], Field(max_length=len(KNOWN_TOOLS) * 2)] = Field(
        default_factory=lambda: list(DEFAULT_TOOLS)
    )
    qualification: Annotated[list[QualificationField], Field(max_length=50)] = Field(
        default_factory=list
    )
    faq: Annotated[list[FaqPair], Field(max_length=200)] = Field(default_factory=list)
    business_hours: BusinessHours = Field(default_factory=BusinessHours)
    handoff: Handoff = Field(default_factory=Handoff)
    widget: Widget = Field(default_factory=Widget)
    price_info: Annotated[Text, Field(max_length=2000)] | None = None
    knowledge_base_ids: Annotated[list[Id], Field(max_length=20)] = Field(
        default_factory=list,
        description="Knowledge bases of the same client the agent answers from.",
    )
    calendar_id: Id | None = Field(None, description="The client's calendar the agent books into.")
    phone: PhoneSettings = Field(default_factory=PhoneSettings)


# --- agents --------------------------------------------------------------------------------


class AgentCreate(AgentDefinition):
    client_id: Id
    name: Name
    kind: Kind


class AgentUpdate(_Input):
    """Only the fields sent change. Sections (``llm``, ``business_hours``, ``handoff``, ``phone``,
    ``widget``) merge key by key; lists (``tools``, ``qualification``, ``faq``) are replaced."""

    name: Name | None = None
    kind: Kind | None = None
    language: Language | None = None
    persona_name: ShortText | None = None
    greeting: Annotated[Text, Field(max_length=1000)] | None = None
    instructions: Annotated[Text, Field(max_length=20000)] | None = None
    llm: LLMSettings | None = None
    tools: Annotated[list[ToolName], Field(max_length=len(KNOWN_TOOLS) * 2)] | None = None
    qualification: Annotated[list[QualificationField], Field(max_length=50)] | None = None
    faq: Annotated[list[FaqPair], Field(max_length=200)] | None = None
    business_hours: BusinessHours | None = None
    handoff: Handoff | None = None
    widget: Widget | None = None
    price_info: Annotated[Text, Field(max_length=2000)] | None = None
    knowledge_base_ids: Annotated[list[Id], Field(max_length=20)] | None = None
    calendar_id: Id | None = None
    phone: PhoneSettings | None = None

    _not_null = field_validator(
        "knowledge_base_ids",
        "phone",
        "name",
        "kind",
        "language",
        "llm",
        "tools",
        "qualification",
        "faq",
        "business_hours",
        "handoff",
        "widget",
        mode="before",
    )(_reject_null)


class Agent(AgentDefinition):
    model_config = ConfigDict(extra="ignore")

    id: str
    agency_id: str
    client_id: str
    name: str
    kind: str
    status: str
    public_key: str = Field(description="Goes into the embed snippet (data-agent).")
    tools: list[str]  # type: ignore[assignment]  # as stored, even if a tool was retired
    published_version: int | None = Field(None, description="Number of the live version.")
    published_at: datetime | None = None
    has_unpublished_changes: bool = Field(
        description="The draft differs from the published version (always true before the "
        "first publish)."
    )
    created_at: datetime
    updated_at: datetime | None = None


class AgentVersion(BaseModel):
    id: str
    agent_id: str
    number: int
    definition: dict[str, Any] = Field(description="The snapshot: name, kind and definition.")
    created_by: str | None
    created_at: datetime


# --- provider connections ------------------------------------------------------------------


class ProviderConnectionCreate(_Input):
    agency_id: Id
    name: Name
    base_url: BaseUrl = Field(description="OpenAI-compatible API base, e.g. .../v1")
    api_key: ApiKey | None = None
    default_model: ModelName
    region: RegionLabel


class ProviderConnectionUpdate(_Input):
    name: Name | None = None
    base_url: BaseUrl | None = None
    api_key: ApiKey | None = Field(None, description="A new key; null removes the key.")
    default_model: ModelName | None = None
    region: RegionLabel | None = None

    _not_null = field_validator("name", "base_url", "default_model", "region", mode="before")(
        _reject_null
    )


class ProviderConnection(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    agency_id: str
    name: str
    base_url: str
    default_model: str
    region: str
    api_key_set: bool
    api_key_last4: str | None = Field(
        None, description="The key's last four characters (keys of 12 characters or more)."
    )
    created_at: datetime
    updated_at: datetime | None = None
