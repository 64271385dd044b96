"""Every query of contacts, leads, notes and lead settings (the session's scope applies)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Insert, Select, String, and_, bindparam, cast, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.kit.context import Scope
from demandly.kit.db import (
    ScopedQuery,
    TenantFilter,
    ensure_writable,
    execute_core,
    grants_criteria,
    load_core,
    row_of_new,
    written,
)
from demandly.leads.models import Contact, Lead, LeadNote, LeadSettings
from demandly.tenancy.models import Membership, MembershipClient, Role, User


@dataclass(frozen=True)
class LeadFilters:
    client_id: str | None = None
    agent_id: str | None = None
    contact_id: str | None = None
    owner_id: str | None = None
    status: str | None = None
    min_score: int | None = None
    max_score: int | None = None
    tag: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class LeadRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _one(self, statement: Select[Any]) -> Any:
        return (await self.session.execute(statement)).scalar_one_or_none()

    # --- contacts

    def contacts(
        self, client_id: str | None, q: str | None, within: Scope | None = None
    ) -> Select[Any]:
        statement = select(Contact)
        if within is not None:
            statement = statement.where(
                grants_criteria(within, Contact.agency_id, Contact.client_id)
            )
        if client_id is not None:
            statement = statement.where(Contact.client_id == client_id)
        if q:
            statement = statement.where(_contact_matches(q))
        return statement

    async def contact(self, contact_id: str) -> Contact | None:
        statement = select(Contact).where(Contact.id == contact_id)
        return await self._one(statement.execution_options(populate_existing=True))

    async def contacts_matching(
        self, client_id: str, email: str | None, phone: str | None
    ) -> list[Contact]:
        """The client's contacts with this e-mail address or phone number (e-mail match first)."""
        if not (email or phone):
            return []
        query = _contacts_matching_query(bool(email), bool(phone))
        parameters = {"client_id": client_id, "email": email, "phone": phone}
        found = await load_core(self.session, Contact, query.statement(self.session), parameters)
        return sorted(found, key=lambda c: (email is None or c.email != email, c.id))

    async def leads_of_contact(self, contact_id: str) -> list[Lead]:
        rows = await self.session.execute(select(Lead).where(Lead.contact_id == contact_id))
        return list(rows.scalars())

    # --- leads

    def leads(self, filters: LeadFilters, within: Scope | None = None) -> Select[Any]:
        statement = select(Lead)
        if within is not None:
            statement = statement.where(grants_criteria(within, Lead.agency_id, Lead.client_id))
        for column, value in (
            (Lead.client_id, filters.client_id),
            (Lead.agent_id, filters.agent_id),
            (Lead.contact_id, filters.contact_id),
            (Lead.owner_id, filters.owner_id),
            (Lead.status, filters.status),
        ):
            if value is not None:
                statement = statement.where(column == value)
        if filters.min_score is not None:
            statement = statement.where(Lead.score >= filters.min_score)
        if filters.max_score is not None:
            statement = statement.where(Lead.score <= filters.max_score)
        if filters.since is not None:
            statement = statement.where(Lead.created_at >= filters.since)
        if filters.until is not None:
            statement = statement.where(Lead.created_at < filters.until)
        if filters.tag is not None:
            # Tags are a JSON list stored as text; the tag, quoted as JSON quotes it, is a
            # whole element (tags cannot contain quotes).
            statement = statement.where(
                cast(Lead.tags, String).contains(json.dumps(filters.tag), autoescape=True)
            )
        return statement

    def matching(self, filters: LeadFilters, q: str | None, within: Scope | None) -> Select[Any]:
        """``leads``, narrowed to those whose contact's name, e-mail, phone or company
        contains ``q``."""
        statement = self.leads(filters, within)
        if q:
            contacts = select(Contact.id).where(_contact_matches(q))
            if filters.client_id is not None:
                contacts = contacts.where(Contact.client_id == filters.client_id)
            statement = statement.where(Lead.contact_id.in_(contacts))
        return statement

    async def leads_of_conversations(self, conversation_ids: list[str]) -> dict[str, Lead]:
        if not conversation_ids:
            return {}
        rows = await self.session.execute(
            select(Lead).where(Lead.conversation_id.in_(conversation_ids))
        )
        return {lead.conversation_id: lead for lead in rows.scalars() if lead.conversation_id}

    async def export_page(
        self, filters: LeadFilters, within: Scope | None, after: str | None, limit: int
    ) -> list[tuple[Lead, Contact | None]]:
        """Leads with their contacts, newest first, after the id ``after``; leads of contacts
        whose processing is restricted are left out."""
        return await self.export_page_matching(filters, None, within, after, limit)

    async def export_page_matching(
        self,
        filters: LeadFilters,
        q: str | None,
        within: Scope | None,
        after: str | None,
        limit: int,
    ) -> list[tuple[Lead, Contact | None]]:
        """``export_page`` of the leads whose contact matches ``q`` (see ``matching``)."""
        statement = (
            self.matching(filters, q, within)
            .add_columns(Contact)
            .outerjoin(Contact, Contact.id == Lead.contact_id)
            .where(or_(Contact.id.is_(None), Contact.processing_restricted.is_(False)))
            .order_by(Lead.id.desc())
            .limit(limit)
        )
        if after is not None:
            statement = statement.where(Lead.id < after)
        return [(row[0], row[1]) for row in await self.session.execute(statement)]

    async def lead(self, lead_id: str, *, for_update: bool = False) -> Lead | None:
        statement = select(Lead).where(Lead.id == lead_id)
        if for_update and self.session.get_bind().dialect.name == "postgresql":
            statement = statement.with_for_update()
        return await self._one(statement.execution_options(populate_existing=True))

    async def lead_of_conversation(self, conversation_id: str) -> Lead | None:
        statement = _LEAD_OF_CONVERSATION.statement(self.session)
        found = await load_core(self.session, Lead, statement, {"conversation_id": conversation_id})
        return found[0] if found else None

    async def insert(self, lead: Lead) -> Lead:
        """Write a new lead and hand it back as written, without the ORM's unit of work (its
        audit event is the caller's to record)."""
        ensure_writable(self.session, lead.agency_id, lead.client_id)
        row = row_of_new(lead)
        await execute_core(self.session, _INSERT_LEAD, row)
        return written(self.session, lead, row)

    async def contacts_by_id(self, contact_ids: set[str]) -> dict[str, Contact]:
        if not contact_ids:
            return {}
        rows = await self.session.execute(select(Contact).where(Contact.id.in_(contact_ids)))
        return {c.id: c for c in rows.scalars()}

    # --- notes

    async def notes(self, lead_id: str) -> list[LeadNote]:
        rows = await self.session.execute(
            select(LeadNote).where(LeadNote.lead_id == lead_id).order_by(LeadNote.id)
        )
        return list(rows.scalars())

    # --- settings and people

    async def settings(self, client_id: str) -> LeadSettings | None:
        statement = _SETTINGS.statement(self.session)
        found = await load_core(self.session, LeadSettings, statement, {"client_id": client_id})
        return found[0] if found else None

    async def is_team_member(self, user_id: str, agency_id: str, client_id: str) -> bool:
        """The user holds a role in the client or (agency-wide) in its agency."""
        statement = select(Membership.id).where(
            Membership.user_id == user_id,
            Membership.agency_id == agency_id,
            or_(Membership.client_id.is_(None), Membership.client_id == client_id),
        )
        return (await self.session.execute(statement.limit(1))).first() is not None

    async def team_members(self, agency_id: str, client_id: str) -> list[User]:
        """The people who can see the client (``is_team_member``, less agency members not
        assigned to it), by name: who a lead can be given to."""
        assigned = select(MembershipClient.membership_id).where(
            MembershipClient.client_id == client_id
        )
        members = select(Membership.user_id).where(
            Membership.agency_id == agency_id,
            or_(
                Membership.client_id == client_id,
                and_(
                    Membership.client_id.is_(None),
                    or_(Membership.role != Role.AGENCY_MEMBER, Membership.id.in_(assigned)),
                ),
            ),
        )
        statement = select(User).where(User.id.in_(members)).order_by(User.name, User.email)
        return list((await self.session.execute(statement)).scalars())

    async def users_by_id(self, user_ids: set[str]) -> dict[str, User]:
        if not user_ids:
            return {}
        rows = await self.session.execute(select(User).where(User.id.in_(user_ids)))
        return {user.id: user for user in rows.scalars()}


def _contact_matches(q: str) -> Any:
    pattern = f"%{_escape_like(q)}%"
    return or_(
        *(
            column.ilike(pattern, escape="\\")
            for column in (Contact.name, Contact.email, Contact.phone, Contact.company)
        )
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@cache
def _contacts_matching_query(email: bool, phone: bool) -> ScopedQuery[Select[Any]]:
    """``contacts_matching``'s statement (built once per scope: a booking and a captured lead
    run it every time)."""

    def build(tenant: TenantFilter) -> Select[Any]:
        conditions = []
        if email:
            conditions.append(Contact.email == bindparam("email"))
        if phone:
            conditions.append(Contact.phone == bindparam("phone"))
        return select(Contact).where(
            Contact.client_id == bindparam("client_id"), or_(*conditions), tenant(Contact)
        )

    return ScopedQuery(build)


# A captured lead runs these every time (built once per scope: kit.db.ScopedQuery).
def _lead_of_conversation(tenant: TenantFilter) -> Select[Any]:
    return select(Lead).where(Lead.conversation_id == bindparam("conversation_id"), tenant(Lead))


def _settings(tenant: TenantFilter) -> Select[Any]:
    return select(LeadSettings).where(
        LeadSettings.client_id == bindparam("client_id"), tenant(LeadSettings)
    )


_LEAD_OF_CONVERSATION = ScopedQuery(_lead_of_conversation)
_SETTINGS = ScopedQuery(_settings)
_INSERT_LEAD: Insert = insert(Lead.__table__)
