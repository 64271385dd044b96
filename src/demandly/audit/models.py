"""The audit trail: append-only, hash-chained per agency (AVV Anlage 2, Eingabekontrolle)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from demandly.kit.context import Scope
from demandly.kit.db import Base, RecordModel, grants_criteria

PLATFORM_CHAIN = "platform"


class AuditEvent(RecordModel):
    __tablename__ = "audit_events"
    __id_prefix__ = "aud"
    __tenant__ = True
    __table_args__ = (Index("ix_audit_events_chain_seq", "chain", "seq", unique=True),)

    # The chain is the agency id, or "platform" for events outside any agency.
    chain: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(BigInteger)
    agency_id: Mapped[str | None] = mapped_column(String(40), index=True, default=None)
    client_id: Mapped[str | None] = mapped_column(String(40), index=True, default=None)
    actor_kind: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str | None] = mapped_column(String(40), default=None)
    actor_role: Mapped[str | None] = mapped_column(String(32), default=None)
    action: Mapped[str] = mapped_column(String(64), index=True)
    entity_type: Mapped[str | None] = mapped_column(String(64), default=None)
    entity_id: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    changed_fields: Mapped[list[Any]] = mapped_column(JSON, default=list)
    ip: Mapped[str | None] = mapped_column(String(64), default=None)
    user_agent: Mapped[str | None] = mapped_column(String(300), default=None)
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    @classmethod
    def tenant_criteria(cls, scope: Scope) -> ColumnElement[bool]:
        return grants_criteria(scope, cls.agency_id, cls.client_id)

    def tenant_owner(self) -> tuple[str | None, str | None]:
        return self.agency_id, self.client_id


class AuditHead(Base):
    """The last link of each chain; its row lock serialises writers of one chain."""

    __tablename__ = "audit_heads"

    chain: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class AuditQueued(Base):
    """An event on its way into its chain (PostgreSQL). A transaction queues its events here as
    it commits; a deferred trigger (``audit_chain_queued``, migration 0011) links each one to
    its chain inside the commit itself and removes it from the queue, so the head's lock is
    held for no round trip. The event's canonical form comes in three pieces, around the
    previous event's hash and the sequence number that only the trigger knows (see
    ``chain.Canonical``). Empty once every transaction has committed."""

    __tablename__ = "audit_queue"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    chain: Mapped[str] = mapped_column(String(40))
    agency_id: Mapped[str | None] = mapped_column(String(40), default=None)
    client_id: Mapped[str | None] = mapped_column(String(40), default=None)
    actor_kind: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str | None] = mapped_column(String(40), default=None)
    actor_role: Mapped[str | None] = mapped_column(String(32), default=None)
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str | None] = mapped_column(String(64), default=None)
    entity_id: Mapped[str | None] = mapped_column(String(64), default=None)
    changed_fields: Mapped[list[Any]] = mapped_column(JSON, default=list)
    ip: Mapped[str | None] = mapped_column(String(64), default=None)
    user_agent: Mapped[str | None] = mapped_column(String(300), default=None)
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column()
    canonical_head: Mapped[str] = mapped_column(Text)
    canonical_middle: Mapped[str] = mapped_column(Text)
    canonical_tail: Mapped[str] = mapped_column(Text)
