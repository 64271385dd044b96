"""Dashboard screen: the team (members and pending invitations of the agency, or of a client
admin's client) and the public page an invitation link opens. The same services and the
same permission checks as ``/api/v1/memberships`` and ``/api/v1/invitations``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Response
from starlette.datastructures import FormData

from demandly.auth import service as auth_service
from demandly.auth.dependencies import request_actor
from demandly.auth.errors import FailAfterCommit
from demandly.auth.permissions import Permission, can_grant
from demandly.kit.crypto import hash_token
from demandly.kit.db import system_scope
from demandly.kit.errors import DemandlyError, Forbidden, Gone, NotFound, TooManyRequests
from demandly.kit.pagination import PageParams, paginate
from demandly.tenancy import schemas as s
from demandly.tenancy import service as tenancy_service
from demandly.tenancy.branding import brand_of
from demandly.tenancy.mail import mail_invitation
from demandly.tenancy.models import (
    AGENCY_ROLES,
    CLIENT_ROLES,
    Agency,
    Client,
    Invitation,
    Membership,
    Role,
)
from demandly.tenancy.repository import TenancyRepository
from demandly.web.deps import Page, PageDep, PageRoute, View, ViewDep
from demandly.web.forms import FormInvalid, fields, parse, service_errors
from demandly.web.screens.auth import set_session_cookies

router = APIRouter(route_class=PageRoute, include_in_schema=False)

TEAM = "/app/team"
PER_PAGE = 50
IdPath = Annotated[str, Path(max_length=40, pattern=s.ID_PATTERN)]
TokenPath = Annotated[str, Path(max_length=200, pattern=s.ID_PATTERN)]
Cursor = Annotated[str | None, Query(max_length=64, pattern=s.ID_PATTERN)]

ROLE_LABELS = {
    Role.AGENCY_OWNER: "Agency owner",
    Role.AGENCY_ADMIN: "Agency admin",
    Role.AGENCY_MEMBER: "Agency member",
    Role.CLIENT_ADMIN: "Client admin",
    Role.CLIENT_MEMBER: "Client member",
    Role.CLIENT_VIEWER: "Client viewer",
}
ROLE_ORDER = list(ROLE_LABELS)
AGENCY_PLACE = "agency"


def _refusal(error: DemandlyError) -> bool:
    """Errors that are pages of their own (out of reach, not allowed), not form messages."""
    return isinstance(error, NotFound | Forbidden)


# --- the team page -------------------------------------------------------------------------


def _require_team(page: Page) -> Agency:
    if page.agency is None:
        raise NotFound()
    if not page.can_any(Permission.MEMBERS_READ):
        raise Forbidden()
    return page.agency


def _granter(page: Page, client_id: str | None) -> Role | None:
    """The user's role at a place where it may manage the team; None where it may not."""
    assert page.agency is not None
    role = page.auth.role_at(page.agency.id, client_id)
    return role if role is not None and page.can(Permission.MEMBERS_MANAGE, client_id) else None


def _manageable(page: Page, role: str, client_id: str | None) -> bool:
    granter = _granter(page, client_id)
    return granter is not None and can_grant(granter, Role(role))


def _invite_places(page: Page) -> list[tuple[str, str]]:
    """Where the user may invite people: the agency itself, and clients it manages."""
    places = [(AGENCY_PLACE, page.t("The agency"))] if _granter(page, None) else []
    places += [(c.id, c.name) for c in page.clients if _granter(page, c.id)]
    return places


def _grantable_roles(page: Page) -> list[tuple[str, str]]:
    """Roles the user may hand out somewhere (never above its own)."""
    granters = [
        g for g in [_granter(page, None), *(_granter(page, c.id) for c in page.clients)] if g
    ]
    return [
        (role.value, page.t(ROLE_LABELS[role]))
        for role in ROLE_ORDER
        if any(can_grant(granter, role) for granter in granters)
        and (role in CLIENT_ROLES or _granter(page, None))
    ]


async def _render_team(
    page: Page,
    *,
    members_cursor: str | None = None,
    invitations_cursor: str | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    created: tuple[Invitation, str] | None = None,
    status_code: int = 200,
) -> Response:
    agency = _require_team(page)
    repo = TenancyRepository(page.session)
    within = page.auth.scope_where(Permission.MEMBERS_READ)
    members, next_members = await paginate(
        page.session,
        repo.memberships(agency.id, None, within),
        Membership.id,
        PageParams(limit=PER_PAGE, cursor=members_cursor),
    )
    invitations, next_invitations = await paginate(
        page.session,
        repo.invitations(agency.id, None, within),
        Invitation.id,
        PageParams(limit=PER_PAGE, cursor=invitations_cursor),
    )
    places = _invite_places(page)
    return page.render(
        "team/team.html",
        status_code=status_code,
        title=page.t("Team"),
        section="team",
        members=members,
        invitations=invitations,
        members_next=f"{TEAM}?members_cursor={next_members}" if next_members else None,
        invitations_next=(
            f"{TEAM}?invitations_cursor={next_invitations}#invitations"
            if next_invitations
            else None
        ),
        client_names={c.id: c.name for c in page.clients},
        role_label=lambda role: page.t(ROLE_LABELS.get(Role(role), role)),
        manageable=lambda row: _manageable(page, row.role, row.client_id),
        places=places,
        roles=_grantable_roles(page),
        assignable=[c for c in page.clients if _granter(page, None)],
        errors={name: page.t(message) for name, message in (errors or {}).items()},
        values=values or {},
        created=created,
        tz=agency.timezone,
    )


@router.get(TEAM)
async def team_page(
    page: PageDep, members_cursor: Cursor = None, invitations_cursor: Cursor = None
) -> Response:
    return await _render_team(
        page, members_cursor=members_cursor, invitations_cursor=invitations_cursor
    )


# --- invitations ----------------------------------------------------------------------------


def _invitation_input(page: Page, form: FormData) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what the form showed, the API's InvitationCreate body)."""
    assert page.agency is not None
    shown = fields(form, "email", "role", "place")
    assigned = [v for v in form.getlist("assigned_client_ids") if isinstance(v, str) and v]
    shown["assigned_client_ids"] = assigned
    place = shown.get("place", AGENCY_PLACE)
    body: dict[str, Any] = {k: v for k, v in shown.items() if k in ("email", "role")}
    if place == AGENCY_PLACE:
        body["agency_id"] = page.agency.id
    else:
        body["client_id"] = place
    if shown.get("role") == Role.AGENCY_MEMBER:
        body["assigned_client_ids"] = assigned
    return shown, body


@router.post(f"{TEAM}/invitations")
async def create_invitation(page: PageDep) -> Response:
    _require_team(page)
    shown, body = _invitation_input(page, await page.request.form())
    try:
        data = parse(s.InvitationCreate, body)
        agency_id, client_id = await tenancy_service.resolve_place(
            page.session, data.agency_id, data.client_id
        )
        granter = tenancy_service.authorize(
            page.auth, Permission.MEMBERS_MANAGE, agency_id, client_id
        )
        issued = await tenancy_service.invite(
            page.session,
            email=data.email,
            role=data.role,
            agency_id=agency_id,
            client_id=client_id,
            assigned_client_ids=data.assigned_client_ids,
            granter=granter,
            invited_by_user_id=page.auth.user_id,
        )
    except FormInvalid as invalid:
        return await _render_team(page, errors=invalid.errors, values=shown, status_code=422)
    except DemandlyError as error:
        if _refusal(error):
            raise
        return await _render_team(page, errors=_place_errors(error), values=shown, status_code=422)
    link = f"{page.public_url}/invitations/{issued.token}"
    user = page.auth.user
    inviter = (user.name or user.email) if user is not None else None
    await mail_invitation(page.session, issued, accept_url=link, inviter=inviter)
    # The link is shown once (only its hash is stored): no redirect that would lose it.
    return await _render_team(page, created=(issued.invitation, link), status_code=201)


def _place_errors(error: DemandlyError) -> dict[str, str]:
    errors = service_errors(error)
    # The form has one "place" field where the API has agency_id / client_id.
    for name in ("agency_id", "client_id"):
        if name in errors:
            errors["place"] = errors.pop(name)
    return errors


@router.post(f"{TEAM}/invitations/{{invitation_id}}/revoke")
async def revoke_invitation(page: PageDep, invitation_id: IdPath) -> Response:
    invitation = await tenancy_service.get_invitation(page.session, invitation_id)
    granter = tenancy_service.authorize(
        page.auth, Permission.MEMBERS_MANAGE, invitation.agency_id, invitation.client_id
    )
    try:
        await tenancy_service.revoke_invitation(page.session, invitation, granter=granter)
    except DemandlyError as error:
        if _refusal(error):
            raise
        return page.redirect(f"{TEAM}#invitations", notice=error.message)
    return page.redirect(f"{TEAM}#invitations", notice="The invitation was withdrawn.")


# --- one member -----------------------------------------------------------------------------


async def _member(page: Page, membership_id: str) -> tuple[Membership, Role]:
    """The membership (404 when out of sight) and the user's role to manage it (403)."""
    membership = await tenancy_service.get_membership(page.session, membership_id)
    granter = tenancy_service.authorize(
        page.auth, Permission.MEMBERS_MANAGE, membership.agency_id, membership.client_id
    )
    return membership, granter


def _role_choices(page: Page, membership: Membership, granter: Role) -> list[tuple[str, str]]:
    fitting = CLIENT_ROLES if membership.client_id else AGENCY_ROLES
    return [
        (role.value, page.t(ROLE_LABELS[role]))
        for role in ROLE_ORDER
        if role in fitting and can_grant(granter, role)
    ]


async def _render_member(
    page: Page,
    membership: Membership,
    granter: Role,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    client: Client | None = None
    if membership.client_id:
        client = next((c for c in page.clients if c.id == membership.client_id), None)
    return page.render(
        "team/member.html",
        status_code=status_code,
        title=page.t("Edit member"),
        section="team",
        member=membership,
        member_client=client,
        roles=_role_choices(page, membership, granter),
        role_label=lambda role: page.t(ROLE_LABELS.get(Role(role), role)),
        assignable=page.clients if membership.client_id is None else [],
        errors={name: page.t(message) for name, message in (errors or {}).items()},
    )


@router.get(f"{TEAM}/members/{{membership_id}}")
async def member_page(page: PageDep, membership_id: IdPath) -> Response:
    membership, granter = await _member(page, membership_id)
    if not can_grant(granter, Role(membership.role)):
        raise Forbidden()
    return await _render_member(page, membership, granter)


@router.post(f"{TEAM}/members/{{membership_id}}")
async def update_member(page: PageDep, membership_id: IdPath) -> Response:
    membership, granter = await _member(page, membership_id)
    form = await page.request.form()
    body: dict[str, Any] = fields(form, "role")
    if membership.client_id is None and body.get("role") == Role.AGENCY_MEMBER:
        body["assigned_client_ids"] = [v for v in form.getlist("assigned_client_ids") if v]
    elif membership.client_id is None:
        body["assigned_client_ids"] = []
    try:
        data = parse(s.MembershipUpdate, body)
        await tenancy_service.update_membership(page.session, membership, data, granter=granter)
    except FormInvalid as invalid:
        return await _render_member(page, membership, granter, invalid.errors, 422)
    except DemandlyError as error:
        if isinstance(error, Forbidden):
            errors = {"role": "Your role cannot hand out this role."}
            return await _render_member(page, membership, granter, errors, 422)
        if _refusal(error):
            raise
        return await _render_member(page, membership, granter, service_errors(error), 422)
    return page.redirect(TEAM, notice="Saved.")


@router.post(f"{TEAM}/members/{{membership_id}}/remove")
async def remove_member(page: PageDep, membership_id: IdPath) -> Response:
    membership, granter = await _member(page, membership_id)
    try:
        await tenancy_service.remove_membership(page.session, membership, granter=granter)
    except DemandlyError as error:
        if _refusal(error):
            raise
        return await _render_team(page, errors=service_errors(error), status_code=409)
    return page.redirect(TEAM, notice="The member was removed.")


# --- accepting an invitation (public) -------------------------------------------------------


async def _open_invitation(view: View, token: str) -> tuple[Invitation, Agency, Client | None]:
    """The invitation behind a link, still usable, and its agency (and client); the page is
    shown in that agency's brand. 404 when unknown (or another agency's on this domain),
    410 when used, withdrawn or expired."""
    session = view.session
    async with system_scope(session):
        repo = TenancyRepository(session)
        invitation = await repo.invitation_by_token_hash(hash_token(token))
        agency = await repo.agency(invitation.agency_id) if invitation else None
        client = (
            await repo.client(invitation.client_id) if invitation and invitation.client_id else None
        )
    if invitation is None or agency is None:
        raise NotFound("This invitation link is not valid.")
    if view.host_agency is not None and view.host_agency.id != agency.id:
        raise NotFound("This invitation link is not valid.")
    tenancy_service.check_usable(invitation)  # the service's own rule, not a copy
    view.brand = brand_of(agency)
    return invitation, agency, client


def _invitation_refused(view: View, error: DemandlyError) -> Response:
    return view.render(
        "team/invitation_refused.html",
        status_code=error.status_code,
        title=view.t("This invitation cannot be used"),
        message=view.t(error.message),
    )


async def _render_invitation(
    view: View,
    token: str,
    invitation: Invitation,
    agency: Agency,
    client: Client | None,
    *,
    errors: dict[str, str] | None = None,
    name: str = "",
    needs_code: bool = False,
    status_code: int = 200,
) -> Response:
    async with system_scope(view.session):
        existing = await TenancyRepository(view.session).user_by_email(invitation.email)
    signed_in_as = view.ctx.user if view.ctx is not None else None
    return view.render(
        "team/invitation.html",
        status_code=status_code,
        title=view.t("Invitation"),
        token=token,
        invitation=invitation,
        agency_name=view.brand.name,
        client=client,
        role_label=view.t(ROLE_LABELS.get(Role(invitation.role), invitation.role)),
        has_account=existing is not None,
        signed_in_as=signed_in_as,
        is_invitee=signed_in_as is not None and signed_in_as.email == invitation.email,
        errors={n: view.t(m) for n, m in (errors or {}).items()},
        name=name,
        needs_code=needs_code,
    )


@router.get("/invitations/{token}")
async def invitation_page(view: ViewDep, token: TokenPath) -> Response:
    try:
        invitation, agency, client = await _open_invitation(view, token)
    except (NotFound, Gone) as error:
        return _invitation_refused(view, error)
    return await _render_invitation(view, token, invitation, agency, client)


@router.post("/invitations/{token}")
async def accept_invitation(
    view: ViewDep,
    token: TokenPath,
    name: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    password_confirm: Annotated[str, Form(max_length=1024)] = "",
    totp: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    try:
        invitation, agency, client = await _open_invitation(view, token)
    except (NotFound, Gone) as error:
        return _invitation_refused(view, error)

    async def again(errors: dict[str, str], status_code: int = 422, **extra: Any) -> Response:
        return await _render_invitation(
            view, token, invitation, agency, client, errors=errors, name=name,
            status_code=status_code, **extra,
        )  # fmt: skip

    if view.ctx is not None and view.ctx.user_id is not None:
        return await _accept_signed_in(view, token, again)
    async with system_scope(view.session):
        existing = await TenancyRepository(view.session).user_by_email(invitation.email)
    if existing is not None:
        return await _accept_with_login(view, token, invitation.email, password, totp, again)
    if password != password_confirm:
        return await again({"password_confirm": "The passwords do not match."})
    return await _accept_as_new_user(view, token, name, password, again)


async def _accept_signed_in(view: View, token: str, again: Any) -> Response:
    assert view.ctx is not None
    try:
        await tenancy_service.accept_invitation(
            view.session, token, current_user_id=view.ctx.user_id
        )
    except DemandlyError as error:
        return await again(service_errors(error), status_code=error.status_code)
    return view.redirect("/app", notice="Welcome! You joined the team.")


async def _accept_with_login(
    view: View, token: str, email: str, password: str, code: str, again: Any
) -> Response:
    """An existing account: sign in here (the agency's own domain would not let a newcomer
    sign in before joining), then join."""
    try:
        issued = await auth_service.login(
            view.session,
            view.request.app.state.db,
            view.settings,
            email=email,
            password=password,
            code=code.strip() or None,
            actor=request_actor(view.request),
        )
    except FailAfterCommit as failure:  # returning normally keeps the failure's count
        error = failure.error
        if error.code == "totp_required":
            return await again({}, status_code=200, needs_code=True)
        if error.code == "totp_invalid":
            return await again({"totp": error.message}, status_code=401, needs_code=True)
        return await again({"password": "The password is wrong."}, status_code=401)
    except TooManyRequests as error:
        seconds = error.details["retry_after"] if isinstance(error.details, dict) else 60
        message = view.t("Too many attempts. Try again in {seconds} s.", seconds=seconds)
        return await again({"password": message}, status_code=429)
    await tenancy_service.accept_invitation(view.session, token, current_user_id=issued.user.id)
    response = view.redirect("/app", notice="Welcome! You joined the team.")
    set_session_cookies(view, response, issued.token, issued.csrf_token)
    return response


async def _accept_as_new_user(
    view: View, token: str, name: str, password: str, again: Any
) -> Response:
    try:
        accepted = await tenancy_service.accept_invitation(
            view.session, token, name=name.strip() or None, password=password or None
        )
    except DemandlyError as error:
        return await again(service_errors(error), status_code=error.status_code)
    issued = await auth_service.start_session(
        view.session, view.settings, accepted.user, request_actor(view.request)
    )
    response = view.redirect("/app", notice="Welcome! You joined the team.")
    set_session_cookies(view, response, issued.token, issued.csrf_token)
    return response
