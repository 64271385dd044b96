"""Tenancy rules: agencies and their branding and domains, clients, users, memberships and
invitations. Never commits: the request (or the CLI command) owns the transaction.

Authorisation by permission happens at the edge (``authorize``); the rules about *which* roles
may be handed out (never above your own, always fitting the place, at least one owner) live
here, so the CLI and the API share them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.auth.context import AuthContext
from demandly.auth.keys import forget_all_api_keys, revoke_keys_of_client
from demandly.auth.passwords import hash_password, validate_password
from demandly.auth.permissions import Permission, can_grant
from demandly.jobs.service import emit
from demandly.kit.context import Scope
from demandly.kit.crypto import hash_token
from demandly.kit.db import session_actor, set_scope, system_scope
from demandly.kit.errors import Conflict, Forbidden, Gone, NotFound, ValidationFailed
from demandly.kit.ids import random_token
from demandly.kit.time import utcnow
from demandly.tenancy import dnscheck
from demandly.tenancy import schemas as s
from demandly.tenancy.models import (
    Agency,
    AgencyDomain,
    Client,
    Invitation,
    Membership,
    MembershipClient,
    Role,
    Status,
    User,
)
from demandly.tenancy.repository import TenancyRepository

INVITATION_TTL = timedelta(days=7)
CLIENT_DELETED_EVENT = "client.deleted"


# --- scope and authorisation ---------------------------------------------------------------


def authorize(
    ctx: AuthContext, permission: Permission, agency_id: str, client_id: str | None = None
) -> Role:
    """The caller's role at a place it can already see (the row was found under its scope),
    if that role allows ``permission``: 403 otherwise, never 404."""
    try:
        return ctx.require(permission, agency_id, client_id)
    except NotFound:
        raise Forbidden(f"Your role here does not allow {permission.value}.") from None


def _check_grantable(granter: Role | None, role: Role) -> None:
    if granter is not None and not can_grant(granter, role):
        raise Forbidden(f"Your role ({granter.value}) cannot manage the role {role.value}.")


def _check_role_fits(role: Role, client_id: str | None, assigned: Sequence[str]) -> None:
    if role is Role.PLATFORM_ADMIN:
        raise ValidationFailed("role", "platform_admin cannot be granted through a membership.")
    if client_id is None and not role.is_agency_role:
        raise ValidationFailed(
            "role",
            "An agency takes the roles agency_owner, agency_admin "
            "and agency_member; use client_id for client roles.",
        )
    if client_id is not None and not role.is_client_role:
        raise ValidationFailed(
            "role", "A client takes the roles client_admin, client_member and client_viewer."
        )
    if assigned and role is not Role.AGENCY_MEMBER:
        raise ValidationFailed("assigned_client_ids", "Only an agency_member has assigned clients.")


# --- agencies ------------------------------------------------------------------------------

_GERMAN = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})


def slugify(name: str) -> str:
    """``Müller & Söhne GmbH`` -> ``mueller-soehne-gmbh``."""
    text = unicodedata.normalize("NFKD", name.lower().translate(_GERMAN))
    text = text.encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:63].rstrip("-")
    return slug or "agency"


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    token: str  # shown once


@dataclass(frozen=True)
class NewAgency:
    agency: Agency
    owner_invitation: IssuedInvitation | None = None


async def create_agency(
    session: AsyncSession, data: s.AgencyCreate, *, actor_ctx: AuthContext | None = None
) -> NewAgency:
    """A new agency; with ``owner_email``, an owner invitation whose token is returned once.
    ``actor_ctx`` None means the platform itself (CLI, demo)."""
    if actor_ctx is not None:
        actor_ctx.require_platform_admin()
    slug = data.slug or slugify(data.name)
    async with system_scope(session):
        if await TenancyRepository(session).agency_by_slug(slug) is not None:
            raise _slug_taken(slug)
    branding = data.branding.model_dump(exclude_none=True) if data.branding else {}
    agency = Agency(
        name=data.name,
        slug=slug,
        timezone=data.timezone,
        locale=data.locale,
        branding=branding,
        status=Status.ACTIVE,
    )
    session.add(agency)
    await _flush_unique(session, _slug_taken(slug))
    invitation = None
    if data.owner_email:
        invitation = await invite(
            session,
            email=data.owner_email,
            role=Role.AGENCY_OWNER,
            agency_id=agency.id,
            invited_by_user_id=actor_ctx.user_id if actor_ctx else None,
        )
    return NewAgency(agency=agency, owner_invitation=invitation)


def _slug_taken(slug: str) -> Conflict:
    return Conflict(
        f"The slug '{slug}' is taken; choose another one with 'slug'.",
        code="slug_taken",
        details=[{"field": "slug", "message": "taken"}],
    )


async def _flush_unique(session: AsyncSession, conflict: Conflict) -> None:
    """Flush; a unique constraint hit by a concurrent request becomes the given 409."""
    try:
        await session.flush()
    except IntegrityError:
        raise conflict from None


async def get_agency(session: AsyncSession, agency_id: str) -> Agency:
    agency = await TenancyRepository(session).agency(agency_id)
    if agency is None:
        raise NotFound("Agency not found.")
    return agency


def update_agency(agency: Agency, data: s.AgencyUpdate, *, actor_ctx: AuthContext) -> Agency:
    """Apply a PATCH; only platform administrators change the status."""
    changes = data.model_dump(exclude_unset=True, exclude={"branding"})
    if "status" in changes:
        actor_ctx.require_platform_admin()
        if changes["status"] != agency.status:
            # Keys resolved before the change must not outlive it in this process.
            forget_all_api_keys()
    for field, value in changes.items():
        setattr(agency, field, value)
    if data.branding is not None:
        merged = {**(agency.branding or {}), **data.branding.model_dump(exclude_unset=True)}
        # A new dict: the JSON column notices replacement, not in-place changes.
        agency.branding = {k: v for k, v in merged.items() if v is not None}
    return agency


# --- custom domains ------------------------------------------------------------------------


def platform_host(base_url: str) -> str:
    """The host name of the platform's own public URL (``DEMANDLY_BASE_URL``)."""
    return (urlsplit(base_url).hostname or "").lower()


def _refuse_platform_domain(domain: str, own_host: str) -> None:
    """The platform's own host and its subdomains are the operator's, never an agency's: an
    agency holding one could present its brand on the platform's address."""
    if own_host and (domain == own_host or domain.endswith("." + own_host)):
        raise ValidationFailed(
            "domain",
            f"{domain} is part of this platform's own address ({own_host}); "
            "use a domain that belongs to your agency.",
            code="domain_reserved",
        )


async def add_domain(
    session: AsyncSession, agency: Agency, domain: str, *, own_host: str
) -> AgencyDomain:
    """Register a custom domain (already normalised); unique across the platform and never
    the platform's own host (``own_host``) or one of its subdomains."""
    _refuse_platform_domain(domain, own_host)
    taken = Conflict(
        f"The domain {domain} is already registered.",
        code="domain_taken",
        details=[{"field": "domain", "message": "taken"}],
    )
    async with system_scope(session):
        if await TenancyRepository(session).domain_by_name(domain) is not None:
            raise taken
    record = AgencyDomain(
        agency_id=agency.id, domain=domain, verification_token=random_token(nbytes=24)
    )
    session.add(record)
    await _flush_unique(session, taken)
    return record


async def get_domain(session: AsyncSession, agency: Agency, domain_id: str) -> AgencyDomain:
    record = await TenancyRepository(session).domain(agency.id, domain_id)
    if record is None:
        raise NotFound("Domain not found.")
    return record


async def remove_domain(session: AsyncSession, record: AgencyDomain) -> None:
    await session.delete(record)
    await session.flush()


async def verify_domain(
    session: AsyncSession, record: AgencyDomain, *, nameserver: str | None = None
) -> AgencyDomain:
    """Look up ``_demandly-challenge.<domain>`` TXT; set ``verified_at`` when it holds the
    token, else 422 saying what was found."""
    if record.verified_at is not None:
        return record
    name = dnscheck.challenge_name(record.domain)
    expected = dnscheck.challenge_value(record.verification_token)
    try:
        values = await dnscheck.txt_values(name, nameserver)
    except dnscheck.DnsLookupFailed as exc:
        raise ValidationFailed("domain", str(exc), code="domain_not_verified") from None
    if expected not in values:
        found = "no TXT record" if not values else "TXT records without the expected value"
        raise ValidationFailed(
            "domain",
            f"Found {found} at {name}. Create a TXT record there with the value "
            f"'{expected}' and try again; DNS changes can take a while to appear.",
            code="domain_not_verified",
        )
    record.verified_at = utcnow()
    await session.flush()
    return record


async def resolve_agency_by_host(session: AsyncSession, host: str) -> Agency | None:
    """The agency whose *verified* custom domain is ``host`` (a Host header, port allowed).
    Looks across all agencies, so it runs under the system scope and narrows back after."""
    name = host.strip().lower()
    if name.startswith("["):  # an IPv6 literal is never a custom domain
        return None
    name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
    try:
        name = s.normalize_hostname(name)
    except ValueError:
        return None
    async with system_scope(session):
        repo = TenancyRepository(session)
        record = await repo.domain_by_name(name)
        if record is None or record.verified_at is None:
            return None
        return await repo.agency(record.agency_id)


def set_user_locale(user: User, locale: str) -> None:
    """The user's language for the dashboard and e-mails to them."""
    if locale not in ("de", "en"):
        raise ValidationFailed("locale", "Choose de or en.")
    user.locale = locale


# --- clients -------------------------------------------------------------------------------


async def create_client(
    session: AsyncSession, data: s.ClientCreate, *, actor_ctx: AuthContext | None = None
) -> Client:
    """A client workspace; time zone and locale default to the agency's."""
    agency = await get_agency(session, data.agency_id)
    if actor_ctx is not None:
        authorize(actor_ctx, Permission.CLIENTS_CREATE, agency.id)
    client = Client(
        agency_id=agency.id,
        name=data.name,
        timezone=data.timezone or agency.timezone,
        locale=data.locale or agency.locale,
        privacy_policy_url=data.privacy_policy_url,
        status=Status.ACTIVE,
    )
    session.add(client)
    await session.flush()
    return client


async def get_client(session: AsyncSession, client_id: str) -> Client:
    client = await TenancyRepository(session).client(client_id)
    if client is None:
        raise NotFound("Client not found.")
    return client


def update_client(client: Client, data: s.ClientUpdate, *, actor_ctx: AuthContext) -> Client:
    changes = data.model_dump(exclude_unset=True)
    if "status" in changes:
        authorize(actor_ctx, Permission.CLIENTS_CREATE, client.agency_id)
    for field, value in changes.items():
        setattr(client, field, value)
    return client


async def delete_client(session: AsyncSession, client: Client) -> None:
    """Mark the client deleted (it vanishes everywhere), end everyone's access to it (its
    memberships, agency members' assignments, pending invitations) and emit
    ``client.deleted``; purging its data is the privacy module's job on that event."""
    now = utcnow()
    repo = TenancyRepository(session)
    client.status = Status.DELETED
    client.deleted_at = now
    for invitation in await repo.pending_invitations_of_client(client.id):
        invitation.revoked_at = now
    for access in await repo.access_to_client(client.id):
        await session.delete(access)
    await revoke_keys_of_client(session, client.id)
    await emit(
        session,
        CLIENT_DELETED_EVENT,
        agency_id=client.agency_id,
        client_id=client.id,
        entity_type="client",
        entity_id=client.id,
        payload={"deleted_at": now.isoformat()},
    )
    await session.flush()


# --- users and memberships -----------------------------------------------------------------


async def create_user(
    session: AsyncSession,
    email: str,
    password: str | None,
    name: str,
    is_platform_admin: bool = False,
) -> User:
    """A user; the password (if any) must pass the policy. 409 if the e-mail is taken.
    Users are platform rows: call it under the system scope."""
    email = email.strip().lower()
    if password is not None:
        validate_password(password, email)
    taken = Conflict("A user with this e-mail exists.", code="email_taken")
    if await TenancyRepository(session).user_by_email(email) is not None:
        raise taken
    now = utcnow()
    user = User(
        email=email,
        name=name.strip(),
        password_hash=hash_password(password) if password is not None else None,
        password_changed_at=now if password is not None else None,
        is_platform_admin=is_platform_admin,
        status=Status.ACTIVE,
    )
    session.add(user)
    await _flush_unique(session, taken)
    return user


async def _assignable(
    session: AsyncSession, agency_id: str, client_ids: Iterable[str]
) -> list[str]:
    """The given clients, each a live client of the agency the caller can see; 404 if not."""
    wanted = list(dict.fromkeys(client_ids))
    found = {c.id for c in await TenancyRepository(session).clients_of(agency_id, wanted)}
    missing = [cid for cid in wanted if cid not in found]
    if missing:
        raise NotFound(
            f"Client {missing[0]} not found.",
            details=[{"field": "assigned_client_ids", "message": f"unknown client {missing[0]}"}],
        )
    return wanted


async def add_membership(
    session: AsyncSession,
    user_id: str,
    role: Role,
    agency_id: str,
    client_id: str | None = None,
    assigned_client_ids: Iterable[str] = (),
) -> Membership:
    """Give a user a role at an agency (``client_id`` None) or one of its clients."""
    assigned = list(assigned_client_ids)
    _check_role_fits(role, client_id, assigned)
    repo = TenancyRepository(session)
    if await repo.membership_at(user_id, agency_id, client_id) is not None:
        raise Conflict("This user is already a member here.", code="already_member")
    assigned = await _assignable(session, agency_id, assigned)
    membership = Membership(
        user_id=user_id, role=role.value, agency_id=agency_id, client_id=client_id
    )
    membership.assignments = [
        MembershipClient(agency_id=agency_id, client_id=cid) for cid in assigned
    ]
    session.add(membership)
    await _flush_unique(
        session, Conflict("This user is already a member here.", code="already_member")
    )
    return membership


async def get_membership(session: AsyncSession, membership_id: str) -> Membership:
    membership = await TenancyRepository(session).membership(membership_id)
    if membership is None:
        raise NotFound("Membership not found.")
    return membership


async def _ensure_another_owner(session: AsyncSession, membership: Membership) -> None:
    if membership.role != Role.AGENCY_OWNER or membership.client_id is not None:
        return
    if await TenancyRepository(session).owner_count(membership.agency_id) <= 1:
        raise Conflict("An agency must keep at least one agency_owner.", code="last_owner")


async def update_membership(
    session: AsyncSession, membership: Membership, data: s.MembershipUpdate, *, granter: Role
) -> Membership:
    """Change a role and/or an agency_member's clients; only for roles up to the granter's."""
    current = Role(membership.role)
    _check_grantable(granter, current)
    role = data.role or current
    _check_grantable(granter, role)
    if data.assigned_client_ids is not None:
        assigned = data.assigned_client_ids
    else:
        assigned = membership.assigned_client_ids if role is Role.AGENCY_MEMBER else []
    _check_role_fits(role, membership.client_id, assigned)
    if role is not current:
        await _ensure_another_owner(session, membership)
        membership.role = role.value
    _assign(membership, await _assignable(session, membership.agency_id, assigned))
    await session.flush()
    return membership


def _assign(membership: Membership, client_ids: list[str]) -> None:
    keep = set(client_ids)
    for assignment in list(membership.assignments):
        if assignment.client_id not in keep:
            membership.assignments.remove(assignment)
    have = {a.client_id for a in membership.assignments}
    for cid in client_ids:
        if cid not in have:
            membership.assignments.append(
                MembershipClient(agency_id=membership.agency_id, client_id=cid)
            )


async def remove_membership(
    session: AsyncSession, membership: Membership, *, granter: Role | None
) -> None:
    """End the user's access to this agency or client; nothing else of theirs changes."""
    _check_grantable(granter, Role(membership.role))
    await _ensure_another_owner(session, membership)
    await session.delete(membership)
    await session.flush()


# --- invitations ---------------------------------------------------------------------------


async def resolve_place(
    session: AsyncSession, agency_id: str | None, client_id: str | None
) -> tuple[str, str | None]:
    """(agency_id, client_id) of an agency or a client the caller can see; 404 otherwise."""
    if client_id is not None:
        client = await get_client(session, client_id)
        if agency_id is not None and agency_id != client.agency_id:
            raise ValidationFailed("agency_id", "The client does not belong to this agency.")
        return client.agency_id, client.id
    if agency_id is None:
        raise ValidationFailed("agency_id", "Give agency_id or client_id.")
    return (await get_agency(session, agency_id)).id, None


async def invite(
    session: AsyncSession,
    *,
    email: str,
    role: Role,
    agency_id: str,
    client_id: str | None = None,
    assigned_client_ids: Sequence[str] = (),
    granter: Role | None = None,
    invited_by_user_id: str | None = None,
) -> IssuedInvitation:
    """An invitation valid for 7 days; its token is returned here once and stored hashed.
    Inviting the same address to the same place again replaces the earlier invitation."""
    email = email.strip().lower()
    _check_role_fits(role, client_id, assigned_client_ids)
    _check_grantable(granter, role)
    repo = TenancyRepository(session)
    assigned = await _assignable(session, agency_id, assigned_client_ids)
    user = await repo.user_by_email(email)
    if user is not None and await repo.membership_at(user.id, agency_id, client_id) is not None:
        raise Conflict("This person is already a member here.", code="already_member")
    now = utcnow()
    for earlier in await repo.pending_invitations_for(email, agency_id, client_id):
        earlier.revoked_at = now
    token = random_token()
    invitation = Invitation(
        email=email,
        role=role.value,
        agency_id=agency_id,
        client_id=client_id,
        token_hash=hash_token(token),
        expires_at=now + INVITATION_TTL,
        invited_by_user_id=invited_by_user_id,
        assigned_client_ids=assigned,
    )
    session.add(invitation)
    await session.flush()
    return IssuedInvitation(invitation=invitation, token=token)


async def get_invitation(session: AsyncSession, invitation_id: str) -> Invitation:
    invitation = await TenancyRepository(session).invitation(invitation_id)
    if invitation is None:
        raise NotFound("Invitation not found.")
    return invitation


async def revoke_invitation(
    session: AsyncSession, invitation: Invitation, *, granter: Role | None
) -> None:
    _check_grantable(granter, Role(invitation.role))
    if invitation.accepted_at is not None:
        raise Conflict("This invitation was already accepted.", code="invitation_used")
    invitation.revoked_at = invitation.revoked_at or utcnow()
    await session.flush()


@dataclass(frozen=True)
class Acceptance:
    user: User
    membership: Membership


async def accept_invitation(
    session: AsyncSession,
    token: str,
    *,
    name: str | None = None,
    password: str | None = None,
    current_user_id: str | None = None,
) -> Acceptance:
    """Join the invitation's agency or client: as the existing user with its e-mail, or as a
    new user with ``name`` and a policy-checked ``password``. Single use."""
    async with system_scope(session):
        invitation = await TenancyRepository(session).invitation_by_token_hash(hash_token(token))
    if invitation is None:
        raise NotFound("Invitation not found.")
    check_usable(invitation)
    # From here on, the work touches the invitation's tenant only.
    place = (
        Scope.for_client(invitation.agency_id, invitation.client_id)
        if invitation.client_id
        else Scope.for_agency(invitation.agency_id)
    )
    await set_scope(session, place)
    repo = TenancyRepository(session)
    user = await repo.user_by_email(invitation.email)
    if current_user_id is not None and (user is None or user.id != current_user_id):
        raise Conflict(
            "You are signed in with another e-mail address than the one invited. Sign out "
            "and open the link again.",
            code="email_mismatch",
        )
    if user is None:
        # Users are platform rows (their audit events go to the platform's chain).
        async with system_scope(session):
            user = await _new_user_for(session, invitation.email, name, password)
    await set_scope(session, place, replace(session_actor(session), kind="user", id=user.id))
    assigned = [
        c.id for c in await repo.clients_of(invitation.agency_id, invitation.assigned_client_ids)
    ]
    membership = await add_membership(
        session,
        user.id,
        Role(invitation.role),
        invitation.agency_id,
        invitation.client_id,
        assigned,
    )
    invitation.accepted_at = utcnow()
    await session.flush()
    return Acceptance(user=user, membership=membership)


def check_usable(invitation: Invitation) -> None:
    """410 when the invitation was used, withdrawn or has expired."""
    if invitation.accepted_at is not None:
        raise Gone("This invitation was already used.", code="invitation_used")
    if invitation.revoked_at is not None:
        raise Gone("This invitation was withdrawn.", code="invitation_revoked")
    if invitation.expires_at <= utcnow():
        raise Gone("This invitation has expired; ask for a new one.", code="invitation_expired")


async def _new_user_for(
    session: AsyncSession, email: str, name: str | None, password: str | None
) -> User:
    if not name or not name.strip():
        raise ValidationFailed("name", "Your name is required to create your account.")
    if not password:
        raise ValidationFailed("password", "Choose a password to create your account.")
    return await create_user(session, email, password, name)


def membership_view(membership: Membership) -> dict[str, Any]:
    """The API shape of a membership (with its user loaded)."""
    return {
        "id": membership.id,
        "user_id": membership.user_id,
        "email": membership.user.email,
        "name": membership.user.name,
        "role": membership.role,
        "agency_id": membership.agency_id,
        "client_id": membership.client_id,
        "assigned_client_ids": membership.assigned_client_ids,
        "created_at": membership.created_at,
    }
