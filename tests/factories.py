"""Builders of test tenants: real rows through the ORM (no mocks), under the system scope."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from demandly.auth.dependencies import SESSION_COOKIE
from demandly.auth.models import ApiKey
from demandly.auth.passwords import hash_password
from demandly.kit.context import Scope
from demandly.kit.crypto import hash_token
from demandly.kit.db import Database
from demandly.kit.ids import random_token, ulid
from demandly.tenancy.models import Agency, Client, Membership, MembershipClient, Role, User

PASSWORD = "correct horse battery staple 42"


def unique(prefix: str) -> str:
    return f"{prefix}-{ulid()[-10:]}"


@dataclass
class Tenant:
    agency: Agency
    clients: list[Client]
    users: dict[str, User] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # role -> bearer token

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


@dataclass
class World:
    a: Tenant
    b: Tenant
    platform_admin: User
    platform_key_headers: dict[str, str] = field(default_factory=dict)


async def make_agency(db: Database, name: str | None = None, clients: int = 2) -> Tenant:
    name = name or unique("Agency")
    async with db.session(Scope.for_system()) as session:
        agency = Agency(name=name, slug=unique("agency").lower(), branding={"display_name": name})
        session.add(agency)
        await session.flush()
        made = []
        for i in range(clients):
            client = Client(agency_id=agency.id, name=f"{name} client {i + 1}")
            session.add(client)
            made.append(client)
        await session.commit()
    return Tenant(agency=agency, clients=made)


async def make_user(
    db: Database,
    *,
    email: str | None = None,
    password: str = PASSWORD,
    role: Role | None = None,
    agency_id: str | None = None,
    client_id: str | None = None,
    assigned_client_ids: tuple[str, ...] = (),
    platform_admin: bool = False,
) -> User:
    async with db.session(Scope.for_system()) as session:
        user = User(
            email=(email or f"{unique('user')}@example.test").lower(),
            name="Test User",
            password_hash=hash_password(password),
            is_platform_admin=platform_admin,
        )
        session.add(user)
        await session.flush()
        if role is not None and agency_id is not None:
            membership = Membership(
                user_id=user.id, agency_id=agency_id, client_id=client_id, role=role.value
            )
            session.add(membership)
            await session.flush()
            for assigned in assigned_client_ids:
                session.add(
                    MembershipClient(
                        membership_id=membership.id, agency_id=agency_id, client_id=assigned
                    )
                )
        await session.commit()
    return user


async def make_api_key(
    db: Database, *, role: Role, agency_id: str, client_id: str | None = None
) -> str:
    token = random_token("dmd_")
    async with db.session(Scope.for_system()) as session:
        session.add(
            ApiKey(
                name=f"test {role.value}",
                key_hash=hash_token(token),
                display_prefix=token[:8],
                role=role.value,
                agency_id=agency_id,
                client_id=client_id,
            )
        )
        await session.commit()
    return token


async def make_tenant(db: Database) -> Tenant:
    """An agency with two clients, a user and an API key per role.

    The agency_member is assigned to the first client only; client roles sit on the first
    client. Keys are named by role; ``member`` users share the roles' names."""
    tenant = await make_agency(db)
    agency_id = tenant.agency.id
    first = tenant.clients[0].id
    for role in (Role.AGENCY_OWNER, Role.AGENCY_ADMIN, Role.AGENCY_MEMBER):
        assigned = (first,) if role is Role.AGENCY_MEMBER else ()
        tenant.users[role.value] = await make_user(
            db, role=role, agency_id=agency_id, assigned_client_ids=assigned
        )
    for role in (Role.CLIENT_ADMIN, Role.CLIENT_MEMBER, Role.CLIENT_VIEWER):
        tenant.users[role.value] = await make_user(
            db, role=role, agency_id=agency_id, client_id=first
        )
        tenant.keys[role.value] = await make_api_key(
            db, role=role, agency_id=agency_id, client_id=first
        )
    for role in (Role.AGENCY_OWNER, Role.AGENCY_ADMIN):
        tenant.keys[role.value] = await make_api_key(db, role=role, agency_id=agency_id)
    return tenant


async def build_world(db: Database) -> World:
    a = await make_tenant(db)
    b = await make_tenant(db)
    admin = await make_user(db, platform_admin=True)
    return World(a=a, b=b, platform_admin=admin)


async def login_headers(
    client: httpx.AsyncClient, user: User, password: str = PASSWORD
) -> dict[str, str]:
    """Sign ``user`` in through ``POST /auth/login``; the session cookie and CSRF header to send.
    The cookie is passed per request, not kept in the client, so other calls stay anonymous."""
    response = await client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": password}
    )
    assert response.status_code == 200, response.text
    token = response.cookies[SESSION_COOKIE]
    client.cookies.clear()
    return {"Cookie": f"{SESSION_COOKIE}={token}", "X-CSRF-Token": response.json()["csrf_token"]}
