"""Every tenancy query. The session's scope filters tenant rows on its own: a row of another
tenant is simply not found. Look-ups across tenants (uniqueness, tokens, hosts) are run by the
service under the system scope on purpose."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, undefer

from demandly.kit.context import Scope
from demandly.kit.db import grants_criteria
from demandly.kit.time import utcnow
from demandly.tenancy.models import (
    Agency,
    AgencyAsset,
    AgencyDomain,
    Client,
    Invitation,
    Membership,
    MembershipClient,
    Role,
    Status,
    User,
)


class TenancyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _one(self, statement: Select[Any]) -> Any:
        return (await self.session.execute(statement)).scalar_one_or_none()

    # --- agencies

    async def agency(self, agency_id: str) -> Agency | None:
        return await self._one(select(Agency).where(Agency.id == agency_id))

    async def agency_by_slug(self, slug: str) -> Agency | None:
        return await self._one(select(Agency).where(Agency.slug == slug))

    def agencies(self) -> Select[Any]:
        return select(Agency)

    # --- domains

    async def domain(self, agency_id: str, domain_id: str) -> AgencyDomain | None:
        return await self._one(
            select(AgencyDomain).where(
                AgencyDomain.id == domain_id, AgencyDomain.agency_id == agency_id
            )
        )

    async def domain_by_name(self, domain: str) -> AgencyDomain | None:
        return await self._one(select(AgencyDomain).where(AgencyDomain.domain == domain))

    def domains(self, agency_id: str) -> Select[Any]:
        return select(AgencyDomain).where(AgencyDomain.agency_id == agency_id)

    # --- clients (deleted clients are gone for everyone but the purge)

    async def client(self, client_id: str) -> Client | None:
        return await self._one(
            select(Client).where(Client.id == client_id, Client.status != Status.DELETED)
        )

    async def clients_of(self, agency_id: str, client_ids: Iterable[str]) -> list[Client]:
        result = await self.session.execute(
            select(Client).where(
                Client.agency_id == agency_id,
                Client.id.in_(sorted(set(client_ids))),
                Client.status != Status.DELETED,
            )
        )
        return list(result.scalars().all())

    def clients(self, agency_id: str | None = None, status: str | None = None) -> Select[Any]:
        statement = select(Client).where(Client.status != Status.DELETED)
        if agency_id is not None:
            statement = statement.where(Client.agency_id == agency_id)
        if status is not None:
            statement = statement.where(Client.status == status)
        return statement

    # --- brand assets

    async def asset(self, asset_id: str) -> AgencyAsset | None:
        """An uploaded brand file with its bytes."""
        return await self._one(
            select(AgencyAsset).options(undefer(AgencyAsset.data)).where(AgencyAsset.id == asset_id)
        )

    async def assets_of(self, agency_id: str, kind: str) -> list[AgencyAsset]:
        """The agency's files of one kind (logo, favicon), without their bytes."""
        result = await self.session.execute(
            select(AgencyAsset).where(AgencyAsset.agency_id == agency_id, AgencyAsset.kind == kind)
        )
        return list(result.scalars().all())

    # --- users

    async def user(self, user_id: str) -> User | None:
        return await self._one(select(User).where(User.id == user_id))

    async def user_by_email(self, email: str) -> User | None:
        return await self._one(select(User).where(User.email == email.lower()))

    async def users_by_ids(self, user_ids: Iterable[str]) -> list[User]:
        """The users with these ids, in one query (for naming actors in a list)."""
        wanted = list(dict.fromkeys(user_ids))
        if not wanted:
            return []
        result = await self.session.execute(select(User).where(User.id.in_(wanted)))
        return list(result.scalars().all())

    # --- memberships

    async def membership(self, membership_id: str) -> Membership | None:
        return await self._one(
            select(Membership)
            .options(joinedload(Membership.user))
            .where(Membership.id == membership_id)
        )

    async def membership_at(
        self, user_id: str, agency_id: str, client_id: str | None
    ) -> Membership | None:
        return await self._one(
            select(Membership).where(
                Membership.user_id == user_id,
                Membership.agency_id == agency_id,
                _is(Membership.client_id, client_id),
            )
        )

    async def owner_count(self, agency_id: str) -> int:
        """Agency owners, with their rows locked (PostgreSQL) so that two owners cannot
        demote each other at the same time."""
        result = await self.session.execute(
            select(Membership.id)
            .where(
                Membership.agency_id == agency_id,
                Membership.client_id.is_(None),
                Membership.role == Role.AGENCY_OWNER,
            )
            .with_for_update()
        )
        return len(result.all())

    async def access_to_client(self, client_id: str) -> list[Membership | MembershipClient]:
        """The client's own memberships and the agency members' assignments to it."""
        memberships = await self.session.execute(
            select(Membership).where(Membership.client_id == client_id)
        )
        assignments = await self.session.execute(
            select(MembershipClient).where(MembershipClient.client_id == client_id)
        )
        return [*memberships.scalars().all(), *assignments.scalars().all()]

    def memberships(
        self, agency_id: str | None, client_id: str | None, within: Scope | None
    ) -> Select[Any]:
        """Memberships, optionally of one agency or client, and within the part of the
        caller's scope where it may read them (``None``: all it sees)."""
        statement = select(Membership).options(joinedload(Membership.user))
        if within is not None:
            statement = statement.where(
                grants_criteria(within, Membership.agency_id, Membership.client_id)
            )
        return _place(statement, Membership, agency_id, client_id)

    # --- invitations

    async def invitation(self, invitation_id: str) -> Invitation | None:
        return await self._one(select(Invitation).where(Invitation.id == invitation_id))

    async def invitation_by_token_hash(self, token_hash: str) -> Invitation | None:
        return await self._one(
            select(Invitation).where(Invitation.token_hash == token_hash).with_for_update()
        )

    async def pending_invitations_for(
        self, email: str, agency_id: str, client_id: str | None
    ) -> list[Invitation]:
        result = await self.session.execute(
            _pending(select(Invitation)).where(
                Invitation.email == email,
                Invitation.agency_id == agency_id,
                _is(Invitation.client_id, client_id),
            )
        )
        return list(result.scalars().all())

    async def pending_invitations_of_client(self, client_id: str) -> list[Invitation]:
        result = await self.session.execute(
            _pending(select(Invitation)).where(Invitation.client_id == client_id)
        )
        return list(result.scalars().all())

    def invitations(
        self, agency_id: str | None, client_id: str | None, within: Scope | None
    ) -> Select[Any]:
        statement = _pending(select(Invitation))
        if within is not None:
            statement = statement.where(
                grants_criteria(within, Invitation.agency_id, Invitation.client_id)
            )
        return _place(statement, Invitation, agency_id, client_id)


def _is(column: Any, value: str | None) -> Any:
    return column.is_(None) if value is None else column == value


def _place(statement: Select[Any], model: Any, agency_id: str | None, client_id: str | None) -> Any:
    if agency_id is not None:
        statement = statement.where(model.agency_id == agency_id)
    if client_id is not None:
        statement = statement.where(model.client_id == client_id)
    return statement


def _pending(statement: Select[Any]) -> Select[Any]:
    return statement.where(
        Invitation.accepted_at.is_(None),
        Invitation.revoked_at.is_(None),
        Invitation.expires_at > utcnow(),
    )
