"""Tables of the phone channel: Twilio connections, phone numbers, calls, campaigns.

A connection belongs to an agency (``client_id`` null: usable for all its clients) or to one
client. A number belongs to its connection's tenant and moves to a client when it is assigned
to one of the client's agents. A call always belongs to a client (its agent's).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from demandly.kit.crypto import EncryptedString
from demandly.kit.db import RecordModel, TenantMixin


class CallStatus(StrEnum):
    QUEUED = "queued"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    FAILED = "failed"
    NO_ANSWER = "no-answer"
    CANCELED = "canceled"


FINAL_STATUSES = frozenset(
    {
        CallStatus.COMPLETED,
        CallStatus.BUSY,
        CallStatus.FAILED,
        CallStatus.NO_ANSWER,
        CallStatus.CANCELED,
    }
)


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"


class TargetStatus(StrEnum):
    PENDING = "pending"
    CALLING = "calling"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


class TwilioConnection(RecordModel, TenantMixin):
    __tablename__ = "twilio_connections"
    __id_prefix__ = "twc"

    name: Mapped[str] = mapped_column(String(200))
    account_sid: Mapped[str] = mapped_column(String(34), index=True)
    # Signs Twilio's webhooks; without it, calls cannot be answered (REST may use an API key).
    auth_token: Mapped[str | None] = mapped_column(EncryptedString(512), default=None)
    api_key_sid: Mapped[str | None] = mapped_column(String(34), default=None)
    api_key_secret: Mapped[str | None] = mapped_column(EncryptedString(512), default=None)
    # What Twilio calls the account, as the verification on save read it.
    friendly_name: Mapped[str | None] = mapped_column(String(200), default=None)
    verified_at: Mapped[datetime | None] = mapped_column(default=None)


class PhoneNumber(RecordModel, TenantMixin):
    __tablename__ = "phone_numbers"
    __id_prefix__ = "pn"

    connection_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("twilio_connections.id", ondelete="CASCADE"), index=True
    )
    twilio_sid: Mapped[str] = mapped_column(String(34), unique=True)
    number: Mapped[str] = mapped_column(String(20), index=True)
    friendly_name: Mapped[str | None] = mapped_column(String(200), default=None)
    agent_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("agents.id", ondelete="SET NULL"), default=None, index=True
    )
    capabilities: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The VoiceUrl Twilio holds for the number, as we last set it.
    voice_url: Mapped[str | None] = mapped_column(String(500), default=None)


class Call(RecordModel, TenantMixin):
    __tablename__ = "calls"
    __id_prefix__ = "call"
    __table_args__ = (Index("ix_calls_client_created", "client_id", "created_at"),)
    # Per-turn bookkeeping of the gather loop is not an edit by anyone.
    __audit_ignore__ = ("gather_seq", "silence_count", "last_twiml", "status_sequence")

    client_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    agent_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("agents.id", ondelete="CASCADE"), index=True
    )
    agent_version_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("agent_versions.id", ondelete="CASCADE")
    )
    # Created when the call is answered (an outbound call nobody picks up has none).
    conversation_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("conversations.id", ondelete="SET NULL"), default=None, index=True
    )
    connection_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("twilio_connections.id", ondelete="SET NULL"), default=None
    )
    phone_number_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("phone_numbers.id", ondelete="SET NULL"), default=None
    )
    # Null for simulated calls, and for an outbound call until Twilio accepted it.
    twilio_call_sid: Mapped[str | None] = mapped_column(String(34), unique=True, default=None)
    direction: Mapped[str] = mapped_column(String(10))
    mode: Mapped[str] = mapped_column(String(10))
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)
    from_number: Mapped[str | None] = mapped_column(String(20), default=None)
    to_number: Mapped[str | None] = mapped_column(String(20), default=None)
    status: Mapped[str] = mapped_column(String(12), default=CallStatus.QUEUED, index=True)
    # Twilio's SequenceNumber of the last status callback applied.
    status_sequence: Mapped[int] = mapped_column(Integer, default=-1)
    answered_by: Mapped[str | None] = mapped_column(String(30), default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    answered_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    duration_seconds: Mapped[int | None] = mapped_column(Integer, default=None)
    end_reason: Mapped[str | None] = mapped_column(String(40), default=None)
    # §201 StGB: recording only after the caller said yes; None until asked.
    recording_consent: Mapped[bool | None] = mapped_column(Boolean, default=None)
    recording_consent_at: Mapped[datetime | None] = mapped_column(default=None)
    recording_sid: Mapped[str | None] = mapped_column(String(34), default=None)
    recording_url: Mapped[str | None] = mapped_column(String(500), default=None)
    recording_status: Mapped[str | None] = mapped_column(String(20), default=None)
    recording_duration_seconds: Mapped[int | None] = mapped_column(Integer, default=None)
    summary: Mapped[str | None] = mapped_column(Text, default=None)
    outcome: Mapped[str | None] = mapped_column(String(20), default=None)
    # Gather loop: the last answered turn, silences in a row, and the TwiML of the last answer
    # (a retried callback with the same sequence gets it again).
    gather_seq: Mapped[int] = mapped_column(Integer, default=0)
    silence_count: Mapped[int] = mapped_column(Integer, default=0)
    last_twiml: Mapped[str | None] = mapped_column(Text, default=None)
    # Set by the transfer_call tool; the next TwiML dials.
    transfer_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    transferred_to: Mapped[str | None] = mapped_column(String(20), default=None)
    campaign_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("campaigns.id", ondelete="SET NULL"), default=None, index=True
    )
    campaign_target_id: Mapped[str | None] = mapped_column(String(40), default=None)
    contact_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("contacts.id", ondelete="SET NULL"), default=None
    )
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Campaign(RecordModel, TenantMixin):
    __tablename__ = "campaigns"
    __id_prefix__ = "cmp"

    client_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    agent_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("agents.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(12), default=CampaignStatus.DRAFT, index=True)
    # Calling window, in the client's time zone: "HH:MM" and weekdays (0 = Monday).
    window_start: Mapped[str] = mapped_column(String(5))
    window_end: Mapped[str] = mapped_column(String(5))
    weekdays: Mapped[list[Any]] = mapped_column(JSON, default=list)
    max_concurrent: Mapped[int] = mapped_column(Integer, default=1)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    retry_minutes: Mapped[int] = mapped_column(Integer, default=60)
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CampaignTarget(RecordModel, TenantMixin):
    """One contact of a campaign, and how far calling it got."""

    __tablename__ = "campaign_targets"
    __id_prefix__ = "cmt"
    __audit_ignore__ = ("next_attempt_at",)

    client_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    campaign_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    # A contact of the leads domain; deleting the contact removes it from the campaign.
    contact_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("contacts.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(10), default=TargetStatus.PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    last_call_id: Mapped[str | None] = mapped_column(String(40), default=None)
    last_result: Mapped[str | None] = mapped_column(String(30), default=None)
