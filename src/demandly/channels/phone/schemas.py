"""Request and response bodies of the phone API: Twilio connections, numbers, calls,
campaigns and the phone simulator."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from demandly.agents.schemas import E164, HHMM
from demandly.tenancy.schemas import Id, Name, PlainText

AccountSid = Annotated[str, Field(pattern=r"^AC[0-9a-fA-F]{32}$", description="AC…")]
ApiKeySid = Annotated[str, Field(pattern=r"^SK[0-9a-fA-F]{32}$", description="SK…")]
Secret = Annotated[
    str,
    Field(
        min_length=8,
        max_length=256,
        pattern=r"^[\x21-\x7e]+$",
        description="Write-only: stored encrypted, never returned.",
    ),
]
CONTEXT_KEY = re.compile(r"^[\w .-]{1,40}$")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
CONTEXT_VALUE_CHARS = 500
CONTEXT_TOTAL_CHARS = 2000


def _check_context(value: dict[str, Any]) -> dict[str, Any]:
    """What an outbound call tells its agent: flat ``key: value`` pairs (text, numbers, yes/no)
    without control characters, short enough for a prompt."""
    total = 0
    for key, item in value.items():
        if not CONTEXT_KEY.match(key):
            raise ValueError("keys are 1-40 letters, digits, spaces, '_', '.' or '-'")
        if item is not None and not isinstance(item, str | int | float | bool):
            raise ValueError(f"{key}: only text, numbers, true/false or null")
        text = "" if item is None else str(item)
        if len(text) > CONTEXT_VALUE_CHARS:
            raise ValueError(f"{key}: at most {CONTEXT_VALUE_CHARS} characters")
        if CONTROL.search(text):
            raise ValueError(f"{key}: control characters are not allowed")
        total += len(key) + len(text)
    if total > CONTEXT_TOTAL_CHARS:
        raise ValueError(f"at most {CONTEXT_TOTAL_CHARS} characters in all")
    return value


Context = Annotated[dict[str, Any], Field(max_length=20), AfterValidator(_check_context)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _reject_null(value: Any) -> Any:
    if value is None:
        raise ValueError("may not be null")
    return value


# --- connections ---------------------------------------------------------------------------


class TwilioConnectionCreate(_Input):
    """Either an Auth Token, or an API key with its secret (then the Auth Token is still
    needed to check the signatures of Twilio's webhooks for inbound calls)."""

    agency_id: Id
    client_id: Id | None = Field(None, description="Only for this client; null: the agency's.")
    name: Name
    account_sid: AccountSid
    auth_token: Secret | None = None
    api_key_sid: ApiKeySid | None = None
    api_key_secret: Secret | None = None

    @model_validator(mode="after")
    def _credentials(self) -> TwilioConnectionCreate:
        if (self.api_key_sid is None) != (self.api_key_secret is None):
            raise ValueError("api_key_sid and api_key_secret go together")
        if self.auth_token is None and self.api_key_sid is None:
            raise ValueError("give auth_token, or api_key_sid with api_key_secret")
        return self


class TwilioConnectionUpdate(_Input):
    name: Name | None = None
    auth_token: Secret | None = None
    api_key_sid: ApiKeySid | None = None
    api_key_secret: Secret | None = None

    _not_null = field_validator("name", mode="before")(_reject_null)


class TwilioConnection(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    agency_id: str
    client_id: str | None
    name: str
    account_sid: str
    friendly_name: str | None
    auth_token_set: bool
    api_key_sid: str | None
    verified_at: datetime | None
    created_at: datetime


# --- numbers -------------------------------------------------------------------------------


class NumberImport(_Input):
    connection_id: Id


class NumberSearch(BaseModel):
    number: str
    friendly_name: str | None
    locality: str | None
    region: str | None
    capabilities: dict[str, Any]


class NumberBuy(_Input):
    connection_id: Id
    number: E164
    agent_id: Id | None = None


class NumberUpdate(_Input):
    agent_id: Id | None = Field(None, description="The agent that answers; null: nobody.")


class PhoneNumber(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    agency_id: str
    client_id: str | None
    connection_id: str
    twilio_sid: str
    number: str
    friendly_name: str | None
    agent_id: str | None
    capabilities: dict[str, Any]
    voice_url: str | None
    created_at: datetime


# --- calls ---------------------------------------------------------------------------------


class OutboundCall(_Input):
    agent_id: Id
    to: E164
    contact_id: Id | None = None
    phone_number_id: Id | None = Field(None, description="Default: the agent's first number.")
    context: Context = Field(default_factory=dict, description="Shown to the agent.")


class TranscriptLine(BaseModel):
    seq: int
    role: str
    content: str
    created_at: datetime


class Call(BaseModel):
    id: str
    agency_id: str
    client_id: str
    agent_id: str
    conversation_id: str | None
    direction: str
    mode: str
    simulated: bool
    from_number: str | None = Field(description="Masked in lists (+49 *** *** 67).")
    to_number: str | None = Field(description="Masked in lists.")
    status: str
    answered_by: str | None
    started_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    duration_seconds: int | None
    end_reason: str | None
    recording_consent: bool | None
    recording_url: str | None
    recording_status: str | None
    recording_duration_seconds: int | None
    summary: str | None
    outcome: str | None
    transferred_to: str | None
    campaign_id: str | None
    contact_id: str | None
    created_at: datetime


class CallDetail(Call):
    context: dict[str, Any]
    transcript: list[TranscriptLine]


# --- simulator -----------------------------------------------------------------------------


class SimulatedTurn(_Input):
    call_id: Id
    text: Annotated[PlainText, Field(max_length=2000)] = Field(
        description="What the caller says; empty: silence. A single digit or digits: keys."
    )


class SimulatedCall(BaseModel):
    call_id: str
    conversation_id: str | None
    prompt: str = Field(description="What the caller hears.")
    action: Literal["gather", "hangup", "dial", "stream", "none"]
    dial_number: str | None = None
    twiml: str


# --- campaigns -----------------------------------------------------------------------------


class CampaignCreate(_Input):
    agent_id: Id
    name: Name
    contact_ids: Annotated[list[Id], Field(max_length=5000)] = Field(default_factory=list)
    window_start: HHMM = "09:00"
    window_end: HHMM = "18:00"
    weekdays: Annotated[list[Annotated[int, Field(ge=0, le=6)]], Field(min_length=1)] = Field(
        default_factory=lambda: [0, 1, 2, 3, 4], description="0 = Monday"
    )
    max_concurrent: int = Field(1, ge=1, le=50)
    max_attempts: int = Field(3, ge=1, le=10)
    retry_minutes: int = Field(60, ge=1, le=10080, description="Doubles with every attempt.")
    context: Context = Field(default_factory=dict)

    @field_validator("window_end")
    @classmethod
    def _window(cls, end: str, info: ValidationInfo) -> str:
        start = info.data.get("window_start")
        if start is not None and end <= start:
            raise ValueError("must be later than window_start")
        return end


class CampaignUpdate(_Input):
    name: Name | None = None
    status: Literal["running", "paused"] | None = None
    add_contact_ids: Annotated[list[Id], Field(max_length=5000)] | None = None

    _not_null = field_validator("name", "status", mode="before")(_reject_null)


class CampaignTarget(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    contact_id: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_call_id: str | None
    last_result: str | None


class Campaign(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    agency_id: str
    client_id: str
    agent_id: str
    name: str
    status: str
    window_start: str
    window_end: str
    weekdays: list[int]
    max_concurrent: int
    max_attempts: int
    retry_minutes: int
    context: dict[str, Any]
    created_at: datetime


class CampaignDetail(Campaign):
    targets: list[CampaignTarget]
