"""API shapes of the audit trail."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from demandly.audit.models import AuditEvent


class AuditActor(BaseModel):
    kind: str
    id: str | None = None
    role: str | None = None


class AuditEventOut(BaseModel):
    id: str
    seq: int
    agency_id: str | None
    client_id: str | None
    actor: AuditActor
    action: str
    entity_type: str | None
    entity_id: str | None
    changed_fields: list[str]
    ip: str | None
    user_agent: str | None
    request_id: str | None
    created_at: datetime
    hash: str
    prev_hash: str

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventOut:
        return cls(
            id=event.id,
            seq=event.seq,
            agency_id=event.agency_id,
            client_id=event.client_id,
            actor=AuditActor(kind=event.actor_kind, id=event.actor_id, role=event.actor_role),
            action=event.action,
            entity_type=event.entity_type,
            entity_id=event.entity_id,
            changed_fields=[str(f) for f in event.changed_fields or []],
            ip=event.ip,
            user_agent=event.user_agent,
            request_id=event.request_id,
            created_at=event.created_at,
            hash=event.hash,
            prev_hash=event.prev_hash,
        )
