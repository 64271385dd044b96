"""GET /api/v1/audit-events: who may read which trail, filters, pagination."""

from __future__ import annotations

from datetime import timedelta

import httpx

from demandly.audit.service import record
from demandly.kit.context import Actor, Scope
from demandly.kit.db import Database
from demandly.kit.time import utcnow
from tests.audit.helpers import ALICE, platform_admin_headers
from tests.factories import World, make_tenant

URL = "/api/v1/audit-events"


async def _record(db: Database, agency_id: str, action: str, **kwargs: object) -> None:
    actor = kwargs.pop("actor", ALICE)
    async with db.session(Scope.for_agency(agency_id), actor) as session:  # type: ignore[arg-type]
        await record(session, action=action, agency_id=agency_id, **kwargs)  # type: ignore[arg-type]
        await session.commit()


async def test_an_agency_admin_reads_the_agencys_trail_newest_first(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    a = world.a.agency.id
    await _record(db, a, "agency.exported", entity_type="agency", entity_id=a)
    response = await client.get(
        URL, params={"agency_id": a}, headers=world.a.headers("agency_admin")
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert items and all(item["agency_id"] == a for item in items)
    assert [i["id"] for i in items] == sorted((i["id"] for i in items), reverse=True)
    newest = items[0]
    assert newest["action"] == "agency.exported"
    assert newest["actor"] == {"kind": "user", "id": "usr_alice", "role": "agency_admin"}
    assert (newest["ip"], newest["user_agent"], newest["request_id"]) == (
        "203.0.113.7",
        "pytest-agent/1.0",
        "req-audit-1",
    )
    assert set(newest) == {
        "id",
        "seq",
        "agency_id",
        "client_id",
        "actor",
        "action",
        "entity_type",
        "entity_id",
        "changed_fields",
        "ip",
        "user_agent",
        "request_id",
        "created_at",
        "hash",
        "prev_hash",
    }
    response = await client.get(
        URL,
        params={"agency_id": a, "action": "agency.created"},
        headers=world.a.headers("agency_admin"),
    )
    [created] = response.json()["items"]
    assert (created["seq"], created["entity_id"], created["prev_hash"]) == (1, a, "0" * 64)


async def test_filters_narrow_the_trail(client: httpx.AsyncClient, db: Database) -> None:
    tenant = await make_tenant(db)
    a = tenant.agency.id
    bob = Actor(kind="api_key", id="key_bob", role="agency_owner")
    await _record(db, a, "lead.exported", entity_type="lead", entity_id="led_1")
    await _record(db, a, "lead.exported", entity_type="lead", entity_id="led_2", actor=bob)
    await _record(db, a, "calendar.synced", entity_type="calendar", entity_id="cal_1", actor=bob)
    headers = tenant.headers("agency_owner")

    async def actions(**params: str) -> list[tuple[str, str | None]]:
        response = await client.get(URL, params={"agency_id": a, **params}, headers=headers)
        assert response.status_code == 200, response.text
        return [(i["action"], i["entity_id"]) for i in response.json()["items"]]

    assert await actions(action="lead.exported") == [
        ("lead.exported", "led_2"),
        ("lead.exported", "led_1"),
    ]
    assert await actions(entity_type="calendar") == [("calendar.synced", "cal_1")]
    assert await actions(entity_id="led_1") == [("lead.exported", "led_1")]
    assert await actions(actor_id="key_bob") == [
        ("calendar.synced", "cal_1"),
        ("lead.exported", "led_2"),
    ]
    future = (utcnow() + timedelta(minutes=5)).isoformat()
    past = (utcnow() - timedelta(hours=1)).isoformat()
    assert await actions(since=future) == []
    assert await actions(until=past) == []
    assert ("calendar.synced", "cal_1") in await actions(since=past, until=future)


async def test_pages_follow_each_other_without_overlap(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = world.a.headers("agency_owner")
    params = {"agency_id": world.a.agency.id, "limit": "3"}
    first = (await client.get(URL, params=params, headers=headers)).json()
    assert len(first["items"]) == 3 and first["next_cursor"]
    second = (
        await client.get(URL, params={**params, "cursor": first["next_cursor"]}, headers=headers)
    ).json()
    assert second["items"]
    assert second["items"][0]["id"] < first["items"][-1]["id"]
    assert not {i["id"] for i in first["items"]} & {i["id"] for i in second["items"]}


async def test_another_agencys_trail_is_not_found(client: httpx.AsyncClient, world: World) -> None:
    response = await client.get(
        URL, params={"agency_id": world.b.agency.id}, headers=world.a.headers("agency_admin")
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_roles_without_audit_read_are_forbidden(
    client: httpx.AsyncClient, world: World
) -> None:
    params = {"agency_id": world.a.agency.id, "client_id": world.a.clients[0].id}
    for role in ("client_member", "client_viewer"):
        response = await client.get(URL, params=params, headers=world.a.headers(role))
        assert response.status_code == 403, (role, response.text)
        assert response.json()["error"]["code"] == "forbidden"


async def test_a_client_admin_reads_only_their_clients_trail(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    a, (mine, other) = world.a.agency.id, world.a.clients
    await _record(db, a, "client.exported", client_id=mine.id, entity_id=mine.id)
    await _record(db, a, "client.exported", client_id=other.id, entity_id=other.id)
    headers = world.a.headers("client_admin")

    response = await client.get(URL, params={"agency_id": a, "client_id": mine.id}, headers=headers)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert items and {i["client_id"] for i in items} == {mine.id}

    # Without a filter: the places the key may read, which is its client only.
    response = await client.get(URL, headers=headers)
    assert {i["client_id"] for i in response.json()["items"]} == {mine.id}

    assert (await client.get(URL, params={"agency_id": a}, headers=headers)).status_code == 404
    sibling = {"agency_id": a, "client_id": other.id}
    assert (await client.get(URL, params=sibling, headers=headers)).status_code == 404


async def test_without_agency_id_an_agency_admin_sees_only_their_agency(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get(
        URL, params={"limit": "200"}, headers=world.a.headers("agency_admin")
    )
    assert response.status_code == 200
    assert {i["agency_id"] for i in response.json()["items"]} == {world.a.agency.id}


async def test_a_platform_admin_sees_platform_events_too(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    headers = await platform_admin_headers(db, world.platform_admin.id)
    response = await client.get(URL, params={"entity_id": world.platform_admin.id}, headers=headers)
    assert response.status_code == 200, response.text
    [created] = [i for i in response.json()["items"] if i["action"] == "user.created"]
    assert (created["agency_id"], created["entity_type"]) == (None, "user")

    response = await client.get(URL, params={"agency_id": world.b.agency.id}, headers=headers)
    assert response.status_code == 200
    assert {i["agency_id"] for i in response.json()["items"]} == {world.b.agency.id}


async def test_platform_events_stay_hidden_from_agencies(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get(
        URL, params={"entity_id": world.platform_admin.id}, headers=world.a.headers("agency_owner")
    )
    assert response.status_code == 200
    assert response.json()["items"] == []


async def test_bad_parameters_are_422_naming_the_field(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = world.a.headers("agency_admin")
    for params, field in (
        ({"since": "yesterday"}, "since"),
        ({"limit": "0"}, "limit"),
        ({"agency_id": "x" * 500}, "agency_id"),
    ):
        response = await client.get(URL, params=params, headers=headers)
        assert response.status_code == 422, params
        assert response.json()["error"]["details"][0]["field"] == field
    response = await client.get(URL, params={"client_id": world.a.clients[0].id}, headers=headers)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "agency_id"


async def test_anonymous_callers_are_401(client: httpx.AsyncClient) -> None:
    assert (await client.get(URL)).status_code == 401
