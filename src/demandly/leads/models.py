"""Contacts (the people), leads (one enquiry of a person: answers, score, status), notes on
leads, and each client's lead settings (scoring rules and who is told about new leads).

Contacts are deduplicated per client by their normalised e-mail address and E.164 phone
number, enforced by unique constraints. The address and number are stored in the clear (not
encrypted with a blind index): the dashboard searches them by part ("@praxis-sommer"), a blind
index would only find exact matches, and ``Keyring.mac`` hashes under the active key, so every
key rotation would silently break deduplication until each row was re-hashed. The rows are
protected like every transcript: tenant scope, row-level security, audit of every change.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from demandly.kit.db import RecordModel, TenantMixin


class LeadStatus(StrEnum):
    NEW = "new"
    QUALIFIED = "qualified"
    DISQUALIFIED = "disqualified"
    CONTACTED = "contacted"
    WON = "won"
    LOST = "lost"


class Contact(RecordModel, TenantMixin):
    __tablename__ = "contacts"
    __id_prefix__ = "ctc"
    __table_args__ = (
        UniqueConstraint("client_id", "email"),
        UniqueConstraint("client_id", "phone"),
    )

    client_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    # Normalised: trimmed and lower case.
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    # E.164 (+4930123456), read in the client's region when typed nationally.
    phone: Mapped[str | None] = mapped_column(String(20), default=None)
    company: Mapped[str | None] = mapped_column(String(200), default=None)
    # Where the contact came from: chat, phone, api, manual, import.
    source: Mapped[str] = mapped_column(String(20), default="manual")
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    consent_contact: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_marketing: Mapped[bool] = mapped_column(Boolean, default=False)
    # Art. 18 GDPR: kept, but not processed (no forwarding, no export).
    processing_restricted: Mapped[bool] = mapped_column(Boolean, default=False)
    do_not_call: Mapped[bool] = mapped_column(Boolean, default=False)


class Lead(RecordModel, TenantMixin):
    __tablename__ = "leads"
    __id_prefix__ = "lead"
    # One lead per conversation (several conversations may lead to several leads of a contact).
    __table_args__ = (UniqueConstraint("conversation_id"),)

    client_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    # Deleting a contact (erasure) deletes its leads: their answers are the same person's data.
    contact_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("contacts.id", ondelete="CASCADE"), index=True, default=None
    )
    agent_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("agents.id", ondelete="SET NULL"), index=True, default=None
    )
    conversation_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("conversations.id", ondelete="SET NULL"), default=None
    )
    # Qualification answers by the agent's field keys.
    answers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    score: Mapped[int] = mapped_column(Integer, default=0, index=True)
    status: Mapped[str] = mapped_column(String(20), default=LeadStatus.NEW, index=True)
    status_reason: Mapped[str | None] = mapped_column(String(200), default=None)
    qualified_at: Mapped[datetime | None] = mapped_column(default=None)
    owner_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    tags: Mapped[list[Any]] = mapped_column(default=list)


class LeadNote(RecordModel, TenantMixin):
    __tablename__ = "lead_notes"
    __id_prefix__ = "lnote"

    client_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    lead_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("leads.id", ondelete="CASCADE"), index=True
    )
    # The user or API key that wrote it.
    author_id: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)


class LeadSettings(RecordModel, TenantMixin):
    """A client's scoring rules, qualification threshold and lead notifications (one row per
    client, created on first change; absent means the defaults)."""

    __tablename__ = "lead_settings"
    __id_prefix__ = "lset"

    client_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("clients.id", ondelete="CASCADE"), unique=True
    )
    # [{field, op, value, points}]
    rules: Mapped[list[Any]] = mapped_column(default=list)
    # Auto-qualify at this score once every required answer is in; null: never automatically.
    qualify_at: Mapped[int | None] = mapped_column(Integer, default=None)
    notify_emails: Mapped[list[Any]] = mapped_column(default=list)
    notify_on: Mapped[list[Any]] = mapped_column(default=list)
