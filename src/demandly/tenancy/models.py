"""Agencies, clients, users, memberships, invitations and custom domains."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from demandly.kit.context import Scope
from demandly.kit.crypto import EncryptedString
from demandly.kit.db import RecordModel, TenantMixin, grants_criteria


class Role(StrEnum):
    PLATFORM_ADMIN = "platform_admin"
    AGENCY_OWNER = "agency_owner"
    AGENCY_ADMIN = "agency_admin"
    AGENCY_MEMBER = "agency_member"
    CLIENT_ADMIN = "client_admin"
    CLIENT_MEMBER = "client_member"
    CLIENT_VIEWER = "client_viewer"

    @property
    def is_agency_role(self) -> bool:
        return self in AGENCY_ROLES

    @property
    def is_client_role(self) -> bool:
        return self in CLIENT_ROLES


AGENCY_ROLES = frozenset({Role.AGENCY_OWNER, Role.AGENCY_ADMIN, Role.AGENCY_MEMBER})
CLIENT_ROLES = frozenset({Role.CLIENT_ADMIN, Role.CLIENT_MEMBER, Role.CLIENT_VIEWER})


class Status(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    OFFBOARDING = "offboarding"
    # Clients only: soft-deleted, hidden everywhere, awaiting the privacy purge.
    DELETED = "deleted"


class Agency(RecordModel):
    __tablename__ = "agencies"
    __id_prefix__ = "agc"
    __tenant__ = True
    __audited__ = True

    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    status: Mapped[str] = mapped_column(String(20), default=Status.ACTIVE)
    # Defaults for the agency's new clients.
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Berlin")
    locale: Mapped[str] = mapped_column(String(10), default="de")
    # display_name, logo_url, primary_color, accent_color, support_email, sender_name,
    # privacy_policy_url, imprint_url
    branding: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    # Loaded by query where needed (TenancyRepository.domains); the database cascades deletes.
    domains: Mapped[list[AgencyDomain]] = relationship(
        back_populates="agency", lazy="raise", passive_deletes=True
    )

    @classmethod
    def tenant_criteria(cls, scope: Scope) -> ColumnElement[bool]:
        # Anyone granted anything in an agency sees the agency (its brand, its name).
        return cls.id.in_(sorted(scope.agency_ids))

    def tenant_owner(self) -> tuple[str | None, str | None]:
        return self.id, None


class AgencyDomain(RecordModel, TenantMixin):
    """A custom domain for the white-label dashboard, verified by a DNS TXT token."""

    __tablename__ = "agency_domains"
    __id_prefix__ = "dom"

    domain: Mapped[str] = mapped_column(String(253), unique=True)
    verification_token: Mapped[str] = mapped_column(String(64))
    verified_at: Mapped[datetime | None] = mapped_column(default=None)

    agency: Mapped[Agency] = relationship(back_populates="domains")


class AgencyAsset(RecordModel, TenantMixin):
    """An uploaded brand file (logo, favicon), kept in the database so every process of a
    scaled-out deployment serves it. Public by its unguessable id (it is shown on login pages
    and in e-mails)."""

    __tablename__ = "agency_assets"
    __id_prefix__ = "ast"

    kind: Mapped[str] = mapped_column(String(20))  # logo | favicon
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)


class Client(RecordModel):
    __tablename__ = "clients"
    __id_prefix__ = "cli"
    __tenant__ = True
    __audited__ = True

    agency_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("agencies.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Berlin")
    locale: Mapped[str] = mapped_column(String(10), default="de")
    status: Mapped[str] = mapped_column(String(20), default=Status.ACTIVE)
    privacy_policy_url: Mapped[str | None] = mapped_column(String(500), default=None)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)

    @classmethod
    def tenant_criteria(cls, scope: Scope) -> ColumnElement[bool]:
        return grants_criteria(scope, cls.agency_id, cls.id)

    def tenant_owner(self) -> tuple[str | None, str | None]:
        return self.agency_id, self.id


class User(RecordModel):
    """A person who logs in. Global: memberships tie users to agencies and clients."""

    __tablename__ = "users"
    __id_prefix__ = "usr"
    __audited__ = True

    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    is_platform_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default=Status.ACTIVE)
    # The dashboard's language the user chose; None: the browser's (Accept-Language).
    locale: Mapped[str | None] = mapped_column(String(10), default=None)
    password_changed_at: Mapped[datetime | None] = mapped_column(default=None)
    totp_secret: Mapped[str | None] = mapped_column(EncryptedString(255), default=None)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(default=None)
    # The time step of the last TOTP code accepted: a code is good once (auth domain).
    totp_last_counter: Mapped[int | None] = mapped_column(BigInteger, default=None)

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="user", lazy="raise", cascade="all, delete-orphan"
    )


class Membership(RecordModel, TenantMixin):
    """A user's role in an agency (client_id null) or in one client."""

    __tablename__ = "memberships"
    __id_prefix__ = "mem"
    __table_args__ = (UniqueConstraint("user_id", "agency_id", "client_id"),)

    user_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(32))

    user: Mapped[User] = relationship(back_populates="memberships", lazy="raise")
    assignments: Mapped[list[MembershipClient]] = relationship(
        lazy="selectin", cascade="all, delete-orphan"
    )

    @property
    def assigned_client_ids(self) -> list[str]:
        return [a.client_id for a in self.assignments if a.client_id]


class MembershipClient(RecordModel, TenantMixin):
    """The clients an ``agency_member`` is assigned to."""

    __tablename__ = "membership_clients"
    __id_prefix__ = "mcl"
    __table_args__ = (UniqueConstraint("membership_id", "client_id"),)

    membership_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("memberships.id", ondelete="CASCADE"), index=True
    )


class Invitation(RecordModel, TenantMixin):
    __tablename__ = "invitations"
    __id_prefix__ = "inv"

    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    invited_by_user_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    assigned_client_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
