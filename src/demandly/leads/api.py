"""Contacts, leads (notes, CSV export) and a client's lead scoring and notifications under
/api/v1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from demandly.auth.context import AuthContext
from demandly.auth.dependencies import CurrentAuth, DbSession, get_database
from demandly.auth.permissions import Permission
from demandly.kit.pagination import Page, PageParams, page_params, paginate
from demandly.leads import export, service
from demandly.leads import schemas as s
from demandly.leads.models import Contact, Lead, LeadSettings
from demandly.leads.repository import LeadFilters, LeadRepository
from demandly.tenancy import service as tenancy
from demandly.tenancy.models import Client
from demandly.tenancy.schemas import ID_PATTERN

router = APIRouter()
Pages = Annotated[PageParams, Depends(page_params)]
IdPath = Annotated[str, Path(max_length=40, pattern=ID_PATTERN)]
IdQuery = Annotated[str | None, Query(max_length=40, pattern=ID_PATTERN)]
Score = Annotated[int | None, Query(ge=-1_000_000, le=1_000_000)]
TagQuery = Annotated[str | None, Query(min_length=1, max_length=40, pattern=s.TAG_PATTERN)]
# No control characters (a NUL byte would otherwise reach PostgreSQL).
SearchQuery = Annotated[
    str | None, Query(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
]


async def _client(session: DbSession, ctx: AuthContext, client_id: str, p: Permission) -> Client:
    client = await tenancy.get_client(session, client_id)
    ctx.require(p, client.agency_id, client.id)
    return client


async def _contact(session: DbSession, ctx: AuthContext, contact_id: str, write: bool) -> Contact:
    contact = await service.get_contact(session, contact_id)
    permission = Permission.CONTENT_WRITE if write else Permission.CONTENT_READ
    ctx.require(permission, contact.agency_id, contact.client_id)
    return contact


async def _lead(session: DbSession, ctx: AuthContext, lead_id: str, write: bool) -> Lead:
    lead = await service.get_lead(session, lead_id, for_update=write)
    permission = Permission.CONTENT_WRITE if write else Permission.CONTENT_READ
    ctx.require(permission, lead.agency_id, lead.client_id)
    return lead


async def _lead_detail(session: DbSession, lead: Lead) -> s.LeadDetail:
    [view] = await service.lead_views(session, [lead])
    notes = [s.Note.model_validate(n) for n in await service.notes(session, lead)]
    return s.LeadDetail(**view.model_dump(), notes=notes)


# --- contacts ------------------------------------------------------------------------------


@router.post("/contacts", status_code=201, response_model=s.Contact, tags=["contacts"])
async def create_contact(
    data: s.ContactCreate, ctx: CurrentAuth, session: DbSession, response: Response
) -> s.Contact:
    """A new contact of a client (content:write). One whose e-mail address or phone number
    a contact of the client has already is merged into that contact: the answer is then
    200 with the existing contact, its blanks filled."""
    client = await _client(session, ctx, data.client_id, Permission.CONTENT_WRITE)
    contact, created = await service.create_contact(session, client, data)
    if not created:
        response.status_code = status.HTTP_200_OK
    return s.Contact.model_validate(contact)


@router.get("/contacts", response_model=Page[s.Contact], tags=["contacts"])
async def list_contacts(
    ctx: CurrentAuth,
    session: DbSession,
    page: Pages,
    client_id: IdQuery = None,
    q: SearchQuery = None,
) -> Page[s.Contact]:
    """Newest first; ``q`` finds a part of the name, e-mail, phone or company."""
    if client_id is not None:
        await _client(session, ctx, client_id, Permission.CONTENT_READ)
    within = ctx.scope_where(Permission.CONTENT_READ)
    statement = LeadRepository(session).contacts(client_id, q, within)
    rows, cursor = await paginate(session, statement, Contact.id, page)
    return Page(items=[s.Contact.model_validate(r) for r in rows], next_cursor=cursor)


@router.get("/contacts/{contact_id}", response_model=s.Contact, tags=["contacts"])
async def get_contact(contact_id: IdPath, ctx: CurrentAuth, session: DbSession) -> s.Contact:
    return s.Contact.model_validate(await _contact(session, ctx, contact_id, write=False))


@router.patch("/contacts/{contact_id}", response_model=s.Contact, tags=["contacts"])
async def update_contact(
    contact_id: IdPath, data: s.ContactUpdate, ctx: CurrentAuth, session: DbSession
) -> s.Contact:
    """Change details; 409 ``duplicate_contact`` when another contact of the client has the
    new e-mail address or phone number (merge them instead)."""
    contact = await _contact(session, ctx, contact_id, write=True)
    client = await tenancy.get_client(session, contact.client_id)
    return s.Contact.model_validate(await service.update_contact(session, contact, client, data))


@router.delete("/contacts/{contact_id}", status_code=204, tags=["contacts"])
async def delete_contact(contact_id: IdPath, ctx: CurrentAuth, session: DbSession) -> Response:
    """The contact and its leads are deleted."""
    await service.delete_contact(session, await _contact(session, ctx, contact_id, write=True))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/contacts/{contact_id}/merge", response_model=s.Contact, tags=["contacts"])
async def merge_contacts(
    contact_id: IdPath, data: s.ContactMerge, ctx: CurrentAuth, session: DbSession
) -> s.Contact:
    """``other_id`` is merged into this contact: its leads move here, its details fill this
    contact's blanks, and it is deleted."""
    target = await _contact(session, ctx, contact_id, write=True)
    other = await _contact(session, ctx, data.other_id, write=True)
    return s.Contact.model_validate(await service.merge_contacts(session, target, other))


# --- leads ---------------------------------------------------------------------------------


def lead_filters(
    client_id: IdQuery = None,
    agent_id: IdQuery = None,
    contact_id: IdQuery = None,
    owner_id: IdQuery = None,
    status: Annotated[s.Status | None, Query()] = None,
    min_score: Score = None,
    max_score: Score = None,
    tag: TagQuery = None,
    since: Annotated[datetime | None, Query(description="Created at or after")] = None,
    until: Annotated[datetime | None, Query(description="Created before")] = None,
) -> LeadFilters:
    return LeadFilters(
        client_id=client_id,
        agent_id=agent_id,
        contact_id=contact_id,
        owner_id=owner_id,
        status=status,
        min_score=min_score,
        max_score=max_score,
        tag=tag,
        since=since,
        until=until,
    )


Filters = Annotated[LeadFilters, Depends(lead_filters)]


@router.post("/leads", status_code=201, response_model=s.LeadDetail, tags=["leads"])
async def create_lead(data: s.LeadCreate, ctx: CurrentAuth, session: DbSession) -> s.LeadDetail:
    """A lead of a client (content:write), for an existing contact (``contact_id``) or for
    the person in ``contact`` (or, failing both, in the answers), deduplicated. With
    ``agent_id``, the answers must fit the agent's form."""
    client = await _client(session, ctx, data.client_id, Permission.CONTENT_WRITE)
    return await _lead_detail(session, await service.create_lead(session, client, data))


@router.get("/leads", response_model=Page[s.Lead], tags=["leads"])
async def list_leads(
    ctx: CurrentAuth, session: DbSession, page: Pages, filters: Filters
) -> Page[s.Lead]:
    """Newest first, with their contacts."""
    if filters.client_id is not None:
        await _client(session, ctx, filters.client_id, Permission.CONTENT_READ)
    statement = LeadRepository(session).leads(filters, ctx.scope_where(Permission.CONTENT_READ))
    rows, cursor = await paginate(session, statement, Lead.id, page)
    return Page(items=await service.lead_views(session, rows), next_cursor=cursor)


@router.get(
    "/leads/export.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
    tags=["leads"],
)
async def export_leads(
    request: Request, ctx: CurrentAuth, session: DbSession, filters: Filters
) -> StreamingResponse:
    """The leads the filters select, as CSV (UTF-8, newest first), streamed. Cells that a
    spreadsheet would run as a formula are prefixed with a quote. Leads of contacts whose
    processing is restricted are left out."""
    if filters.client_id is not None:
        await _client(session, ctx, filters.client_id, Permission.CONTENT_READ)
    within = ctx.scope_where(Permission.CONTENT_READ)
    rows: AsyncIterator[str] = export.csv_lines(get_database(request), ctx, filters, within)
    return StreamingResponse(
        rows,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="leads.csv"'},
    )


@router.get("/leads/{lead_id}", response_model=s.LeadDetail, tags=["leads"])
async def get_lead(lead_id: IdPath, ctx: CurrentAuth, session: DbSession) -> s.LeadDetail:
    """The lead with its contact and notes."""
    return await _lead_detail(session, await _lead(session, ctx, lead_id, write=False))


@router.patch("/leads/{lead_id}", response_model=s.LeadDetail, tags=["leads"])
async def update_lead(
    lead_id: IdPath, data: s.LeadUpdate, ctx: CurrentAuth, session: DbSession
) -> s.LeadDetail:
    """Change answers (the score follows), status, owner, tags or contact."""
    lead = await _lead(session, ctx, lead_id, write=True)
    return await _lead_detail(session, await service.update_lead(session, lead, data))


@router.post("/leads/{lead_id}/notes", status_code=201, response_model=s.Note, tags=["leads"])
async def add_note(
    lead_id: IdPath, data: s.NoteCreate, ctx: CurrentAuth, session: DbSession
) -> s.Note:
    lead = await _lead(session, ctx, lead_id, write=True)
    return s.Note.model_validate(await service.add_note(session, lead, ctx.subject_id, data.body))


# --- a client's lead settings --------------------------------------------------------------


def _scoring(stored: LeadSettings) -> s.LeadScoring:
    return s.LeadScoring.model_validate({"rules": stored.rules, "qualify_at": stored.qualify_at})


def _notifications(stored: LeadSettings) -> s.LeadNotifications:
    return s.LeadNotifications.model_validate(
        {"notify_emails": stored.notify_emails, "notify_on": stored.notify_on}
    )


@router.get(
    "/clients/{client_id}/lead-scoring", response_model=s.LeadScoring, tags=["lead settings"]
)
async def get_scoring(client_id: IdPath, ctx: CurrentAuth, session: DbSession) -> s.LeadScoring:
    client = await _client(session, ctx, client_id, Permission.CONTENT_READ)
    return _scoring(await service.settings_of(session, client.id))


@router.put(
    "/clients/{client_id}/lead-scoring", response_model=s.LeadScoring, tags=["lead settings"]
)
async def put_scoring(
    client_id: IdPath, data: s.LeadScoring, ctx: CurrentAuth, session: DbSession
) -> s.LeadScoring:
    """Replace the rules and threshold (content:write). Scores follow the next time a lead's
    answers change."""
    client = await _client(session, ctx, client_id, Permission.CONTENT_WRITE)
    return _scoring(await service.put_scoring(session, client, data))


@router.get(
    "/clients/{client_id}/lead-notifications",
    response_model=s.LeadNotifications,
    tags=["lead settings"],
)
async def get_notifications(
    client_id: IdPath, ctx: CurrentAuth, session: DbSession
) -> s.LeadNotifications:
    client = await _client(session, ctx, client_id, Permission.CONTENT_READ)
    return _notifications(await service.settings_of(session, client.id))


@router.put(
    "/clients/{client_id}/lead-notifications",
    response_model=s.LeadNotifications,
    tags=["lead settings"],
)
async def put_notifications(
    client_id: IdPath, data: s.LeadNotifications, ctx: CurrentAuth, session: DbSession
) -> s.LeadNotifications:
    """Who gets leads by e-mail (client:settings: it sends personal data out)."""
    client = await _client(session, ctx, client_id, Permission.CLIENT_SETTINGS)
    return _notifications(await service.put_notifications(session, client, data))
