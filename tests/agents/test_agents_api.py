"""Agents over the API: create, read, list, edit, delete; who may do what."""

from __future__ import annotations

import httpx

from demandly.kit.db import Database
from tests.agents.helpers import API, ORIGIN, agent_body, create_agent, error_field, publish
from tests.factories import World, make_tenant
from tests.tenancy.conftest import login_headers


async def test_create_returns_the_draft_with_a_public_key(
    client: httpx.AsyncClient, world: World
) -> None:
    created = await create_agent(client, world.a)
    assert created["status"] == "draft"
    assert created["public_key"].startswith("pk_") and len(created["public_key"]) >= 30
    assert created["agency_id"] == world.a.agency.id
    assert created["client_id"] == world.a.clients[0].id
    assert created["published_version"] is None and created["published_at"] is None
    assert created["has_unpublished_changes"] is True
    assert created["qualification"][2]["options"] == ["gesetzlich", "privat"]
    assert created["business_hours"]["weekly"][1] == {
        "weekday": 0,
        "opens": "14:00",
        "closes": "18:00",
    }
    # Colours come back in one form.
    assert created["widget"]["primary_color"] == "#0055aa"

    fetched = await client.get(
        f"{API}/agents/{created['id']}", headers=world.a.headers("client_viewer")
    )
    assert fetched.status_code == 200
    assert fetched.json() == created


async def test_public_keys_are_unique_and_url_safe(client: httpx.AsyncClient, world: World) -> None:
    keys = {(await create_agent(client, world.a))["public_key"] for _ in range(3)}
    assert len(keys) == 3
    assert all(k.replace("_", "").replace("-", "").isalnum() for k in keys)


async def test_minimal_body_gets_sensible_defaults(client: httpx.AsyncClient, world: World) -> None:
    response = await client.post(
        f"{API}/agents",
        json={
            "client_id": world.a.clients[0].id,
            "name": "Phone bot",
            "kind": "phone",
            "language": "en",
        },
        headers=world.a.headers("client_member"),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["tools"] == ["save_lead_details", "request_handoff", "end_conversation"]
    assert body["llm"] == {
        "connection_id": None,
        "model": None,
        "temperature": 0.3,
        "max_tokens": 512,
    }
    assert body["widget"]["position"] == "bottom-right"
    assert body["widget"]["allowed_origins"] == []
    assert body["qualification"] == [] and body["faq"] == []


async def test_origins_are_normalised_and_duplicates_dropped(
    client: httpx.AsyncClient, world: World
) -> None:
    created = await create_agent(
        client,
        world.a,
        widget={
            "allowed_origins": [
                "https://WWW.Example.com:443/",
                "https://www.example.com",
                "http://localhost:8000",
                "https://bücher.de",
            ]
        },
        tools=["request_handoff", "request_handoff"],
    )
    assert created["widget"]["allowed_origins"] == [
        "https://www.example.com",
        "http://localhost:8000",
        "https://xn--bcher-kva.de",
    ]
    assert created["tools"] == ["request_handoff"]


async def test_list_filters_and_pages(client: httpx.AsyncClient, db: Database) -> None:
    tenant = await make_tenant(db)
    chat = [await create_agent(client, tenant, name=f"Chat {i}") for i in range(3)]
    phone = await create_agent(client, tenant, name="Telefon", kind="phone")
    await publish(client, tenant, chat[0]["id"])
    other_client = await client.post(
        f"{API}/agents",
        json=agent_body(tenant.clients[1].id, name="Other client"),
        headers=tenant.headers("agency_owner"),
    )
    assert other_client.status_code == 201
    headers = tenant.headers("agency_owner")

    async def ids(**params: object) -> list[str]:
        response = await client.get(f"{API}/agents", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [a["id"] for a in response.json()["items"]]

    assert set(await ids(client_id=tenant.clients[0].id)) == {a["id"] for a in [*chat, phone]}
    assert await ids(client_id=tenant.clients[0].id, kind="phone") == [phone["id"]]
    assert await ids(status="published") == [chat[0]["id"]]
    assert len(await ids()) == 5

    # Pages of two, newest first, together exactly the agents the tenant has.
    paged: list[str] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"{API}/agents", params=params, headers=headers)).json()
        assert len(page["items"]) <= 2
        paged += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == sorted(await ids(), reverse=True) and len(paged) == 5

    listed = {
        a["id"]: a for a in (await client.get(f"{API}/agents", headers=headers)).json()["items"]
    }
    assert listed[chat[0]["id"]]["published_version"] == 1

    bad = await client.get(f"{API}/agents", params={"status": "deleted"}, headers=headers)
    assert bad.status_code == 422 and error_field(bad) == "status"


async def test_patch_changes_only_what_is_sent(client: httpx.AsyncClient, world: World) -> None:
    created = await create_agent(client, world.a)
    response = await client.patch(
        f"{API}/agents/{created['id']}",
        json={
            "name": "Rezeption",
            "greeting": None,
            "widget": {"primary_color": "#112233"},
            "llm": {"temperature": 1.5},
            "faq": [],
        },
        headers=world.a.headers("client_member"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "Rezeption"
    assert body["greeting"] is None
    assert body["widget"]["primary_color"] == "#112233"
    # Sections merge: what was not sent stays.
    assert body["widget"]["allowed_origins"] == [ORIGIN]
    assert body["widget"]["position"] == "bottom-left"
    assert body["llm"]["temperature"] == 1.5 and body["llm"]["max_tokens"] == 400
    assert body["faq"] == []
    assert body["qualification"] == created["qualification"]
    assert body["persona_name"] == "Lena"
    assert body["updated_at"] is not None

    again = await client.get(
        f"{API}/agents/{created['id']}", headers=world.a.headers("client_viewer")
    )
    assert again.json() == body


async def test_patch_refuses_nulls_and_unknown_fields(
    client: httpx.AsyncClient, world: World
) -> None:
    created = await create_agent(client, world.a)
    url = f"{API}/agents/{created['id']}"
    headers = world.a.headers("agency_owner")
    for body, field in (
        ({"name": None}, "name"),
        ({"widget": None}, "widget"),
        ({"tools": None}, "tools"),
        ({"client_id": world.a.clients[1].id}, "client_id"),
        ({"public_key": "pk_mine"}, "public_key"),
        ({"llm": {"temperature": None}}, "llm.temperature"),
    ):
        response = await client.patch(url, json=body, headers=headers)
        assert response.status_code == 422, (body, response.text)
        assert error_field(response) == field


async def test_delete_is_soft_and_the_agent_disappears(
    client: httpx.AsyncClient, world: World
) -> None:
    created = await create_agent(client, world.a)
    headers = world.a.headers("client_admin")
    deleted = await client.delete(f"{API}/agents/{created['id']}", headers=headers)
    assert deleted.status_code == 204
    assert (await client.get(f"{API}/agents/{created['id']}", headers=headers)).status_code == 404
    assert (
        await client.patch(f"{API}/agents/{created['id']}", json={"name": "x"}, headers=headers)
    ).status_code == 404
    assert (
        await client.post(f"{API}/agents/{created['id']}/publish", headers=headers)
    ).status_code == 404
    listed = await client.get(
        f"{API}/agents", params={"client_id": world.a.clients[0].id, "limit": 200}, headers=headers
    )
    assert created["id"] not in {a["id"] for a in listed.json()["items"]}
    assert (
        await client.delete(f"{API}/agents/{created['id']}", headers=headers)
    ).status_code == 404


async def test_client_viewer_reads_but_does_not_write(
    client: httpx.AsyncClient, world: World
) -> None:
    created = await create_agent(client, world.a)
    viewer = world.a.headers("client_viewer")
    url = f"{API}/agents/{created['id']}"
    assert (await client.get(url, headers=viewer)).status_code == 200
    assert (await client.get(f"{url}/versions", headers=viewer)).status_code == 200
    listed = await client.get(
        f"{API}/agents", params={"client_id": world.a.clients[0].id}, headers=viewer
    )
    assert listed.status_code == 200

    refused = [
        await client.post(f"{API}/agents", json=agent_body(world.a.clients[0].id), headers=viewer),
        await client.patch(url, json={"name": "Hijacked"}, headers=viewer),
        await client.post(f"{url}/publish", headers=viewer),
        await client.delete(url, headers=viewer),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403, 403]
    assert refused[0].json()["error"]["code"] == "forbidden"
    unchanged = await client.get(url, headers=viewer)
    assert unchanged.json()["name"] == created["name"]
    assert unchanged.json()["status"] == "draft"


async def test_another_agency_gets_404_for_everything(
    client: httpx.AsyncClient, world: World
) -> None:
    created = await create_agent(client, world.a)
    await publish(client, world.a, created["id"])
    url = f"{API}/agents/{created['id']}"
    for role in ("agency_owner", "client_admin"):
        intruder = world.b.headers(role)
        responses = [
            await client.get(url, headers=intruder),
            await client.patch(url, json={"name": "Hijacked"}, headers=intruder),
            await client.post(f"{url}/publish", headers=intruder),
            await client.get(f"{url}/versions", headers=intruder),
            await client.get(f"{url}/versions/1", headers=intruder),
            await client.delete(url, headers=intruder),
            await client.post(
                f"{API}/agents", json=agent_body(world.a.clients[0].id), headers=intruder
            ),
            await client.get(
                f"{API}/agents", params={"client_id": world.a.clients[0].id}, headers=intruder
            ),
        ]
        assert [r.status_code for r in responses] == [404] * len(responses), role
        listed = await client.get(f"{API}/agents", params={"limit": 200}, headers=intruder)
        assert created["id"] not in listed.text
    still = await client.get(url, headers=world.a.headers("agency_owner"))
    assert still.json()["name"] == created["name"] and still.json()["status"] == "published"


async def test_a_client_user_does_not_reach_another_client(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.post(
        f"{API}/agents",
        json=agent_body(world.a.clients[1].id),
        headers=world.a.headers("agency_owner"),
    )
    other = response.json()
    admin = world.a.headers("client_admin")  # of clients[0]
    assert (await client.get(f"{API}/agents/{other['id']}", headers=admin)).status_code == 404
    assert (
        await client.post(f"{API}/agents", json=agent_body(world.a.clients[1].id), headers=admin)
    ).status_code == 404
    listed = await client.get(f"{API}/agents", params={"limit": 200}, headers=admin)
    assert other["id"] not in listed.text


async def test_anonymous_callers_are_turned_away(client: httpx.AsyncClient, world: World) -> None:
    assert (await client.get(f"{API}/agents")).status_code == 401
    response = await client.post(f"{API}/agents", json=agent_body(world.a.clients[0].id))
    assert response.status_code == 401


async def test_agents_of_a_deleted_client_disappear(
    client: httpx.AsyncClient, db: Database
) -> None:
    tenant = await make_tenant(db)
    created = await create_agent(client, tenant)
    headers = tenant.headers("agency_owner")
    removed = await client.delete(f"{API}/clients/{tenant.clients[0].id}", headers=headers)
    assert removed.status_code == 204
    assert (await client.get(f"{API}/agents/{created['id']}", headers=headers)).status_code == 404
    listed = await client.get(f"{API}/agents", headers=headers)
    assert listed.json()["items"] == []


async def test_an_agency_member_builds_agents_for_assigned_clients_only(
    client: httpx.AsyncClient, world: World
) -> None:
    member = await login_headers(client, world.a.users["agency_member"])  # assigned clients[0]
    mine = await client.post(
        f"{API}/agents", json=agent_body(world.a.clients[0].id), headers=member
    )
    assert mine.status_code == 201, mine.text
    published = await client.post(f"{API}/agents/{mine.json()['id']}/publish", headers=member)
    assert published.status_code == 200
    unassigned = await client.post(
        f"{API}/agents", json=agent_body(world.a.clients[1].id), headers=member
    )
    assert unassigned.status_code == 404
