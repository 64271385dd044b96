"""Dashboard screen: a client's leads (filters, CSV export) and a lead's page (answers, status,
owner, tags, notes, its conversation and appointments). The same services and permission
checks as ``leads/api.py``."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse

from demandly.agents.schemas import QualificationField
from demandly.auth.dependencies import get_database
from demandly.auth.permissions import Permission
from demandly.booking.models import Appointment
from demandly.booking.repository import AppointmentFilters, BookingRepository
from demandly.kit.errors import DemandlyError, NotFound
from demandly.kit.pagination import PageParams, paginate
from demandly.leads import export, service
from demandly.leads import schemas as s
from demandly.leads.models import Lead, LeadStatus
from demandly.leads.repository import LeadFilters, LeadRepository
from demandly.tenancy.models import Client, User
from demandly.web.deps import Page, PageDep, PageRoute
from demandly.web.forms import FormInvalid, parse, service_errors
from demandly.web.screens.inbox import LABELS, client_agents, date_range, query_values

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 50
APPOINTMENTS_SHOWN = 20
FILTER_NAMES = ("status", "min_score", "tag", "owner_id", "since", "until", "q")
STATUS_BADGE = {"qualified": "ok", "won": "ok", "contacted": "warn", "disqualified": "danger"}
_TAG = re.compile(s.TAG_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CURSOR = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _lead_filters(
    values: dict[str, str], client: Client, owners: dict[str, str]
) -> tuple[LeadFilters, str | None, dict[str, str]]:
    """The API's filters from the page's query (and the free-text search), with a message per
    field that does not fit."""
    errors: dict[str, str] = {}
    since, until = date_range(values, client.timezone, errors)
    status = values["status"] or None
    if status is not None and status not in {x.value for x in LeadStatus}:
        errors["status"] = "Choose one of the options."
        status = None
    min_score = None
    if values["min_score"]:
        try:
            min_score = int(values["min_score"])
        except ValueError:
            errors["min_score"] = "Enter a whole number."
        else:
            if abs(min_score) > 1_000_000:
                errors["min_score"] = "Enter a whole number."
    tag = values["tag"] or None
    if tag is not None and not _TAG.match(tag):
        errors["tag"] = "tags are 1-40 characters: letters, digits, spaces and . : / & + - _"
    owner_id = values["owner_id"] or None
    if owner_id is not None and owner_id not in owners:
        errors["owner_id"] = "Choose one of the options."
    q = values["q"] or None
    if q is not None and _CONTROL.search(q):
        errors["q"] = "Enter plain text."
    filters = LeadFilters(
        client_id=client.id,
        owner_id=owner_id,
        status=status,
        min_score=min_score,
        tag=tag,
        since=since,
        until=until,
    )
    return filters, q, errors


async def _team(page: Page, client: Client, *also: str | None) -> dict[str, str]:
    """Who can see the client (the owners a lead can have), names by user id; ``also`` adds
    users shown on the page who are not (or no longer) in that list."""
    repo = LeadRepository(page.session)
    users = {u.id: u for u in await repo.team_members(client.agency_id, client.id)}
    missing = {user_id for user_id in also if user_id and user_id not in users}
    users |= await repo.users_by_id(missing)
    return {user_id: _person(user) for user_id, user in users.items()}


def _person(user: User) -> str:
    return user.name or user.email


def _url(client: Client, values: dict[str, str], path: str = "", **extra: str) -> str:
    query = {k: values[k] for k in FILTER_NAMES if values.get(k)} | extra
    return f"/app/clients/{client.id}/leads{path}" + (f"?{urlencode(query)}" if query else "")


def _render(page: Page, template: str, status_code: int = 200, **context: Any) -> Response:
    return page.render(
        template,
        status_code=status_code,
        section="leads",
        lead_badge=STATUS_BADGE,
        lead_statuses=[x.value for x in LeadStatus],
        **LABELS,
        **context,
    )


# --- the list ------------------------------------------------------------------------------


@router.get("/app/clients/{client_id}/leads")
async def leads(page: PageDep, client_id: str) -> Response:
    client = await page.client(client_id)
    values = query_values(page.request, *FILTER_NAMES, "cursor")
    owners = await _team(page, client, values["owner_id"])
    filters, q, errors = _lead_filters(values, client, owners)
    items: list[s.Lead] = []
    next_url = None
    if not errors:
        statement = LeadRepository(page.session).matching(
            filters, q, page.auth.scope_where(Permission.CONTENT_READ)
        )
        cursor = values["cursor"] if _CURSOR.match(values["cursor"]) else None
        rows, next_cursor = await paginate(
            page.session, statement, Lead.id, PageParams(limit=PAGE_SIZE, cursor=cursor)
        )
        items = await service.lead_views(page.session, rows)
        next_url = _url(client, values, cursor=next_cursor) if next_cursor else None
    return _render(
        page,
        "leads/list.html",
        status_code=422 if errors else 200,
        title=page.t("Leads"),
        client=client,
        leads=items,
        agents=await client_agents(page.session, client.id),
        owners=owners,
        values=values,
        errors={k: page.t(v) for k, v in errors.items()},
        next_url=next_url,
        export_url=_url(client, values, "/export.csv"),
    )


@router.get("/app/clients/{client_id}/leads/export.csv")
async def export_csv(page: PageDep, client_id: str) -> Response:
    """The leads the list's filters select, as the API's CSV export writes them."""
    client = await page.client(client_id)
    values = query_values(page.request, *FILTER_NAMES)
    owners = await _team(page, client, values["owner_id"])
    filters, q, errors = _lead_filters(values, client, owners)
    if errors:
        raise NotFound()  # only a hand-made link gets here: the list shows the messages
    within = page.auth.scope_where(Permission.CONTENT_READ)
    lines = export.csv_lines_matching(get_database(page.request), page.auth, filters, within, q)
    return StreamingResponse(
        lines,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="leads.csv"',
            "Cache-Control": "no-store",
        },
    )


# --- a lead --------------------------------------------------------------------------------


async def _lead(
    page: Page, client_id: str, lead_id: str, *, write: bool = False
) -> tuple[Client, Lead]:
    """The client's lead: 404 when either is out of reach (or they do not belong together),
    403 for a change the role does not allow."""
    client = await page.client(client_id)
    lead = await service.get_lead(page.session, lead_id[:64], for_update=write)
    if lead.client_id != client.id:
        raise NotFound("Lead not found.")
    if write:
        page.require(Permission.CONTENT_WRITE, client.id)
    return client, lead


def _label(item: QualificationField, lang: str) -> str:
    label = item.label
    return (label.de if lang == "de" else label.en) or label.en or label.de or item.key


async def _answers(page: Page, lead: Lead) -> list[tuple[str, Any]]:
    """The answers in the order of the agent's form, by its labels; others after them."""
    form = await service.form_of(page.session, lead)
    shown = [
        (_label(item, page.lang), lead.answers[item.key])
        for item in form
        if lead.answers.get(item.key) not in (None, "")
    ]
    known = {item.key for item in form}
    shown += [(key, value) for key, value in lead.answers.items() if key not in known]
    return shown


async def _appointments(page: Page, lead: Lead) -> list[Appointment]:
    if lead.contact_id is None:
        return []
    statement = (
        BookingRepository(page.session)
        .appointments(AppointmentFilters(client_id=lead.client_id, contact_id=lead.contact_id))
        .order_by(Appointment.start_at.desc())
        .limit(APPOINTMENTS_SHOWN)
    )
    return list((await page.session.execute(statement)).scalars())


async def _render_lead(
    page: Page,
    client: Client,
    lead: Lead,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    note: str = "",
    status_code: int = 200,
) -> Response:
    [view] = await service.lead_views(page.session, [lead])
    notes = await service.notes(page.session, lead)
    owners = await _team(page, client, lead.owner_id, *(n.author_id for n in notes))
    agents = await client_agents(page.session, client.id)
    return _render(
        page,
        "leads/detail.html",
        status_code=status_code,
        title=(view.contact and (view.contact.name or view.contact.email)) or page.t("Lead"),
        client=client,
        lead=view,
        answers=await _answers(page, lead),
        notes=notes,
        owners=owners,
        agent=agents.get(lead.agent_id or ""),
        appointments=await _appointments(page, lead),
        can_write=page.can(Permission.CONTENT_WRITE, client.id),
        errors={k: page.t(v) for k, v in (errors or {}).items()},
        note=note,
        form=form
        or {"status": lead.status, "owner_id": lead.owner_id or "", "tags": ", ".join(lead.tags)},
    )


@router.get("/app/clients/{client_id}/leads/{lead_id}")
async def lead_page(page: PageDep, client_id: str, lead_id: str) -> Response:
    client, lead = await _lead(page, client_id, lead_id)
    return await _render_lead(page, client, lead)


def _changes(lead: Lead, form: dict[str, str]) -> dict[str, Any]:
    """What the form changes (only that is sent: an unchanged status is not set again)."""
    changes: dict[str, Any] = {}
    if form["status"] and form["status"] != lead.status:
        changes["status"] = form["status"]
    if (form["owner_id"] or None) != lead.owner_id:
        changes["owner_id"] = form["owner_id"] or None
    tags = [tag.strip() for tag in form["tags"].split(",") if tag.strip()]
    if tags != list(lead.tags):
        changes["tags"] = tags
    return changes


@router.post("/app/clients/{client_id}/leads/{lead_id}")
async def update_lead(page: PageDep, client_id: str, lead_id: str) -> Response:
    client, lead = await _lead(page, client_id, lead_id, write=True)
    posted = await page.request.form()
    form = {name: str(posted.get(name) or "").strip() for name in ("status", "owner_id", "tags")}
    try:
        data = parse(s.LeadUpdate, _changes(lead, form))
        await service.update_lead(page.session, lead, data)
    except FormInvalid as invalid:
        return await _render_lead(
            page, client, lead, errors=invalid.errors, form=form, status_code=422
        )
    except DemandlyError as error:
        if error.status_code in (403, 404):
            raise
        return await _render_lead(
            page, client, lead, errors=service_errors(error), form=form, status_code=422
        )
    return page.redirect(f"/app/clients/{client.id}/leads/{lead.id}", notice="Saved.")


@router.post("/app/clients/{client_id}/leads/{lead_id}/notes")
async def add_note(page: PageDep, client_id: str, lead_id: str) -> Response:
    client, lead = await _lead(page, client_id, lead_id, write=True)
    posted = await page.request.form()
    body = str(posted.get("body") or "")
    try:
        note = parse(s.NoteCreate, {"body": body} if body.strip() else {})
    except FormInvalid as invalid:
        return await _render_lead(
            page,
            client,
            lead,
            errors={"body": invalid.errors.get("body", "")},
            note=body,
            status_code=422,
        )
    await service.add_note(page.session, lead, page.auth.subject_id, note.body)
    return page.redirect(f"/app/clients/{client.id}/leads/{lead.id}", notice="Note added.")
