"""Publishing: each publish snapshots the draft as the next immutable version; editing the
draft never changes a published version."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
from sqlalchemy import select

from demandly.agents.models import AgentVersion
from demandly.jobs.models import DomainEvent
from demandly.kit.context import Scope
from demandly.kit.db import Database
from tests.agents.helpers import API, create_agent, publish
from tests.factories import World


async def test_publish_edit_publish(client: httpx.AsyncClient, world: World) -> None:
    created = await create_agent(client, world.a)
    url = f"{API}/agents/{created['id']}"
    headers = world.a.headers("agency_owner")

    first = await publish(client, world.a, created["id"])
    assert first["status"] == "published"
    assert first["published_version"] == 1
    assert first["published_at"] is not None
    assert first["has_unpublished_changes"] is False

    edited = await client.patch(
        url,
        json={"greeting": "Moin!", "qualification": [], "widget": {"primary_color": "#000000"}},
        headers=headers,
    )
    assert edited.status_code == 200
    assert edited.json()["status"] == "published"  # version 1 still answers
    assert edited.json()["published_version"] == 1
    assert edited.json()["has_unpublished_changes"] is True

    v1 = (await client.get(f"{url}/versions/1", headers=headers)).json()
    assert v1["number"] == 1
    assert v1["definition"]["greeting"] == "Guten Tag! Wie kann ich helfen?"
    assert len(v1["definition"]["qualification"]) == 4
    assert v1["definition"]["widget"]["primary_color"] == "#0055aa"
    assert v1["definition"]["name"] == created["name"] and v1["definition"]["kind"] == "chat"
    assert v1["created_by"] is not None

    second = await publish(client, world.a, created["id"])
    assert second["published_version"] == 2
    assert second["has_unpublished_changes"] is False
    published = [datetime.fromisoformat(v["published_at"]) for v in (first, second)]
    assert published[1] >= published[0]

    versions = (await client.get(f"{url}/versions", headers=headers)).json()["items"]
    assert [v["number"] for v in versions] == [2, 1]
    assert versions[0]["definition"]["greeting"] == "Moin!"
    assert versions[1] == v1  # unchanged by the edit and the second publish

    # Publishing an unchanged draft makes no new version.
    third = await publish(client, world.a, created["id"])
    assert third["published_version"] == 2
    versions = (await client.get(f"{url}/versions", headers=headers)).json()["items"]
    assert len(versions) == 2

    # A rename is a change worth a version too: name and kind are part of it.
    await client.patch(url, json={"name": "Neuer Name"}, headers=headers)
    assert (await publish(client, world.a, created["id"]))["published_version"] == 3
    v3 = (await client.get(f"{url}/versions/3", headers=headers)).json()
    assert v3["definition"]["name"] == "Neuer Name"
    assert (await client.get(f"{url}/versions/4", headers=headers)).status_code == 404
    assert (await client.get(f"{url}/versions/0", headers=headers)).status_code == 422


async def test_publishing_emits_an_event(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    created = await create_agent(client, world.a)
    await publish(client, world.a, created["id"])
    async with db.session(Scope.for_system()) as session:
        events = (
            (
                await session.execute(
                    select(DomainEvent).where(
                        DomainEvent.type == "agent.published",
                        DomainEvent.entity_id == created["id"],
                    )
                )
            )
            .scalars()
            .all()
        )
    assert len(events) == 1
    assert events[0].payload["version"] == 1
    assert events[0].client_id == world.a.clients[0].id


async def test_a_version_row_cannot_be_changed(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    created = await create_agent(client, world.a)
    await publish(client, world.a, created["id"])
    async with db.session(Scope.for_system()) as session:
        version = (
            await session.execute(
                select(AgentVersion).where(AgentVersion.agent_id == created["id"])
            )
        ).scalar_one()
        version.definition = {**version.definition, "greeting": "tampered"}
        with pytest.raises(RuntimeError, match="immutable"):
            await session.flush()
        await session.rollback()
    v1 = await client.get(
        f"{API}/agents/{created['id']}/versions/1", headers=world.a.headers("agency_owner")
    )
    assert v1.json()["definition"]["greeting"] == "Guten Tag! Wie kann ich helfen?"


async def test_client_member_may_publish(client: httpx.AsyncClient, world: World) -> None:
    created = await create_agent(client, world.a, role="client_member")
    response = await client.post(
        f"{API}/agents/{created['id']}/publish", headers=world.a.headers("client_member")
    )
    assert response.status_code == 200
    assert response.json()["published_version"] == 1
