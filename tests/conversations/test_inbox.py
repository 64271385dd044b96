"""The client's side: listing and reading conversations, taking over, answering, releasing,
and conversations that end by themselves."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select, update

from demandly.conversations import service
from demandly.conversations.models import Conversation
from demandly.jobs.models import DomainEvent
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.kit.time import utcnow
from tests.conversations.conftest import API, PublishedAgent, publish_agent, replies, say, start
from tests.factories import login_headers, make_tenant


async def test_listing_filters_and_tenants(
    visitor: httpx.AsyncClient, client: httpx.AsyncClient, agent: PublishedAgent, db: Database
) -> None:
    started = await start(visitor, agent.public_key)
    mine = agent.tenant.headers("client_viewer")
    listed = await client.get(
        f"{API}/conversations",
        params={"agent_id": agent.id, "status": "active", "channel": "web"},
        headers=mine,
    )
    assert listed.status_code == 200
    assert [c["id"] for c in listed.json()["items"]] == [started["conversation_id"]]

    stranger = await make_tenant(db)
    foreign = await client.get(
        f"{API}/conversations/{started['conversation_id']}",
        headers=stranger.headers("agency_owner"),
    )
    assert foreign.status_code == 404
    theirs = await client.get(
        f"{API}/conversations",
        params={"agent_id": agent.id},
        headers=stranger.headers("agency_owner"),
    )
    assert theirs.json()["items"] == []


async def test_a_person_takes_over_answers_and_hands_back(
    visitor: httpx.AsyncClient, client: httpx.AsyncClient, agent: PublishedAgent
) -> None:
    started = await start(visitor, agent.public_key)
    conversation_url = f"{API}/conversations/{started['conversation_id']}"
    member = await login_headers(client, agent.tenant.users["client_member"])

    viewer = await client.post(
        f"{conversation_url}/takeover", headers=agent.tenant.headers("client_viewer")
    )
    assert viewer.status_code == 403
    taken = await client.post(f"{conversation_url}/takeover", headers=member)
    assert taken.status_code == 200 and taken.json()["status"] == "handoff"

    silent = await say(visitor, started, "Ist da jemand?")
    assert replies(silent) == []
    answered = await client.post(
        f"{conversation_url}/messages", json={"text": "Ja, hier ist Frau Sommer."}, headers=member
    )
    assert answered.status_code == 201 and answered.json()["role"] == "human"
    transcript = await visitor.get(
        f"{API}/public/conversations/{started['conversation_id']}/messages",
        headers={"Authorization": f"Bearer {started['token']}"},
    )
    assert transcript.json()["messages"][-1]["content"] == "Ja, hier ist Frau Sommer."

    released = await client.post(f"{conversation_url}/release", headers=member)
    assert released.status_code == 200 and released.json()["status"] == "active"
    again = await say(visitor, started, "Danke!")
    assert replies(again)
    twice = await client.post(f"{conversation_url}/release", headers=member)
    assert twice.status_code == 409


async def test_asking_for_a_person_hands_off_and_raises_the_event(
    visitor: httpx.AsyncClient, agent: PublishedAgent, db: Database
) -> None:
    started = await start(visitor, agent.public_key)
    answer = await say(visitor, started, "Ich möchte bitte mit einem Menschen sprechen.")
    assert answer["status"] == "handoff"
    assert replies(answer)
    async with db.session(Scope.for_system()) as session:
        events = (
            await session.execute(
                select(DomainEvent.type).where(DomainEvent.entity_id == started["conversation_id"])
            )
        ).scalars()
        assert "handoff.requested" in set(events)


async def test_idle_conversations_end(
    visitor: httpx.AsyncClient, agent: PublishedAgent, db: Database
) -> None:
    started = await start(visitor, agent.public_key)
    async with db.session(Scope.for_system()) as session:
        await session.execute(
            update(Conversation)
            .where(Conversation.id == started["conversation_id"])
            .values(last_activity_at=utcnow() - timedelta(hours=2))
        )
        await session.commit()
    async with db.session(Scope.for_system()) as session:
        assert await service.end_idle(session, timedelta(minutes=30)) >= 1
        await session.commit()
    late = await visitor.post(
        f"{API}/public/conversations/{started['conversation_id']}/messages",
        json={"text": "Hallo?"},
        headers={"Authorization": f"Bearer {started['token']}"},
    )
    assert late.status_code == 410 and late.json()["error"]["code"] == "conversation_ended"


async def test_turns_without_progress_hand_off_when_the_agent_says_so(
    visitor: httpx.AsyncClient, client: httpx.AsyncClient, tenant
) -> None:  # type: ignore[no-untyped-def]
    agent = await publish_agent(client, tenant, handoff={"after_turns_without_progress": 2})
    started = await start(visitor, agent.public_key)
    first = await say(visitor, started, "Danke!")
    assert first["status"] == "active"
    second = await say(visitor, started, "Vielen Dank!")
    assert second["status"] == "handoff"


async def test_an_answer_to_the_form_starts_the_count_of_turns_without_progress_again(
    visitor: httpx.AsyncClient, client: httpx.AsyncClient, tenant
) -> None:  # type: ignore[no-untyped-def]
    agent = await publish_agent(client, tenant, handoff={"after_turns_without_progress": 2})
    started = await start(visitor, agent.public_key)
    assert (await say(visitor, started, "Danke!"))["status"] == "active"
    assert (await say(visitor, started, "Ich heiße Max Muster"))["status"] == "active"
    assert (await say(visitor, started, "Danke!"))["status"] == "active"
    assert (await say(visitor, started, "Vielen Dank!"))["status"] == "handoff"
