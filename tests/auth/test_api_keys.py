from __future__ import annotations

import httpx

from demandly.kit.db import Database
from tests.auth.helpers import audit_events, browser, sign_in
from tests.factories import Tenant, make_tenant

KEYS = "/api/v1/api-keys"


async def create(
    http: httpx.AsyncClient, headers: dict[str, str] | None = None, **body: str
) -> httpx.Response:
    return await http.post(KEYS, json={"name": "CRM sync", **body}, headers=headers or {})


async def test_a_key_is_shown_once_works_and_stops_when_revoked(
    client: httpx.AsyncClient, db: Database
) -> None:
    tenant = await make_tenant(db)
    owner = tenant.headers("agency_owner")
    created = await create(client, owner, agency_id=tenant.agency.id, role="agency_admin")
    assert created.status_code == 201, created.text
    body = created.json()
    secret = body.pop("key")
    assert secret.startswith("dmd_") and len(secret) > 40
    assert body["display_prefix"] == secret[:12]
    assert body["agency_id"] == tenant.agency.id and body["client_id"] is None
    assert body["role"] == "agency_admin" and body["name"] == "CRM sync"

    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200
    assert me.json() == {
        "user": None,
        "memberships": [],
        "api_key": {
            "id": body["id"],
            "name": "CRM sync",
            "role": "agency_admin",
            "agency_id": tenant.agency.id,
            "client_id": None,
        },
    }

    listed = (await client.get(KEYS, headers=owner, params={"limit": 200})).json()["items"]
    [mine] = [k for k in listed if k["id"] == body["id"]]
    assert "key" not in mine and "key_hash" not in mine
    assert mine["last_used_at"] is not None and mine["revoked_at"] is None
    assert all(secret not in str(item) for item in listed)

    assert (await client.delete(f"{KEYS}/{body['id']}", headers=owner)).status_code == 204
    again = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert again.status_code == 401
    # Revoking twice is harmless.
    assert (await client.delete(f"{KEYS}/{body['id']}", headers=owner)).status_code == 204
    assert len(await audit_events(db, "api_key.created", body["id"])) == 1
    assert len(await audit_events(db, "api_key.revoked", body["id"])) == 1


async def test_a_client_key_implies_its_agency(client: httpx.AsyncClient, db: Database) -> None:
    tenant = await make_tenant(db)
    response = await create(
        client, tenant.headers("client_admin"), client_id=tenant.clients[0].id, role="client_viewer"
    )
    assert response.status_code == 201, response.text
    assert response.json()["agency_id"] == tenant.agency.id
    assert response.json()["client_id"] == tenant.clients[0].id


async def test_the_role_must_fit_the_place(client: httpx.AsyncClient, db: Database) -> None:
    tenant = await make_tenant(db)
    owner = tenant.headers("agency_owner")
    agency, first = tenant.agency.id, tenant.clients[0].id
    cases = [
        ({"agency_id": agency, "role": "client_admin"}, "role"),
        ({"client_id": first, "role": "agency_admin"}, "role"),
        ({"agency_id": agency, "role": "platform_admin"}, "role"),
        ({"agency_id": agency, "client_id": first, "role": "client_admin"}, "agency_id"),
        ({"role": "agency_admin"}, "agency_id"),
        ({"agency_id": agency, "role": "emperor"}, "role"),
    ]
    for body, field in cases:
        response = await create(client, owner, **body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["details"][0]["field"] == field, body
    unknown_field = await client.post(
        KEYS, headers=owner, json={"name": "x", "agency_id": agency, "role": "agency_admin", "x": 1}
    )
    assert unknown_field.status_code == 422


async def test_nobody_creates_or_revokes_a_key_above_their_role(
    client: httpx.AsyncClient, db: Database
) -> None:
    tenant = await make_tenant(db)
    agency, first = tenant.agency.id, tenant.clients[0].id
    admin = tenant.headers("agency_admin")
    assert (await create(client, admin, agency_id=agency, role="agency_owner")).status_code == 403
    assert (await create(client, admin, agency_id=agency, role="agency_admin")).status_code == 201
    owners_key = await create(
        client, tenant.headers("agency_owner"), agency_id=agency, role="agency_owner"
    )
    assert (
        await client.delete(f"{KEYS}/{owners_key.json()['id']}", headers=admin)
    ).status_code == 403

    client_admin = tenant.headers("client_admin")
    assert (
        await create(client, client_admin, client_id=first, role="client_admin")
    ).status_code == 201
    # Roles without api_keys:manage, where they can see the place: 403.
    for role in ("client_member", "client_viewer"):
        response = await create(client, tenant.headers(role), client_id=first, role="client_viewer")
        assert response.status_code == 403, role
        assert (await client.get(KEYS, headers=tenant.headers(role))).status_code == 403


async def test_a_user_session_can_manage_keys(app, db: Database) -> None:
    tenant = await make_tenant(db)
    member = tenant.users["agency_member"]
    owner = tenant.users["agency_owner"]
    async with browser(app) as http:
        await sign_in(http, owner.email)
        response = await create(http, agency_id=tenant.agency.id, role="agency_member")
        assert response.status_code == 201, response.text
        key_id = response.json()["id"]
        [listed] = [k for k in (await http.get(KEYS)).json()["items"] if k["id"] == key_id]
        assert listed["created_by_user_id"] == owner.id
    async with browser(app) as http:
        await sign_in(http, member.email)
        denied = await create(http, client_id=tenant.clients[0].id, role="client_viewer")
        assert denied.status_code == 403


async def test_lists_show_only_what_the_caller_manages(
    client: httpx.AsyncClient, db: Database
) -> None:
    tenant = await make_tenant(db)
    first, second = tenant.clients[0].id, tenant.clients[1].id
    owner = tenant.headers("agency_owner")
    on_second = (await create(client, owner, client_id=second, role="client_member")).json()["id"]
    everything = {k["id"] for k in (await client.get(KEYS, headers=owner)).json()["items"]}
    assert on_second in everything and len(everything) == 6  # 5 from make_tenant, 1 new

    of_second = (await client.get(KEYS, headers=owner, params={"client_id": second})).json()
    assert [k["id"] for k in of_second["items"]] == [on_second]

    client_admin = tenant.headers("client_admin")
    theirs = (await client.get(KEYS, headers=client_admin)).json()["items"]
    assert {k["client_id"] for k in theirs} == {first}
    assert len(theirs) == 3
    assert (
        await client.get(KEYS, headers=client_admin, params={"client_id": second})
    ).status_code == 404

    page = (await client.get(KEYS, headers=owner, params={"limit": 5})).json()
    assert len(page["items"]) == 5 and page["next_cursor"]
    rest = (
        await client.get(KEYS, headers=owner, params={"limit": 5, "cursor": page["next_cursor"]})
    ).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None


async def test_other_tenants_keys_and_places_do_not_exist(
    client: httpx.AsyncClient, db: Database, world
) -> None:  # type: ignore[no-untyped-def]
    other: Tenant = world.b
    owner = world.a.headers("agency_owner")
    assert (
        await create(client, owner, agency_id=other.agency.id, role="agency_admin")
    ).status_code == 404
    assert (
        await create(client, owner, client_id=other.clients[0].id, role="client_admin")
    ).status_code == 404
    assert (
        await client.get(KEYS, headers=owner, params={"agency_id": other.agency.id})
    ).status_code == 404
    assert (
        await client.get(KEYS, headers=owner, params={"client_id": other.clients[0].id})
    ).status_code == 404
    theirs = (
        await create(
            client, other.headers("agency_owner"), agency_id=other.agency.id, role="agency_member"
        )
    ).json()
    assert (await client.delete(f"{KEYS}/{theirs['id']}", headers=owner)).status_code == 404
    assert (await client.delete(f"{KEYS}/key_doesnotexist", headers=owner)).status_code == 404
    # Still works for its owner's side.
    mine = {k["id"] for k in (await client.get(KEYS, headers=owner)).json()["items"]}
    assert theirs["id"] not in mine
