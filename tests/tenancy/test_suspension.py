"""A suspended agency's people and keys stop working at once, and work again on reactivation."""

from __future__ import annotations

import httpx

from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.tenancy.models import Membership, Role
from tests.factories import PASSWORD, make_tenant, make_user
from tests.tenancy.conftest import login_headers

API = "/api/v1"


async def _set_status(
    client: httpx.AsyncClient, admin: dict[str, str], agency_id: str, status: str
) -> None:
    response = await client.patch(
        f"{API}/agencies/{agency_id}", json={"status": status}, headers=admin
    )
    assert response.status_code == 200, response.text


async def _add_membership(db: Database, user_id: str, agency_id: str) -> None:
    async with db.session(Scope.for_system()) as session:
        session.add(Membership(user_id=user_id, agency_id=agency_id, role=Role.AGENCY_ADMIN.value))
        await session.commit()


async def test_suspension_stops_keys_sessions_and_sign_in(
    client: httpx.AsyncClient, db: Database, admin: dict[str, str]
) -> None:
    tenant = await make_tenant(db)
    agency_id = tenant.agency.id
    client_url = f"{API}/clients/{tenant.clients[0].id}"
    owner = tenant.users["agency_owner"]
    key = tenant.headers("agency_owner")
    # Resolved (and cached) before the suspension: the cache must not outlive it.
    assert (await client.get(client_url, headers=key)).status_code == 200
    signed_in = await login_headers(client, owner)

    await _set_status(client, admin, agency_id, "suspended")

    refused = await client.get(client_url, headers=key)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "agency_suspended"
    # The session signed in before the suspension reaches nothing of the agency.
    assert (await client.get(client_url, headers=signed_in)).status_code == 404
    me = await client.get(f"{API}/me", headers=signed_in)
    assert me.status_code == 200
    assert [m["agency_id"] for m in me.json()["memberships"]] == []
    login = await client.post(
        f"{API}/auth/login", json={"email": owner.email, "password": PASSWORD}
    )
    assert login.status_code == 403
    assert login.json()["error"]["code"] == "agency_suspended"
    client.cookies.clear()
    wrong_password = await client.post(
        f"{API}/auth/login", json={"email": owner.email, "password": PASSWORD + "x"}
    )
    assert wrong_password.status_code == 401  # no hint about the agency to a guesser

    await _set_status(client, admin, agency_id, "active")

    assert (await client.get(client_url, headers=key)).status_code == 200
    assert (await client.get(client_url, headers=signed_in)).status_code == 200
    again = await client.post(
        f"{API}/auth/login", json={"email": owner.email, "password": PASSWORD}
    )
    assert again.status_code == 200, again.text
    client.cookies.clear()


async def test_a_member_of_another_active_agency_still_signs_in_there(
    client: httpx.AsyncClient, db: Database, admin: dict[str, str]
) -> None:
    suspended, active = await make_tenant(db), await make_tenant(db)
    user = await make_user(db, role=Role.AGENCY_ADMIN, agency_id=suspended.agency.id)
    await _add_membership(db, user.id, active.agency.id)
    await _set_status(client, admin, suspended.agency.id, "suspended")

    headers = await login_headers(client, user)
    me = (await client.get(f"{API}/me", headers=headers)).json()
    assert [m["agency_id"] for m in me["memberships"]] == [active.agency.id]
    assert (
        await client.get(f"{API}/clients/{suspended.clients[0].id}", headers=headers)
    ).status_code == 404
    assert (
        await client.get(f"{API}/clients/{active.clients[0].id}", headers=headers)
    ).status_code == 200
    await _set_status(client, admin, suspended.agency.id, "active")
