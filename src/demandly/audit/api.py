"""``GET /api/v1/audit-events``: the audit trail of an agency or client, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from demandly.audit.repository import AuditFilters, AuditRepository
from demandly.audit.schemas import AuditEventOut
from demandly.auth.dependencies import CurrentAuth, DbSession
from demandly.auth.permissions import Permission
from demandly.kit.context import Scope
from demandly.kit.errors import Forbidden, ValidationFailed
from demandly.kit.pagination import Page, PageParams, page_params

router = APIRouter(tags=["audit"])

Id = Annotated[str | None, Query(max_length=64)]
Name = Annotated[str | None, Query(max_length=64)]


@router.get("/audit-events", response_model=Page[AuditEventOut])
async def list_audit_events(
    auth: CurrentAuth,
    session: DbSession,
    page: Annotated[PageParams, Depends(page_params)],
    agency_id: Id = None,
    client_id: Id = None,
    action: Name = None,
    entity_type: Name = None,
    entity_id: Id = None,
    actor_id: Id = None,
    since: Annotated[datetime | None, Query(description="created at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="created before (ISO 8601)")] = None,
) -> Page[AuditEventOut]:
    """Without ``agency_id`` a platform admin sees every chain, platform events included;
    anyone else sees the places where their role may read the audit trail."""
    within: Scope | None = None
    if agency_id is not None:
        auth.require(Permission.AUDIT_READ, agency_id, client_id)
    elif not auth.is_platform_admin:
        if client_id is not None:
            raise ValidationFailed("agency_id", "Give the client's agency_id with client_id.")
        within = auth.scope_where(Permission.AUDIT_READ)
        if within is None or not within.grants:
            raise Forbidden(f"Your role does not allow {Permission.AUDIT_READ.value}.")
    filters = AuditFilters(
        agency_id=agency_id,
        client_id=client_id,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        actor_id=actor_id,
        since=since,
        until=until,
    )
    rows, cursor = await AuditRepository(session).page(filters, page, within)
    return Page[AuditEventOut](items=[AuditEventOut.of(r) for r in rows], next_cursor=cursor)
