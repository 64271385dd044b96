"""Agencies, custom domains, clients, memberships (the team) and invitations under /api/v1."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.auth.context import AuthContext
from demandly.auth.dependencies import CurrentAuth, DbSession, OptionalAuth
from demandly.auth.permissions import Permission
from demandly.kit.errors import Forbidden
from demandly.kit.pagination import Page, PageParams, page_params, paginate
from demandly.tenancy import dnscheck, service
from demandly.tenancy import schemas as s
from demandly.tenancy.mail import mail_invitation
from demandly.tenancy.models import Agency, AgencyDomain, Client, Invitation, Membership
from demandly.tenancy.repository import TenancyRepository

router = APIRouter()
Pages = Annotated[PageParams, Depends(page_params)]
IdPath = Annotated[str, Path(max_length=40, pattern=s.ID_PATTERN)]
IdQuery = Annotated[str | None, Query(max_length=40, pattern=s.ID_PATTERN)]


def _no_content() -> Response:
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _accept_url(request: Request, token: str) -> str:
    return f"{request.app.state.settings.base_url.rstrip('/')}/invitations/{token}"


# --- agencies ------------------------------------------------------------------------------


@router.post("/agencies", status_code=201, response_model=s.AgencyCreated, tags=["agencies"])
async def create_agency(
    data: s.AgencyCreate, request: Request, ctx: CurrentAuth, session: DbSession
) -> s.AgencyCreated:
    """Create an agency (platform administrators only). With ``owner_email``, the owner's
    invitation token is in the response, once."""
    created = await service.create_agency(session, data, actor_ctx=ctx)
    body = s.AgencyCreated.model_validate(created.agency, from_attributes=True)
    if created.owner_invitation is not None:
        issued = created.owner_invitation
        accept_url = _accept_url(request, issued.token)
        await mail_invitation(session, issued, accept_url=accept_url, inviter=None)
        body.owner_invitation = s.OwnerInvitation(
            id=issued.invitation.id,
            token=issued.token,
            expires_at=issued.invitation.expires_at,
            accept_url=accept_url,
        )
    return body


@router.get("/agencies", response_model=Page[s.Agency], tags=["agencies"])
async def list_agencies(ctx: CurrentAuth, session: DbSession, page: Pages) -> Page[s.Agency]:
    """The agencies the caller can see (all of them for platform administrators)."""
    statement = TenancyRepository(session).agencies()
    rows, cursor = await paginate(session, statement, Agency.id, page)
    return Page(items=[s.Agency.model_validate(r) for r in rows], next_cursor=cursor)


@router.get("/agencies/{agency_id}", response_model=s.Agency, tags=["agencies"])
async def get_agency(agency_id: IdPath, ctx: CurrentAuth, session: DbSession) -> s.Agency:
    return s.Agency.model_validate(await service.get_agency(session, agency_id))


@router.patch("/agencies/{agency_id}", response_model=s.Agency, tags=["agencies"])
async def update_agency(
    agency_id: IdPath, data: s.AgencyUpdate, ctx: CurrentAuth, session: DbSession
) -> s.Agency:
    """Name, time zone, locale and branding (agencies:update); status (platform admins)."""
    agency = await service.get_agency(session, agency_id)
    service.authorize(ctx, Permission.AGENCIES_UPDATE, agency.id)
    service.update_agency(agency, data, actor_ctx=ctx)
    await session.flush()
    await session.refresh(agency)
    return s.Agency.model_validate(agency)


# --- custom domains ------------------------------------------------------------------------


def _domain(record: AgencyDomain) -> s.Domain:
    return s.Domain(
        id=record.id,
        agency_id=record.agency_id,
        domain=record.domain,
        verified=record.verified_at is not None,
        verified_at=record.verified_at,
        verification_token=record.verification_token,
        txt_record=s.TxtRecord(
            name=dnscheck.challenge_name(record.domain),
            value=dnscheck.challenge_value(record.verification_token),
        ),
        created_at=record.created_at,
    )


async def _agency_for_domains(session: AsyncSession, ctx: AuthContext, agency_id: str) -> Agency:
    agency = await service.get_agency(session, agency_id)
    service.authorize(ctx, Permission.AGENCIES_UPDATE, agency.id)
    return agency


@router.post(
    "/agencies/{agency_id}/domains", status_code=201, response_model=s.Domain, tags=["domains"]
)
async def add_domain(
    agency_id: IdPath, data: s.DomainCreate, ctx: CurrentAuth, session: DbSession, request: Request
) -> s.Domain:
    """Register a custom domain; create the returned TXT record, then call verify. The
    platform's own host and its subdomains are refused (422 ``domain_reserved``)."""
    agency = await _agency_for_domains(session, ctx, agency_id)
    own_host = service.platform_host(request.app.state.settings.base_url)
    return _domain(await service.add_domain(session, agency, data.domain, own_host=own_host))


@router.get("/agencies/{agency_id}/domains", response_model=Page[s.Domain], tags=["domains"])
async def list_domains(
    agency_id: IdPath, ctx: CurrentAuth, session: DbSession, page: Pages
) -> Page[s.Domain]:
    agency = await _agency_for_domains(session, ctx, agency_id)
    statement = TenancyRepository(session).domains(agency.id)
    rows, cursor = await paginate(session, statement, AgencyDomain.id, page)
    return Page(items=[_domain(r) for r in rows], next_cursor=cursor)


@router.delete("/agencies/{agency_id}/domains/{domain_id}", status_code=204, tags=["domains"])
async def remove_domain(
    agency_id: IdPath, domain_id: IdPath, ctx: CurrentAuth, session: DbSession
) -> Response:
    agency = await _agency_for_domains(session, ctx, agency_id)
    await service.remove_domain(session, await service.get_domain(session, agency, domain_id))
    return _no_content()


@router.post(
    "/agencies/{agency_id}/domains/{domain_id}/verify", response_model=s.Domain, tags=["domains"]
)
async def verify_domain(
    agency_id: IdPath, domain_id: IdPath, request: Request, ctx: CurrentAuth, session: DbSession
) -> s.Domain:
    """Check the TXT record now; 422 with what was found when it does not match (yet)."""
    agency = await _agency_for_domains(session, ctx, agency_id)
    record = await service.get_domain(session, agency, domain_id)
    nameserver = request.app.state.settings.dns_nameserver
    return _domain(await service.verify_domain(session, record, nameserver=nameserver))


# --- clients -------------------------------------------------------------------------------


@router.post("/clients", status_code=201, response_model=s.Client, tags=["clients"])
async def create_client(data: s.ClientCreate, ctx: CurrentAuth, session: DbSession) -> s.Client:
    """A client workspace (clients:create); time zone and locale default to the agency's."""
    return s.Client.model_validate(await service.create_client(session, data, actor_ctx=ctx))


@router.get("/clients", response_model=Page[s.Client], tags=["clients"])
async def list_clients(
    ctx: CurrentAuth,
    session: DbSession,
    page: Pages,
    agency_id: IdQuery = None,
    status: Annotated[Literal["active", "suspended", "offboarding"] | None, Query()] = None,
) -> Page[s.Client]:
    """The clients the caller can see; an agency_member sees its assigned clients only."""
    statement = TenancyRepository(session).clients(agency_id, status)
    rows, cursor = await paginate(session, statement, Client.id, page)
    return Page(items=[s.Client.model_validate(r) for r in rows], next_cursor=cursor)


@router.get("/clients/{client_id}", response_model=s.Client, tags=["clients"])
async def get_client(client_id: IdPath, ctx: CurrentAuth, session: DbSession) -> s.Client:
    return s.Client.model_validate(await service.get_client(session, client_id))


@router.patch("/clients/{client_id}", response_model=s.Client, tags=["clients"])
async def update_client(
    client_id: IdPath, data: s.ClientUpdate, ctx: CurrentAuth, session: DbSession
) -> s.Client:
    client = await service.get_client(session, client_id)
    service.authorize(ctx, Permission.CLIENTS_UPDATE, client.agency_id, client.id)
    service.update_client(client, data, actor_ctx=ctx)
    await session.flush()
    await session.refresh(client)
    return s.Client.model_validate(client)


@router.delete("/clients/{client_id}", status_code=204, tags=["clients"])
async def delete_client(client_id: IdPath, ctx: CurrentAuth, session: DbSession) -> Response:
    """Mark the client deleted: it disappears at once; its data is purged by the privacy
    module (``client.deleted`` event)."""
    client = await service.get_client(session, client_id)
    service.authorize(ctx, Permission.CLIENTS_DELETE, client.agency_id, client.id)
    await service.delete_client(session, client)
    return _no_content()


# --- memberships ---------------------------------------------------------------------------


async def _readable_place(
    session: AsyncSession,
    ctx: AuthContext,
    permission: Permission,
    agency_id: str | None,
    client_id: str | None,
) -> None:
    """404 for a place the caller cannot see, 403 where it may not read the team."""
    if client_id is not None:
        client = await service.get_client(session, client_id)
        service.authorize(ctx, permission, client.agency_id, client.id)
    elif agency_id is not None:
        agency = await service.get_agency(session, agency_id)
        readable = ctx.scope_where(permission)
        if readable is not None and agency.id not in readable.agency_ids:
            raise Forbidden(f"Your role here does not allow {permission.value}.")


@router.get("/memberships", response_model=Page[s.Membership], tags=["team"])
async def list_memberships(
    ctx: CurrentAuth,
    session: DbSession,
    page: Pages,
    agency_id: IdQuery = None,
    client_id: IdQuery = None,
) -> Page[s.Membership]:
    """Who has which role (members:read), in one agency or client or wherever the caller
    may read the team."""
    await _readable_place(session, ctx, Permission.MEMBERS_READ, agency_id, client_id)
    within = ctx.scope_where(Permission.MEMBERS_READ)
    statement = TenancyRepository(session).memberships(agency_id, client_id, within)
    rows, cursor = await paginate(session, statement, Membership.id, page)
    return Page(
        items=[s.Membership.model_validate(service.membership_view(r)) for r in rows],
        next_cursor=cursor,
    )


@router.patch("/memberships/{membership_id}", response_model=s.Membership, tags=["team"])
async def update_membership(
    membership_id: IdPath, data: s.MembershipUpdate, ctx: CurrentAuth, session: DbSession
) -> s.Membership:
    """Change a role or an agency_member's clients (members:manage; up to your own role)."""
    membership = await service.get_membership(session, membership_id)
    granter = service.authorize(
        ctx, Permission.MEMBERS_MANAGE, membership.agency_id, membership.client_id
    )
    await service.update_membership(session, membership, data, granter=granter)
    return s.Membership.model_validate(service.membership_view(membership))


@router.delete("/memberships/{membership_id}", status_code=204, tags=["team"])
async def remove_membership(
    membership_id: IdPath, ctx: CurrentAuth, session: DbSession
) -> Response:
    """Remove the user's access to this agency or client (their other access stays)."""
    membership = await service.get_membership(session, membership_id)
    granter = service.authorize(
        ctx, Permission.MEMBERS_MANAGE, membership.agency_id, membership.client_id
    )
    await service.remove_membership(session, membership, granter=granter)
    return _no_content()


# --- invitations ---------------------------------------------------------------------------


def _invitation(invitation: Invitation) -> s.Invitation:
    return s.Invitation(
        id=invitation.id,
        email=invitation.email,
        role=invitation.role,
        agency_id=invitation.agency_id,
        client_id=invitation.client_id,
        assigned_client_ids=list(invitation.assigned_client_ids or []),
        expires_at=invitation.expires_at,
        created_at=invitation.created_at,
        invited_by_user_id=invitation.invited_by_user_id,
    )


@router.post("/invitations", status_code=201, response_model=s.InvitationCreated, tags=["team"])
async def create_invitation(
    data: s.InvitationCreate, request: Request, ctx: CurrentAuth, session: DbSession
) -> s.InvitationCreated:
    """Invite someone to an agency or a client (members:manage; up to your own role). The
    token is in the response once; it is valid for 7 days."""
    agency_id, client_id = await service.resolve_place(session, data.agency_id, data.client_id)
    granter = service.authorize(ctx, Permission.MEMBERS_MANAGE, agency_id, client_id)
    issued = await service.invite(
        session,
        email=data.email,
        role=data.role,
        agency_id=agency_id,
        client_id=client_id,
        assigned_client_ids=data.assigned_client_ids,
        granter=granter,
        invited_by_user_id=ctx.user_id,
    )
    accept_url = _accept_url(request, issued.token)
    inviter = ctx.user.name or ctx.user.email if ctx.user is not None else None
    await mail_invitation(session, issued, accept_url=accept_url, inviter=inviter)
    return s.InvitationCreated(
        **_invitation(issued.invitation).model_dump(), token=issued.token, accept_url=accept_url
    )


@router.get("/invitations", response_model=Page[s.Invitation], tags=["team"])
async def list_invitations(
    ctx: CurrentAuth,
    session: DbSession,
    page: Pages,
    agency_id: IdQuery = None,
    client_id: IdQuery = None,
) -> Page[s.Invitation]:
    """Pending invitations (never their tokens)."""
    await _readable_place(session, ctx, Permission.MEMBERS_READ, agency_id, client_id)
    within = ctx.scope_where(Permission.MEMBERS_READ)
    statement = TenancyRepository(session).invitations(agency_id, client_id, within)
    rows, cursor = await paginate(session, statement, Invitation.id, page)
    return Page(items=[_invitation(r) for r in rows], next_cursor=cursor)


@router.delete("/invitations/{invitation_id}", status_code=204, tags=["team"])
async def revoke_invitation(
    invitation_id: IdPath, ctx: CurrentAuth, session: DbSession
) -> Response:
    invitation = await service.get_invitation(session, invitation_id)
    granter = service.authorize(
        ctx, Permission.MEMBERS_MANAGE, invitation.agency_id, invitation.client_id
    )
    await service.revoke_invitation(session, invitation, granter=granter)
    return _no_content()


@router.post("/invitations/{token}/accept", response_model=s.InvitationAccepted, tags=["team"])
async def accept_invitation(
    token: Annotated[str, Path(max_length=200, pattern=s.ID_PATTERN)],
    data: s.InvitationAccept,
    ctx: OptionalAuth,
    session: DbSession,
) -> s.InvitationAccepted:
    """Public: join with the invitation's token, as the existing account with the invited
    e-mail, or as a new one (``name`` and ``password`` required then)."""
    accepted = await service.accept_invitation(
        session,
        token,
        name=data.name,
        password=data.password,
        current_user_id=ctx.user_id if ctx is not None and ctx.kind == "user" else None,
    )
    membership = accepted.membership
    return s.InvitationAccepted(
        user_id=accepted.user.id,
        membership_id=membership.id,
        agency_id=membership.agency_id,
        client_id=membership.client_id,
        role=membership.role,
    )
