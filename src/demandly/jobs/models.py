"""The durable job queue and the domain events table (the outbox)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from demandly.kit.context import Scope
from demandly.kit.db import RecordModel, grants_criteria
from demandly.kit.time import utcnow


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"


class _OptionalTenant:
    """Rows that belong to an agency, or to the platform when ``agency_id`` is null."""

    __tenant__ = True

    @classmethod
    def tenant_criteria(cls, scope: Scope) -> ColumnElement[bool]:
        return grants_criteria(scope, cls.agency_id, cls.client_id)  # type: ignore[attr-defined]

    def tenant_owner(self) -> tuple[str | None, str | None]:
        return self.agency_id, self.client_id  # type: ignore[attr-defined]


class Job(_OptionalTenant, RecordModel):
    __tablename__ = "jobs"
    __id_prefix__ = "job"
    __table_args__ = (Index("ix_jobs_claim", "status", "run_at", "priority"),)

    name: Mapped[str] = mapped_column(String(100), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    agency_id: Mapped[str | None] = mapped_column(String(40), index=True, default=None)
    client_id: Mapped[str | None] = mapped_column(String(40), default=None)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    # Lower runs first.
    priority: Mapped[int] = mapped_column(Integer, default=100)
    run_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True, default=None)
    locked_by: Mapped[str | None] = mapped_column(String(100), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class DomainEvent(_OptionalTenant, RecordModel):
    """``lead.created``, ``appointment.booked`` …: written with the change, handled by jobs."""

    __tablename__ = "events"
    __id_prefix__ = "evt"

    type: Mapped[str] = mapped_column(String(100), index=True)
    agency_id: Mapped[str | None] = mapped_column(String(40), index=True, default=None)
    client_id: Mapped[str | None] = mapped_column(String(40), default=None)
    entity_type: Mapped[str | None] = mapped_column(String(64), default=None)
    entity_id: Mapped[str | None] = mapped_column(String(64), default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
