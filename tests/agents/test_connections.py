"""Provider connections: per agency, the key encrypted at rest and never returned; an agent
may only use a connection of its own agency."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from demandly.kit.context import Scope
from demandly.kit.crypto import get_keyring
from demandly.kit.db import Database
from tests.agents.helpers import API, agent_body, create_agent, create_connection, error_field
from tests.factories import World, make_tenant

KEY = "sk-test-0123456789abcdefWXYZ"


async def stored_key(db: Database, connection_id: str) -> str | None:
    async with db.session(Scope.for_system()) as session:
        return (
            await session.execute(
                text("SELECT api_key FROM provider_connections WHERE id = :id"),
                {"id": connection_id},
            )
        ).scalar_one()


async def test_crud_without_ever_returning_the_key(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    headers = world.a.headers("agency_owner")
    created = await client.post(
        f"{API}/provider-connections",
        json={
            "agency_id": world.a.agency.id,
            "name": "Mistral EU",
            "base_url": "https://api.mistral.example/v1/",
            "api_key": KEY,
            "default_model": "mistral-large-latest",
            "region": "eu",
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["api_key_set"] is True and body["api_key_last4"] == "WXYZ"
    assert body["base_url"] == "https://api.mistral.example/v1"
    assert "api_key" not in body
    url = f"{API}/provider-connections/{body['id']}"

    responses = [
        created,
        await client.get(url, headers=headers),
        await client.get(
            f"{API}/provider-connections", params={"agency_id": world.a.agency.id}, headers=headers
        ),
        await client.patch(url, json={"name": "Mistral (EU)", "region": "eu"}, headers=headers),
        await client.get(
            f"{API}/audit-events", params={"agency_id": world.a.agency.id}, headers=headers
        ),
    ]
    for response in responses:
        assert response.status_code == 200 or response.status_code == 201, response.text
        assert KEY not in response.text and KEY[3:-4] not in response.text

    # At rest: sealed by the keyring, not the key.
    sealed = await stored_key(db, body["id"])
    assert sealed is not None and sealed.startswith("v1.") and KEY not in sealed
    assert get_keyring().decrypt(sealed) == KEY

    rotated = await client.patch(
        url, json={"api_key": "sk-new-key-9876543210-ABCD"}, headers=headers
    )
    assert rotated.json()["api_key_last4"] == "ABCD"
    assert "sk-new-key" not in rotated.text
    assert (
        get_keyring().decrypt(await stored_key(db, body["id"]) or "")
        == "sk-new-key-9876543210-ABCD"
    )

    cleared = await client.patch(url, json={"api_key": None}, headers=headers)
    assert cleared.json()["api_key_set"] is False and cleared.json()["api_key_last4"] is None
    assert await stored_key(db, body["id"]) is None

    deleted = await client.delete(url, headers=headers)
    assert deleted.status_code == 204
    assert (await client.get(url, headers=headers)).status_code == 404


async def test_a_short_key_shows_no_last_characters(
    client: httpx.AsyncClient, world: World
) -> None:
    created = await create_connection(client, world.a, api_key="ollama", region="self-hosted")
    assert created["api_key_set"] is True and created["api_key_last4"] is None
    keyless = await create_connection(
        client, world.a, api_key=None, base_url="http://127.0.0.1:11434/v1", region="self-hosted"
    )
    assert keyless["api_key_set"] is False


async def test_validation_names_the_field(client: httpx.AsyncClient, world: World) -> None:
    headers = world.a.headers("agency_owner")
    base = {
        "agency_id": world.a.agency.id,
        "name": "x",
        "base_url": "https://llm.example.com/v1",
        "default_model": "m",
        "region": "eu",
    }
    for change, field in (
        ({"base_url": "ftp://llm.example.com"}, "base_url"),
        ({"base_url": "https://user:secret@llm.example.com/v1"}, "base_url"),
        ({"base_url": "https://llm.example.com/v1?key=secret"}, "base_url"),
        ({"region": "asia"}, "region"),
        ({"api_key": "has space"}, "api_key"),
        ({"api_key": ""}, "api_key"),
        ({"default_model": ""}, "default_model"),
        ({"name": ""}, "name"),
    ):
        response = await client.post(
            f"{API}/provider-connections", json={**base, **change}, headers=headers
        )
        assert response.status_code == 422, (change, response.text)
        assert error_field(response) == field
        assert "secret" not in response.text  # errors never echo what was sent


async def test_who_may_manage_connections(client: httpx.AsyncClient, world: World) -> None:
    body = {
        "agency_id": world.a.agency.id,
        "name": "Mine",
        "base_url": "https://llm.example.com/v1",
        "api_key": KEY,
        "default_model": "m",
        "region": "us",
    }
    # Client users see the agency but hold no agency role: 403; another agency: 404.
    refused = await client.post(
        f"{API}/provider-connections", json=body, headers=world.a.headers("client_admin")
    )
    assert refused.status_code == 403
    foreign = await client.post(
        f"{API}/provider-connections", json=body, headers=world.b.headers("agency_owner")
    )
    assert foreign.status_code == 404

    created = await create_connection(client, world.a)
    url = f"{API}/provider-connections/{created['id']}"
    for headers in (world.a.headers("client_admin"), world.b.headers("agency_owner")):
        assert (await client.get(url, headers=headers)).status_code == 404
        assert (await client.patch(url, json={"name": "x"}, headers=headers)).status_code == 404
        assert (await client.delete(url, headers=headers)).status_code == 404
        listed = await client.get(f"{API}/provider-connections", headers=headers)
        assert created["id"] not in listed.text
    assert (
        await client.get(
            f"{API}/provider-connections",
            params={"agency_id": world.a.agency.id},
            headers=world.a.headers("client_viewer"),
        )
    ).status_code == 403
    assert (
        await client.get(
            f"{API}/provider-connections",
            params={"agency_id": world.a.agency.id},
            headers=world.b.headers("agency_owner"),
        )
    ).status_code == 404
    assert (await client.get(url, headers=world.a.headers("agency_admin"))).json()[
        "name"
    ] == "Azure EU"


async def test_an_agent_uses_only_its_agencys_connections(
    client: httpx.AsyncClient, world: World
) -> None:
    own = await create_connection(client, world.a)
    foreign = await create_connection(client, world.b)
    headers = world.a.headers("client_member")

    refused = await client.post(
        f"{API}/agents",
        json=agent_body(world.a.clients[0].id, llm={"connection_id": foreign["id"]}),
        headers=headers,
    )
    assert refused.status_code == 404
    assert error_field(refused) == "llm.connection_id"
    unknown = await client.post(
        f"{API}/agents",
        json=agent_body(world.a.clients[0].id, llm={"connection_id": "llm_doesnotexist"}),
        headers=headers,
    )
    assert unknown.status_code == 404

    # A client user may pick the agency's connection without seeing its settings.
    created = await create_agent(
        client, world.a, role="client_member", llm={"connection_id": own["id"]}
    )
    assert created["llm"]["connection_id"] == own["id"]
    assert KEY not in str(created)

    moved = await client.patch(
        f"{API}/agents/{created['id']}",
        json={"llm": {"connection_id": foreign["id"]}},
        headers=headers,
    )
    assert moved.status_code == 404
    kept = await client.get(f"{API}/agents/{created['id']}", headers=headers)
    assert kept.json()["llm"]["connection_id"] == own["id"]


async def test_a_connection_in_use_cannot_be_deleted(
    client: httpx.AsyncClient, db: Database
) -> None:
    tenant = await make_tenant(db)
    connection = await create_connection(client, tenant)
    agent = await create_agent(client, tenant, llm={"connection_id": connection["id"]})
    headers = tenant.headers("agency_owner")
    url = f"{API}/provider-connections/{connection['id']}"

    blocked = await client.delete(url, headers=headers)
    assert blocked.status_code == 409
    assert blocked.json()["error"]["details"]["agent_ids"] == [agent["id"]]

    # Published with it, then the draft moves away: the live version still uses it.
    await client.post(f"{API}/agents/{agent['id']}/publish", headers=headers)
    await client.patch(
        f"{API}/agents/{agent['id']}", json={"llm": {"connection_id": None}}, headers=headers
    )
    assert (await client.delete(url, headers=headers)).status_code == 409

    await client.post(f"{API}/agents/{agent['id']}/publish", headers=headers)
    assert (await client.delete(url, headers=headers)).status_code == 204
