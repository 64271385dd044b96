"""Who is acting and which tenants they may touch. Set on the database session by the edge
(auth dependency) or by a job for its tenant; read by the scoping hooks in ``kit.db``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Scope:
    """The tenant rows a unit of work may see.

    ``grants`` maps an agency id to the client ids visible in it, or ``None`` for all of the
    agency's clients and its agency-level rows. ``system`` sees everything: platform
    administration and the job worker's own bookkeeping, never a visitor or a client user.
    """

    grants: Mapping[str, frozenset[str] | None] = field(default_factory=dict)
    system: bool = False

    @classmethod
    def for_system(cls) -> Scope:
        return cls(system=True)

    @classmethod
    def for_agency(cls, agency_id: str, client_ids: Iterable[str] | None = None) -> Scope:
        clients = frozenset(client_ids) if client_ids is not None else None
        return cls(grants={agency_id: clients})

    @classmethod
    def for_client(cls, agency_id: str, client_id: str) -> Scope:
        return cls(grants={agency_id: frozenset({client_id})})

    @property
    def agency_ids(self) -> frozenset[str]:
        return frozenset(self.grants)

    def allows(self, agency_id: str | None, client_id: str | None) -> bool:
        """May this scope see (or write) a row owned by ``agency_id``/``client_id``?"""
        if self.system:
            return True
        if agency_id is None or agency_id not in self.grants:
            return False
        clients = self.grants[agency_id]
        if clients is None:
            return True
        return client_id is not None and client_id in clients

    def merge(self, other: Scope) -> Scope:
        if self.system or other.system:
            return Scope.for_system()
        grants: dict[str, frozenset[str] | None] = dict(self.grants)
        for agency_id, clients in other.grants.items():
            if agency_id not in grants:
                grants[agency_id] = clients
            elif grants[agency_id] is None or clients is None:
                grants[agency_id] = None
            else:
                grants[agency_id] = grants[agency_id] | clients  # type: ignore[operator]
        return Scope(grants=grants)


@dataclass(frozen=True)
class Actor:
    """Recorded on every audit event. ``kind`` is user, api_key, visitor or system."""

    kind: str = "system"
    id: str | None = None
    role: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None


SYSTEM_ACTOR = Actor()
