"""Dashboard screen: audit. The audit trail the user may read, newest first: agency-wide for
agency roles, their own client for a client_admin. Same repository and rule as
``GET /api/v1/audit-events``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Response

from demandly.audit.models import AuditEvent
from demandly.audit.repository import AuditFilters, AuditRepository
from demandly.auth.permissions import Permission
from demandly.kit.context import Scope
from demandly.kit.errors import Forbidden, NotFound
from demandly.kit.pagination import PageParams
from demandly.tenancy.models import Agency
from demandly.tenancy.repository import TenancyRepository
from demandly.web.deps import Page, PageDep, PageRoute

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 50
FILTERS = ("actor_id", "action", "entity_type", "client_id", "since", "until")
MAX_ACTORS = 200
ACTOR_KINDS = {"user": "User", "api_key": "API key", "system": "System", "visitor": "Visitor"}


@dataclass(frozen=True)
class Query:
    """The filters as typed (shown back in the form) and any message about them."""

    values: dict[str, str]
    errors: dict[str, str]


def _reach(page: Page) -> tuple[Agency, Scope | None]:
    """The API's rule: agency-wide with audit:read at the agency, else only the places where
    the role carries it (a client_admin's client); 403 when nowhere."""
    if page.agency is None:
        raise NotFound()
    if page.can(Permission.AUDIT_READ):
        page.require(Permission.AUDIT_READ)
        return page.agency, None
    within = page.auth.scope_where(Permission.AUDIT_READ)
    if within is None:
        return page.agency, None
    if not within.grants:
        raise Forbidden(f"Your role does not allow {Permission.AUDIT_READ.value}.")
    return page.agency, within


def _text(value: str | None, limit: int = 64) -> str:
    value = (value or "").strip()[:limit]
    return value if value.isprintable() else ""


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _query(page: Page) -> Query:
    params = page.request.query_params
    values = {name: _text(params.get(name)) for name in FILTERS}
    errors: dict[str, str] = {}
    for name in ("since", "until"):
        if values[name] and _day(values[name]) is None:
            errors[name] = page.t("Enter a date such as 2025-03-31.")
            values[name] = ""
    return Query(values=values, errors=errors)


def _filters(page: Page, agency: Agency, query: Query) -> AuditFilters:
    values = query.values
    zone = ZoneInfo(agency.timezone or "UTC")
    since = _day(values["since"]) if values["since"] else None
    until = _day(values["until"]) if values["until"] else None
    return AuditFilters(
        agency_id=agency.id,
        client_id=values["client_id"] or None,
        action=values["action"] or None,
        entity_type=values["entity_type"] or None,
        actor_id=values["actor_id"] or None,
        # Dates are days in the agency's time zone; "until" includes its whole day.
        since=datetime.combine(since, time(), zone) if since else None,
        until=datetime.combine(until + timedelta(days=1), time(), zone) if until else None,
    )


async def _actors(page: Page, ids: list[str]) -> dict[str, str]:
    users = await TenancyRepository(page.session).users_by_ids(ids)
    return {user.id: user.name or user.email for user in users}


async def _team(page: Page, agency: Agency) -> list[tuple[str, str]]:
    """People to filter by: the members the user may see (at most ``MAX_ACTORS``)."""
    repo = TenancyRepository(page.session)
    statement = repo.memberships(
        agency.id, None, page.auth.scope_where(Permission.MEMBERS_READ)
    ).limit(MAX_ACTORS)
    people = {
        m.user_id: f"{m.user.name} ({m.user.email})" if m.user.name else m.user.email
        for m in (await page.session.execute(statement)).unique().scalars().all()
    }
    return sorted(people.items(), key=lambda item: item[1].lower())


def _row(event: AuditEvent, actors: dict[str, str], clients: dict[str, str]) -> dict[str, Any]:
    return {
        "id": event.id,
        "created_at": event.created_at,
        "actor_id": event.actor_id,
        "actor": actors.get(event.actor_id or ""),
        "kind": ACTOR_KINDS.get(event.actor_kind, event.actor_kind),
        "actor_role": event.actor_role,
        "action": event.action,
        "entity_type": event.entity_type,
        "entity_id": event.entity_id,
        "client": clients.get(event.client_id or "", event.client_id),
        "changed_fields": [str(f) for f in event.changed_fields or []],
    }


@router.get("/app/audit")
async def audit_log(page: PageDep) -> Response:
    agency, within = _reach(page)
    query = _query(page)
    client_id = query.values["client_id"]
    if client_id:
        await page.client(client_id, Permission.AUDIT_READ)
    cursor = _text(page.request.query_params.get("cursor")) or None
    if cursor and not cursor.replace("_", "").replace("-", "").isalnum():
        cursor = None
    rows, next_cursor = await AuditRepository(page.session).page(
        _filters(page, agency, query), PageParams(limit=PAGE_SIZE, cursor=cursor), within
    )
    actors = await _actors(page, [e.actor_id for e in rows if e.actor_id])
    clients = {c.id: c.name for c in page.clients}
    kept = {k: v for k, v in query.values.items() if v}
    return page.render(
        "audit/list.html",
        status_code=422 if query.errors else 200,
        title=page.t("Audit log"),
        section="audit",
        events=[_row(e, actors, clients) for e in rows],
        values=query.values,
        errors=query.errors,
        team=await _team(page, agency),
        audit_clients=[c for c in page.clients if page.can(Permission.AUDIT_READ, c.id)],
        filtered=bool(kept),
        filter_url=lambda **extra: "/app/audit?" + urlencode({**kept, **extra}),
        next_url=(
            "/app/audit?" + urlencode({**kept, "cursor": next_cursor}) if next_cursor else None
        ),
        timezone=agency.timezone or "UTC",
    )
