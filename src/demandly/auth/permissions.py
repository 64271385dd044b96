"""The permission matrix: which role may do what. Enforced in one place, ``AuthContext.require``;
documented in docs/security.md (keep both in step: tests/auth/test_permissions.py compares)."""

from __future__ import annotations

from enum import StrEnum

from demandly.tenancy.models import Role


class Permission(StrEnum):
    AGENCIES_CREATE = "agencies:create"
    AGENCIES_READ = "agencies:read"
    AGENCIES_UPDATE = "agencies:update"
    CLIENTS_CREATE = "clients:create"
    CLIENTS_READ = "clients:read"
    CLIENTS_UPDATE = "clients:update"
    CLIENTS_DELETE = "clients:delete"
    MEMBERS_READ = "members:read"
    MEMBERS_MANAGE = "members:manage"
    API_KEYS_MANAGE = "api_keys:manage"
    AUDIT_READ = "audit:read"
    JOBS_READ = "jobs:read"
    JOBS_MANAGE = "jobs:manage"
    # Everything a client's workspace holds (agents, conversations, leads, calendars …).
    CONTENT_READ = "content:read"
    CONTENT_WRITE = "content:write"
    # Settings of a client's workspace that change how personal data is handled.
    CLIENT_SETTINGS = "client:settings"


P = Permission

_CLIENT_VIEWER = {P.AGENCIES_READ, P.CLIENTS_READ, P.CONTENT_READ}
_CLIENT_MEMBER = _CLIENT_VIEWER | {P.CONTENT_WRITE}
_CLIENT_ADMIN = _CLIENT_MEMBER | {
    P.CLIENTS_UPDATE,
    P.MEMBERS_READ,
    P.MEMBERS_MANAGE,
    P.API_KEYS_MANAGE,
    P.AUDIT_READ,
    P.CLIENT_SETTINGS,
}
_AGENCY_MEMBER = _CLIENT_MEMBER | {P.MEMBERS_READ}
_AGENCY_ADMIN = _CLIENT_ADMIN | {
    P.AGENCIES_UPDATE,
    P.CLIENTS_CREATE,
    P.CLIENTS_DELETE,
    P.JOBS_READ,
    P.JOBS_MANAGE,
}
_AGENCY_OWNER = set(_AGENCY_ADMIN)

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.PLATFORM_ADMIN: frozenset(Permission),
    Role.AGENCY_OWNER: frozenset(_AGENCY_OWNER),
    Role.AGENCY_ADMIN: frozenset(_AGENCY_ADMIN),
    Role.AGENCY_MEMBER: frozenset(_AGENCY_MEMBER),
    Role.CLIENT_ADMIN: frozenset(_CLIENT_ADMIN),
    Role.CLIENT_MEMBER: frozenset(_CLIENT_MEMBER),
    Role.CLIENT_VIEWER: frozenset(_CLIENT_VIEWER),
}

# Higher may grant lower or equal (invitations, API keys); never above itself.
ROLE_RANK: dict[Role, int] = {
    Role.PLATFORM_ADMIN: 100,
    Role.AGENCY_OWNER: 90,
    Role.AGENCY_ADMIN: 80,
    Role.AGENCY_MEMBER: 60,
    Role.CLIENT_ADMIN: 50,
    Role.CLIENT_MEMBER: 40,
    Role.CLIENT_VIEWER: 30,
}


def allows(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


def can_grant(granter: Role, role: Role) -> bool:
    return ROLE_RANK[granter] >= ROLE_RANK[role]
