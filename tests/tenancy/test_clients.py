from __future__ import annotations

import httpx
from sqlalchemy import select

from demandly.jobs.models import DomainEvent
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.tenancy.models import Agency
from tests.factories import World, make_tenant
from tests.tenancy.conftest import login_headers

API = "/api/v1"


def error_field(response: httpx.Response) -> str:
    return response.json()["error"]["details"][0]["field"]


async def all_client_ids(
    client: httpx.AsyncClient, headers: dict[str, str], **params: str
) -> set[str]:
    response = await client.get(f"{API}/clients", params={"limit": 200, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return {c["id"] for c in response.json()["items"]}


async def test_create_client_with_agency_defaults(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    async with db.session(Scope.for_system()) as session:
        agency = (
            await session.execute(select(Agency).where(Agency.id == world.a.agency.id))
        ).scalar_one()
        defaults = (agency.timezone, agency.locale)
    created = await client.post(
        f"{API}/clients",
        json={"agency_id": world.a.agency.id, "name": "Dr. Dent"},
        headers=world.a.headers("agency_admin"),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["timezone"], body["locale"]) == defaults
    assert body["status"] == "active"

    explicit = await client.post(
        f"{API}/clients",
        json={
            "agency_id": world.a.agency.id,
            "name": "Handwerk Huber",
            "timezone": "America/New_York",
            "locale": "en",
            "privacy_policy_url": "https://huber.example/datenschutz",
        },
        headers=world.a.headers("agency_owner"),
    )
    assert explicit.status_code == 201
    assert explicit.json()["timezone"] == "America/New_York"
    fetched = await client.get(
        f"{API}/clients/{explicit.json()['id']}", headers=world.a.headers("agency_owner")
    )
    assert fetched.json()["privacy_policy_url"] == "https://huber.example/datenschutz"


async def test_bad_client_input_names_the_field(client: httpx.AsyncClient, world: World) -> None:
    headers = world.a.headers("agency_owner")
    base = {"agency_id": world.a.agency.id, "name": "X"}
    for field, value in (
        ("timezone", "Mars/Olympus_Mons"),
        ("timezone", "../../etc/passwd"),
        ("locale", "fr"),
        ("privacy_policy_url", "ftp://example.com/privacy"),
        ("name", ""),
    ):
        response = await client.post(f"{API}/clients", json={**base, field: value}, headers=headers)
        assert response.status_code == 422, (field, value)
        assert error_field(response) == field
    unknown = await client.post(f"{API}/clients", json={**base, "color": "x"}, headers=headers)
    assert unknown.status_code == 422


async def test_create_client_permissions(client: httpx.AsyncClient, world: World) -> None:
    foreign = await client.post(
        f"{API}/clients",
        json={"agency_id": world.b.agency.id, "name": "Not yours"},
        headers=world.a.headers("agency_owner"),
    )
    assert foreign.status_code == 404
    lower = await client.post(
        f"{API}/clients",
        json={"agency_id": world.a.agency.id, "name": "Not allowed"},
        headers=world.a.headers("client_admin"),
    )
    assert lower.status_code == 403


async def test_list_clients_by_role(client: httpx.AsyncClient, world: World, db: Database) -> None:
    first, second = (c.id for c in world.a.clients)
    owner = await all_client_ids(client, world.a.headers("agency_owner"))
    assert {first, second} <= owner
    assert not owner & {c.id for c in world.b.clients}

    member = await login_headers(client, world.a.users["agency_member"])
    assert await all_client_ids(client, member) == {first}
    assert await all_client_ids(client, world.a.headers("client_viewer")) == {first}
    filtered = await all_client_ids(
        client, world.a.headers("agency_owner"), agency_id=world.b.agency.id
    )
    assert filtered == set()
    bad_status = await client.get(
        f"{API}/clients", params={"status": "deleted"}, headers=world.a.headers("agency_owner")
    )
    assert bad_status.status_code == 422


async def test_get_and_patch_client(client: httpx.AsyncClient, world: World, db: Database) -> None:
    tenant = await make_tenant(db)
    url = f"{API}/clients/{tenant.clients[0].id}"
    patched = await client.patch(
        url,
        json={"name": "Renamed", "locale": "en", "timezone": "Europe/Vienna"},
        headers=tenant.headers("client_admin"),
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "Renamed"
    fetched = await client.get(url, headers=tenant.headers("client_viewer"))
    assert (fetched.json()["name"], fetched.json()["timezone"]) == ("Renamed", "Europe/Vienna")

    viewer = await client.patch(url, json={"name": "Nope"}, headers=tenant.headers("client_viewer"))
    assert viewer.status_code == 403
    suspend = await client.patch(
        url, json={"status": "suspended"}, headers=tenant.headers("client_admin")
    )
    assert suspend.status_code == 403
    suspended = await client.patch(
        url, json={"status": "suspended"}, headers=tenant.headers("agency_admin")
    )
    assert suspended.json()["status"] == "suspended"
    bad = await client.patch(
        url, json={"timezone": "Nowhere"}, headers=tenant.headers("client_admin")
    )
    assert bad.status_code == 422 and error_field(bad) == "timezone"

    foreign = f"{API}/clients/{world.b.clients[0].id}"
    assert (await client.get(foreign, headers=tenant.headers("agency_owner"))).status_code == 404
    patched_foreign = await client.patch(
        foreign, json={"name": "x"}, headers=tenant.headers("agency_owner")
    )
    assert patched_foreign.status_code == 404
    # The agency's other client is not the client admin's.
    other = f"{API}/clients/{tenant.clients[1].id}"
    assert (await client.get(other, headers=tenant.headers("client_admin"))).status_code == 404


async def test_delete_client(client: httpx.AsyncClient, db: Database) -> None:
    tenant = await make_tenant(db)
    target = tenant.clients[0]  # the one with client users and the agency member
    url = f"{API}/clients/{target.id}"
    owner = tenant.headers("agency_owner")
    invited = await client.post(
        f"{API}/invitations",
        json={"email": "someone@example.com", "role": "client_member", "client_id": target.id},
        headers=owner,
    )
    assert invited.status_code == 201, invited.text
    client_user = await login_headers(client, tenant.users["client_member"])
    agency_member = await login_headers(client, tenant.users["agency_member"])

    lower = await client.delete(url, headers=tenant.headers("client_admin"))
    assert lower.status_code == 403
    deleted = await client.delete(url, headers=owner)
    assert deleted.status_code == 204

    assert (await client.get(url, headers=owner)).status_code == 404
    assert (await client.patch(url, json={"name": "x"}, headers=owner)).status_code == 404
    assert (await client.delete(url, headers=owner)).status_code == 404
    assert await all_client_ids(client, owner) == {tenant.clients[1].id}
    # Nobody keeps access through it: not its users, not its API keys.
    assert (await client.get(url, headers=client_user)).status_code == 404
    key_me = await client.get(f"{API}/me", headers=tenant.headers("client_admin"))
    assert key_me.status_code == 401
    assert await all_client_ids(client, agency_member) == set()
    team = await client.get(
        f"{API}/memberships", params={"agency_id": tenant.agency.id}, headers=owner
    )
    assert {m["client_id"] for m in team.json()["items"]} == {None}

    async with db.session(Scope.for_system()) as session:
        events = (
            (
                await session.execute(
                    select(DomainEvent).where(
                        DomainEvent.type == "client.deleted", DomainEvent.entity_id == target.id
                    )
                )
            )
            .scalars()
            .all()
        )
    assert [(e.agency_id, e.client_id) for e in events] == [(tenant.agency.id, target.id)]

    # Its pending invitation cannot be used any more.
    accepted = await client.post(
        f"{API}/invitations/{invited.json()['token']}/accept",
        json={"name": "Late", "password": "a long and unusual passphrase 91"},
    )
    assert accepted.status_code == 410
