from __future__ import annotations

import httpx

from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.tenancy.models import Role
from demandly.tenancy.service import add_membership
from tests.factories import Tenant, World, make_tenant, make_user
from tests.tenancy.conftest import login_headers

API = "/api/v1"


async def members(
    client: httpx.AsyncClient, headers: dict[str, str], **params: str
) -> dict[str, dict]:  # type: ignore[type-arg]
    response = await client.get(
        f"{API}/memberships", params={"limit": 200, **params}, headers=headers
    )
    assert response.status_code == 200, response.text
    return {m["user_id"]: m for m in response.json()["items"]}


def membership_of(team: dict[str, dict], tenant: Tenant, role: str) -> dict:  # type: ignore[type-arg]
    return team[tenant.users[role].id]


async def test_list_members_of_agency_and_client(client: httpx.AsyncClient, world: World) -> None:
    team = await members(client, world.a.headers("agency_owner"), agency_id=world.a.agency.id)
    assert {u.id for u in world.a.users.values()} <= set(team)
    assert not {u.id for u in world.b.users.values()} & set(team)
    member = membership_of(team, world.a, "agency_member")
    assert member["role"] == "agency_member"
    assert member["assigned_client_ids"] == [world.a.clients[0].id]
    assert member["email"] == world.a.users["agency_member"].email
    assert member["client_id"] is None

    client_team = await members(
        client, world.a.headers("client_admin"), client_id=world.a.clients[0].id
    )
    assert {m["role"] for m in client_team.values()} == {
        "client_admin",
        "client_member",
        "client_viewer",
    }
    # Without a filter: wherever the caller may read the team.
    assert set(await members(client, world.a.headers("client_admin"))) == set(client_team)


async def test_reading_the_team_needs_the_permission(
    client: httpx.AsyncClient, world: World
) -> None:
    viewer = await client.get(
        f"{API}/memberships",
        params={"client_id": world.a.clients[0].id},
        headers=world.a.headers("client_viewer"),
    )
    assert viewer.status_code == 403
    foreign = await client.get(
        f"{API}/memberships",
        params={"agency_id": world.b.agency.id},
        headers=world.a.headers("agency_owner"),
    )
    assert foreign.status_code == 404
    assert await members(client, world.a.headers("client_viewer")) == {}


async def test_change_role_and_assignments(client: httpx.AsyncClient, db: Database) -> None:
    tenant = await make_tenant(db)
    owner = tenant.headers("agency_owner")
    team = await members(client, owner, agency_id=tenant.agency.id)
    member = membership_of(team, tenant, "agency_member")
    member_session = await login_headers(client, tenant.users["agency_member"])
    clients = lambda: client.get(f"{API}/clients", headers=member_session)  # noqa: E731

    assert {c["id"] for c in (await clients()).json()["items"]} == {tenant.clients[0].id}
    reassigned = await client.patch(
        f"{API}/memberships/{member['id']}",
        json={"assigned_client_ids": [tenant.clients[1].id]},
        headers=owner,
    )
    assert reassigned.status_code == 200, reassigned.text
    assert reassigned.json()["assigned_client_ids"] == [tenant.clients[1].id]
    assert {c["id"] for c in (await clients()).json()["items"]} == {tenant.clients[1].id}

    promoted = await client.patch(
        f"{API}/memberships/{member['id']}", json={"role": "agency_admin"}, headers=owner
    )
    assert promoted.status_code == 200
    assert promoted.json()["assigned_client_ids"] == []
    assert {c["id"] for c in (await clients()).json()["items"]} == {c.id for c in tenant.clients}

    misfit = await client.patch(
        f"{API}/memberships/{member['id']}", json={"role": "client_admin"}, headers=owner
    )
    assert misfit.status_code == 422
    assert misfit.json()["error"]["details"][0]["field"] == "role"
    foreign_client = await client.patch(
        f"{API}/memberships/{member['id']}",
        json={"role": "agency_member", "assigned_client_ids": ["cli_doesnotexist"]},
        headers=owner,
    )
    assert foreign_client.status_code == 404


async def test_roles_up_to_your_own(client: httpx.AsyncClient, db: Database) -> None:
    tenant = await make_tenant(db)
    admin = tenant.headers("agency_admin")
    team = await members(client, admin, agency_id=tenant.agency.id)
    owner_membership = membership_of(team, tenant, "agency_owner")
    member = membership_of(team, tenant, "agency_member")

    above = await client.patch(
        f"{API}/memberships/{member['id']}", json={"role": "agency_owner"}, headers=admin
    )
    assert above.status_code == 403
    demote_owner = await client.patch(
        f"{API}/memberships/{owner_membership['id']}", json={"role": "agency_member"}, headers=admin
    )
    assert demote_owner.status_code == 403
    remove_owner = await client.delete(f"{API}/memberships/{owner_membership['id']}", headers=admin)
    assert remove_owner.status_code == 403
    # A client member sees its client's team, but may not manage it.
    client_team = await members(
        client, tenant.headers("client_admin"), client_id=tenant.clients[0].id
    )
    viewer = membership_of(client_team, tenant, "client_viewer")
    by_member = await client.patch(
        f"{API}/memberships/{viewer['id']}",
        json={"role": "client_member"},
        headers=tenant.headers("client_member"),
    )
    assert by_member.status_code == 403
    by_admin = await client.patch(
        f"{API}/memberships/{viewer['id']}",
        json={"role": "client_member"},
        headers=tenant.headers("client_admin"),
    )
    assert by_admin.status_code == 200
    assert by_admin.json()["role"] == "client_member"


async def test_last_owner_is_protected(client: httpx.AsyncClient, db: Database) -> None:
    tenant = await make_tenant(db)
    owner = tenant.headers("agency_owner")
    team = await members(client, owner, agency_id=tenant.agency.id)
    only_owner = membership_of(team, tenant, "agency_owner")

    demote = await client.patch(
        f"{API}/memberships/{only_owner['id']}", json={"role": "agency_admin"}, headers=owner
    )
    assert demote.status_code == 409
    assert demote.json()["error"]["code"] == "last_owner"
    remove = await client.delete(f"{API}/memberships/{only_owner['id']}", headers=owner)
    assert remove.status_code == 409
    assert remove.json()["error"]["code"] == "last_owner"

    second = await make_user(db, role=Role.AGENCY_OWNER, agency_id=tenant.agency.id)
    removed = await client.delete(f"{API}/memberships/{only_owner['id']}", headers=owner)
    assert removed.status_code == 204
    team = await members(client, owner, agency_id=tenant.agency.id)
    assert tenant.users["agency_owner"].id not in team
    assert team[second.id]["role"] == "agency_owner"


async def test_removing_a_membership_ends_only_that_access(
    client: httpx.AsyncClient, db: Database
) -> None:
    tenant = await make_tenant(db)
    other = await make_tenant(db)
    user = tenant.users["client_member"]
    # The same person also works for a client of another agency.
    async with db.session(Scope.for_system()) as session:
        await add_membership(
            session, user.id, Role.CLIENT_VIEWER, other.agency.id, other.clients[0].id
        )
        await session.commit()
    team = await members(client, tenant.headers("client_admin"), client_id=tenant.clients[0].id)
    logged_in = await login_headers(client, user)
    mine, theirs = f"{API}/clients/{tenant.clients[0].id}", f"{API}/clients/{other.clients[0].id}"
    assert (await client.get(mine, headers=logged_in)).status_code == 200
    assert (await client.get(theirs, headers=logged_in)).status_code == 200

    removed = await client.delete(
        f"{API}/memberships/{team[user.id]['id']}", headers=tenant.headers("client_admin")
    )
    assert removed.status_code == 204
    assert (await client.get(mine, headers=logged_in)).status_code == 404
    assert (await client.get(theirs, headers=logged_in)).status_code == 200
