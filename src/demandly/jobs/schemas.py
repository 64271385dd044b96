"""API shapes of jobs and domain events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    status: str
    agency_id: str | None
    client_id: str | None
    payload: dict[str, Any]
    priority: int
    run_at: datetime
    attempts: int
    max_attempts: int
    idempotency_key: str | None
    locked_by: str | None
    lease_expires_at: datetime | None
    last_error: str | None
    finished_at: datetime | None
    created_at: datetime
    updated_at: datetime | None


class DomainEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    type: str
    agency_id: str | None
    client_id: str | None
    entity_type: str | None
    entity_id: str | None
    payload: dict[str, Any]
    created_at: datetime
