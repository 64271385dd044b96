"""The public chat API end to end on the offline engine: what a widget sees."""

from __future__ import annotations

import json
from datetime import date, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select

from demandly.conversations.models import Message
from demandly.kit.context import Scope
from demandly.kit.db import Database
from tests.conversations.conftest import (
    API,
    PublishedAgent,
    bearer,
    publish_agent,
    replies,
    say,
    start,
)
from tests.factories import Tenant


async def test_the_widget_learns_brand_greeting_and_notice_first(
    visitor: httpx.AsyncClient, agent: PublishedAgent
) -> None:
    response = await visitor.get(f"{API}/public/agents/{agent.public_key}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["greeting"].startswith("Guten Tag, hier ist Lena")
    assert body["privacy_notice"] and body["language"] == "de"
    assert body["brand"]["name"] == agent.tenant.agency.name
    assert (await visitor.get(f"{API}/public/agents/pk_unknown")).status_code == 404


async def test_nothing_starts_without_consent(
    visitor: httpx.AsyncClient, agent: PublishedAgent
) -> None:
    url = f"{API}/public/agents/{agent.public_key}/conversations"
    for body in ({}, {"consent": False}):
        refused = await visitor.post(url, json=body)
        assert refused.status_code == 422
        assert refused.json()["error"]["details"][0]["field"] == "consent"


async def test_a_conversation_qualifies_the_visitor(
    visitor: httpx.AsyncClient, client: httpx.AsyncClient, agent: PublishedAgent
) -> None:
    started = await start(visitor, agent.public_key)
    assert [m["role"] for m in started["messages"]] == ["assistant"]

    first = await say(visitor, started, "Hallo, ich hätte gern einen Termin.")
    assert first["messages"][0]["content"] == "Hallo, ich hätte gern einen Termin."
    assert "Name" in " ".join(replies(first))

    second = await say(visitor, started, "Ich bin Max Muster, max.muster@example.com")
    assert second["messages"][-1]["role"] == "assistant"

    detail = await client.get(
        f"{API}/conversations/{started['conversation_id']}",
        headers=agent.tenant.headers("client_viewer"),
    )
    assert detail.status_code == 200, detail.text
    conversation = detail.json()
    assert conversation["lead_fields"]["email"] == "max.muster@example.com"
    assert conversation["lead_fields"]["name"]
    roles = [m["role"] for m in conversation["messages"]]
    assert roles[0] == "assistant" and "tool" in roles
    assistant = [
        m for m in conversation["messages"] if m["role"] == "assistant" and m["model"] != "greeting"
    ]
    assert all(m["model"] == "offline" and m["latency_ms"] is not None for m in assistant)


async def test_history_resumes_after_a_reload(
    visitor: httpx.AsyncClient, agent: PublishedAgent
) -> None:
    started = await start(visitor, agent.public_key)
    await say(visitor, started, "Hallo")
    url = f"{API}/public/conversations/{started['conversation_id']}/messages"
    everything = (await visitor.get(url, headers=bearer(started))).json()
    seqs = [m["seq"] for m in everything["messages"]]
    assert seqs == sorted(seqs) and len(seqs) >= 3
    later = (await visitor.get(url, params={"after": seqs[1]}, headers=bearer(started))).json()
    assert [m["seq"] for m in later["messages"]] == seqs[2:]


async def test_a_retried_message_is_stored_once(
    visitor: httpx.AsyncClient, agent: PublishedAgent, db: Database
) -> None:
    started = await start(visitor, agent.public_key)
    first = await say(visitor, started, "Hallo", client_message_id="m-1")
    again = await say(visitor, started, "Hallo", client_message_id="m-1")
    assert [m["id"] for m in again["messages"]] == [m["id"] for m in first["messages"]]
    async with db.session(Scope.for_system()) as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.conversation_id == started["conversation_id"], Message.role == "user")
        )
    assert count == 1


async def test_replies_stream_as_server_sent_events(
    visitor: httpx.AsyncClient, agent: PublishedAgent
) -> None:
    started = await start(visitor, agent.public_key)
    async with visitor.stream(
        "POST",
        f"{API}/public/conversations/{started['conversation_id']}/messages",
        json={"text": "Hallo, ich brauche einen Termin"},
        headers={**bearer(started), "Accept": "text/event-stream"},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        # The offline engine answers within the turn's first transaction: the events are
        # all known before the response starts, and go as one body of known length (a
        # model's stream as it comes).
        length = response.headers.get("content-length")
        assert length is not None
        events = []
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                events.append([line[7:], None])
            elif line.startswith("data: "):
                events[-1][1] = json.loads(line[6:])
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "done"
    deltas = [data["text"] for kind, data in events if kind == "delta"]
    assert deltas
    final = [data["message"] for kind, data in events if kind == "message"][-1]
    assert final["role"] == "assistant" and final["content"] == "".join(deltas)
    assert int(length) == response.num_bytes_downloaded


async def test_bad_input_gets_clear_errors(
    visitor: httpx.AsyncClient, agent: PublishedAgent
) -> None:
    started = await start(visitor, agent.public_key)
    url = f"{API}/public/conversations/{started['conversation_id']}/messages"
    empty = await visitor.post(url, json={"text": "   "}, headers=bearer(started))
    assert empty.status_code == 422 and empty.json()["error"]["details"][0]["field"] == "text"
    long = await visitor.post(url, json={"text": "x" * 4001}, headers=bearer(started))
    assert long.status_code == 422
    no_token = await visitor.post(url, json={"text": "Hallo"})
    assert no_token.status_code == 401
    wrong = await visitor.post(
        url, json={"text": "Hallo"}, headers={"Authorization": "Bearer vt_x"}
    )
    assert wrong.status_code == 401
    other = await start(visitor, agent.public_key)
    crossed = await visitor.post(url, json={"text": "Hallo"}, headers=bearer(other))
    assert crossed.status_code == 401


async def test_only_allowed_websites_may_embed_the_agent(
    visitor: httpx.AsyncClient, client: httpx.AsyncClient, tenant
) -> None:  # type: ignore[no-untyped-def]
    agent = await publish_agent(
        client, tenant, widget={"allowed_origins": ["https://praxis.example"]}
    )
    url = f"{API}/public/agents/{agent.public_key}/conversations"
    evil = await visitor.post(
        url, json={"consent": True}, headers={"Origin": "https://evil.example"}
    )
    assert evil.status_code == 403 and evil.json()["error"]["code"] == "origin_not_allowed"
    good = await visitor.post(
        url, json={"consent": True}, headers={"Origin": "https://praxis.example"}
    )
    assert good.status_code == 201
    assert good.headers["access-control-allow-origin"] == "https://praxis.example"
    preflight = await visitor.options(
        url,
        headers={"Origin": "https://praxis.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()


async def test_a_chatty_visitor_is_slowed_down(
    visitor: httpx.AsyncClient, agent: PublishedAgent
) -> None:
    started = await start(visitor, agent.public_key)
    url = f"{API}/public/conversations/{started['conversation_id']}/messages"
    statuses = []
    for i in range(12):
        response = await visitor.post(url, json={"text": f"Nachricht {i}"}, headers=bearer(started))
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
            break
    assert statuses[-1] == 429 and set(statuses[:-1]) == {200}
    # The refused message was not stored (refused before the turn wrote anything).
    transcript = (await visitor.get(url, headers=bearer(started))).json()["messages"]
    said = [m["content"] for m in transcript if m["role"] == "user"]
    assert said == [f"Nachricht {i}" for i in range(len(statuses) - 1)]


async def test_a_message_whose_answer_was_lost_is_answered_on_retry(
    visitor: httpx.AsyncClient, agent: PublishedAgent, db: Database
) -> None:
    """The server stopped after storing the visitor's message: the widget's retry (same id)
    gets the answer instead of silence."""
    from demandly.conversations import service
    from demandly.conversations.models import MessageRole

    started = await start(visitor, agent.public_key)
    async with db.session(Scope.for_system()) as session:
        conversation = await service.get(session, started["conversation_id"])
        await service.append(
            session, conversation, MessageRole.USER, "Hallo", client_message_id="lost-1"
        )
        await session.commit()
    retried = await say(visitor, started, "Hallo", client_message_id="lost-1")
    roles = [m["role"] for m in retried["messages"]]
    assert roles[0] == "user" and "assistant" in roles[1:]
    again = await say(visitor, started, "Hallo", client_message_id="lost-1")
    assert [m["id"] for m in again["messages"]] == [m["id"] for m in retried["messages"]]


async def test_out_of_hours_the_first_message_says_so(
    client: httpx.AsyncClient, visitor: httpx.AsyncClient, tenant: Tenant
) -> None:
    today = datetime.now(ZoneInfo("Europe/Berlin")).date()
    # Open one hour a week, never today (and closed on today's date for good measure).
    other_day = (today.weekday() + 3) % 7
    agent = await publish_agent(
        client,
        tenant,
        greeting=None,
        business_hours={
            "timezone": "Europe/Berlin",
            "weekly": [{"weekday": other_day, "opens": "09:00", "closes": "10:00"}],
            "closed_dates": [date.isoformat(today)],
            "out_of_hours_message": "Gerade ist niemand in der Praxis, ich nehme Ihr Anliegen auf.",
        },
    )
    shown = (await visitor.get(f"{API}/public/agents/{agent.public_key}")).json()["greeting"]
    assert shown.startswith("Guten Tag! Ich bin Lena")
    assert shown.endswith("Gerade ist niemand in der Praxis, ich nehme Ihr Anliegen auf.")
    started = await start(visitor, agent.public_key)
    assert started["messages"][0]["content"] == shown
    answer = await say(visitor, started, "Bieten Sie Zahnreinigung an?")
    assert "89 Euro" in " ".join(replies(answer))


async def test_within_opening_hours_the_greeting_stays_as_written(
    visitor: httpx.AsyncClient, agent: PublishedAgent
) -> None:
    shown = (await visitor.get(f"{API}/public/agents/{agent.public_key}")).json()["greeting"]
    assert shown == "Guten Tag, hier ist Lena von der Praxis. Wie kann ich helfen?"


async def _stored(db: Database, conversation_id: str) -> tuple[int, int, datetime | None]:
    """The conversation's message count, its messages stored, and its last activity."""
    from demandly.conversations.models import Conversation

    async with db.session(Scope.for_system()) as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        stored = await session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.conversation_id == conversation_id)
        )
    return conversation.message_count, int(stored or 0), conversation.last_activity_at


async def test_a_token_of_another_conversation_changes_neither(
    visitor: httpx.AsyncClient, agent: PublishedAgent, db: Database
) -> None:
    """The token is checked in the statement that counts the visitor's message: a token that
    does not fit the conversation is refused and touches no conversation, also once both
    have had turns (and the server knows their workspaces)."""
    mine = await start(visitor, agent.public_key)
    other = await start(visitor, agent.public_key)
    for turn in range(2):
        before = [await _stored(db, c["conversation_id"]) for c in (mine, other)]
        response = await visitor.post(
            f"{API}/public/conversations/{other['conversation_id']}/messages",
            json={"text": "Hallo"},
            headers=bearer(mine),
        )
        assert response.status_code == 401
        assert [await _stored(db, c["conversation_id"]) for c in (mine, other)] == before
        for own in (mine, other):
            answered = await say(visitor, own, f"Hallo, Runde {turn}")
            assert answered["messages"][-1]["role"] == "assistant"


async def test_an_ended_conversation_takes_no_message(
    visitor: httpx.AsyncClient, agent: PublishedAgent, db: Database
) -> None:
    from demandly.conversations import service

    started = await start(visitor, agent.public_key)
    async with db.session(Scope.for_system()) as session:
        conversation = await service.get(session, started["conversation_id"])
        await service.end(session, conversation, "finished")
        await session.commit()
    before = await _stored(db, started["conversation_id"])
    response = await visitor.post(
        f"{API}/public/conversations/{started['conversation_id']}/messages",
        json={"text": "Hallo?"},
        headers=bearer(started),
    )
    assert response.status_code == 410
    assert await _stored(db, started["conversation_id"]) == before


async def test_a_retried_message_leaves_the_count_as_it_was(
    visitor: httpx.AsyncClient, agent: PublishedAgent, db: Database
) -> None:
    """A retry is answered from what is stored: no position is reserved for it."""
    started = await start(visitor, agent.public_key)
    await say(visitor, started, "Hallo", client_message_id="m-1")
    before = await _stored(db, started["conversation_id"])
    await say(visitor, started, "Hallo", client_message_id="m-1")
    assert await _stored(db, started["conversation_id"]) == before
    assert before[0] == before[1]


async def test_a_conversation_s_start_and_end_are_on_the_audit_trail(
    visitor: httpx.AsyncClient, client: httpx.AsyncClient, agent: PublishedAgent
) -> None:
    started = await start(visitor, agent.public_key)
    ended = await say(visitor, started, "Danke, auf Wiedersehen")
    assert ended["status"] == "ended"
    response = await client.get(
        f"{API}/audit-events",
        params={"agency_id": agent.tenant.agency.id, "entity_id": started["conversation_id"]},
        headers=agent.tenant.headers("agency_owner"),
    )
    assert response.status_code == 200, response.text
    closed, created = response.json()["items"]  # newest first
    assert created["action"] == "conversation.created"
    assert created["entity_type"] == "conversation"
    assert created["actor"]["kind"] == "visitor"
    assert created["client_id"] == agent.tenant.clients[0].id
    assert closed["action"] == "conversation.updated"
    assert sorted(closed["changed_fields"]) == ["end_reason", "ended_at", "status"]
    assert closed["actor"]["kind"] == "visitor"
    shown = await client.get(
        f"{API}/conversations/{started['conversation_id']}",
        headers=agent.tenant.headers("agency_owner"),
    )
    assert shown.json()["status"] == "ended" and shown.json()["ended_at"]


async def test_a_start_begins_in_the_agent_s_workspace_once_the_process_knows_it(
    visitor: httpx.AsyncClient, agent: PublishedAgent, backend: str, sent: list[str]
) -> None:
    if backend != "postgres":
        pytest.skip("only PostgreSQL has settings to set")
    await start(visitor, agent.public_key)
    narrowed = [s for s in sent if "set_config" in s]
    sent.clear()
    again = await start(visitor, agent.public_key)
    # The first start looked the key up across tenants, then narrowed to the client in a
    # statement of its own; the next one begins in the client's workspace with its BEGIN.
    assert narrowed and not [s for s in sent if "set_config" in s]
    assert again["messages"][0]["content"].startswith("Guten Tag, hier ist Lena")


async def test_a_known_agent_that_is_deleted_starts_no_conversation(
    visitor: httpx.AsyncClient, client: httpx.AsyncClient, agent: PublishedAgent
) -> None:
    await start(visitor, agent.public_key)  # the process now knows its workspace
    owner = agent.tenant.headers("agency_owner")
    assert (await client.delete(f"{API}/agents/{agent.id}", headers=owner)).status_code == 204
    gone = await visitor.post(
        f"{API}/public/agents/{agent.public_key}/conversations", json={"consent": True}
    )
    assert gone.status_code == 404
