"""The AuthContext: who is calling, what they may see (their Scope) and what they may do."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from demandly.auth.permissions import ROLE_RANK, Permission, allows
from demandly.kit.context import Actor, Scope
from demandly.kit.errors import Forbidden, NotFound
from demandly.tenancy.models import Role, User


@dataclass(frozen=True)
class Grant:
    """One role at one place: an agency (client_id None) or one client."""

    role: Role
    agency_id: str
    client_id: str | None = None
    # For agency_member: the clients assigned to them.
    assigned_client_ids: frozenset[str] = frozenset()
    # The membership behind a user's grant (None for an API key).
    membership_id: str | None = None

    def reaches(self, agency_id: str, client_id: str | None) -> bool:
        if agency_id != self.agency_id:
            return False
        if self.client_id is not None:
            return client_id == self.client_id
        if self.role is Role.AGENCY_MEMBER:
            return client_id is not None and client_id in self.assigned_client_ids
        return True

    def scope(self) -> Scope:
        if self.client_id is not None:
            return Scope.for_client(self.agency_id, self.client_id)
        if self.role is Role.AGENCY_MEMBER:
            return Scope.for_agency(self.agency_id, self.assigned_client_ids)
        return Scope.for_agency(self.agency_id)


@dataclass(frozen=True)
class AuthContext:
    kind: str  # "user" | "api_key"
    subject_id: str
    grants: tuple[Grant, ...] = ()
    is_platform_admin: bool = False
    user_id: str | None = None
    session_id: str | None = None
    api_key_id: str | None = None
    api_key_name: str | None = None
    # The signed-in user's row, loaded once by authentication (kept for /me and the like).
    user: User | None = field(default=None, compare=False, repr=False)
    actor: Actor = field(default_factory=Actor)

    @property
    def scope(self) -> Scope:
        if self.is_platform_admin:
            return Scope.for_system()
        scope = Scope()
        for grant in self.grants:
            scope = scope.merge(grant.scope())
        return scope

    def role_at(self, agency_id: str | None, client_id: str | None = None) -> Role | None:
        """The highest role this caller holds over the given agency or client."""
        if self.is_platform_admin:
            return Role.PLATFORM_ADMIN
        if agency_id is None:
            return None
        roles = [g.role for g in self.grants if g.reaches(agency_id, client_id)]
        return max(roles, key=ROLE_RANK.__getitem__) if roles else None

    def require(
        self, permission: Permission, agency_id: str | None, client_id: str | None = None
    ) -> Role:
        """Raise 404 when the caller cannot see the place at all, 403 when the role is too low."""
        role = self.role_at(agency_id, client_id)
        if role is None:
            raise NotFound()
        if not allows(role, permission):
            raise Forbidden(f"Your role ({role.value}) does not allow {permission.value}.")
        return role

    def require_platform_admin(self) -> None:
        if not self.is_platform_admin:
            raise Forbidden("Only a platform administrator may do this.")

    def scope_where(self, permission: Permission) -> Scope | None:
        """The places where the caller's role carries ``permission``, to narrow a listing;
        None for platform admins (no narrowing)."""
        if self.is_platform_admin:
            return None
        scope = Scope()
        for grant in self.grants:
            if allows(grant.role, permission):
                scope = scope.merge(grant.scope())
        return scope

    @property
    def primary_role(self) -> Role | None:
        if self.is_platform_admin:
            return Role.PLATFORM_ADMIN
        roles: Iterable[Role] = (g.role for g in self.grants)
        return max(roles, key=ROLE_RANK.__getitem__, default=None)
