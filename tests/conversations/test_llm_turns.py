"""Turns on an OpenAI-compatible model (the local protocol stub over real HTTP): streamed
text, tools run through our registry in the conversation's scope, and failures that degrade
to a polite fallback instead of dropping the visitor."""

from __future__ import annotations

from typing import Any

import httpx

from demandly.kit.db import Database
from tests.conversations.conftest import API, PublishedAgent, publish_agent, replies, say, start
from tests.engine.openai_stub import OpenAIStub, StubToolCall
from tests.factories import Tenant
from tests.knowledge.conftest import add_source, create_base, run_jobs


async def llm_agent(client: httpx.AsyncClient, tenant: Tenant, stub: OpenAIStub) -> PublishedAgent:
    owner = tenant.headers("agency_owner")
    connection = await client.post(
        f"{API}/provider-connections",
        json={
            "agency_id": tenant.agency.id,
            "name": "Stub EU",
            "base_url": stub.base_url,
            "api_key": "sk-test-secret-key-123456",
            "default_model": "stub-model",
            "region": "eu",
        },
        headers=owner,
    )
    assert connection.status_code == 201, connection.text
    return await publish_agent(client, tenant, llm={"connection_id": connection.json()["id"]})


async def transcript(
    client: httpx.AsyncClient, agent: PublishedAgent, conversation_id: str
) -> dict[str, Any]:
    detail = await client.get(
        f"{API}/conversations/{conversation_id}", headers=agent.tenant.headers("client_viewer")
    )
    assert detail.status_code == 200, detail.text
    return detail.json()


async def test_streamed_text_is_stored_with_model_and_tokens(
    visitor: httpx.AsyncClient, client: httpx.AsyncClient, tenant: Tenant, openai_stub: OpenAIStub
) -> None:
    agent = await llm_agent(client, tenant, openai_stub)
    started = await start(visitor, agent.public_key)
    openai_stub.script_text("Gern, ", "wie ist ", "Ihr Name?", usage=(120, 9))
    answer = await say(visitor, started, "Ich möchte einen Termin.")
    assert replies(answer) == ["Gern, wie ist Ihr Name?"]

    sent = openai_stub.requests[-1]
    assert sent.bearer_token_is("sk-test-secret-key-123456")
    body = sent.body
    assert body["model"] == "stub-model" and body["stream"] is True
    assert body["messages"][0]["role"] == "system" and "Lena" in body["messages"][0]["content"]
    assert body["messages"][-1] == {"role": "user", "content": "Ich möchte einen Termin."}
    assert {t["function"]["name"] for t in body["tools"]} >= {
        "save_lead_details",
        "request_handoff",
    }

    stored = (await transcript(client, agent, started["conversation_id"]))["messages"][-1]
    assert stored["model"] == "stub-model"
    assert (stored["prompt_tokens"], stored["completion_tokens"]) == (120, 9)


async def test_a_tool_call_runs_and_the_model_answers_with_its_result(
    visitor: httpx.AsyncClient, client: httpx.AsyncClient, tenant: Tenant, openai_stub: OpenAIStub
) -> None:
    agent = await llm_agent(client, tenant, openai_stub)
    started = await start(visitor, agent.public_key)
    openai_stub.script_tool_calls(
        StubToolCall(
            "save_lead_details",
            ('{"fields": {"name": "Anna ', 'Berg", "email": ', '"anna@example.com"}}'),
            id="call_1",
        )
    )
    openai_stub.script_text("Danke, Frau Berg!")
    answer = await say(visitor, started, "Anna Berg, anna@example.com")
    assert replies(answer) == ["Danke, Frau Berg!"]

    second = openai_stub.requests[-1].body["messages"]
    assert second[-2]["tool_calls"][0]["function"]["name"] == "save_lead_details"
    assert second[-1]["role"] == "tool" and second[-1]["tool_call_id"] == "call_1"
    assert '"ok":true' in second[-1]["content"]
    conversation = await transcript(client, agent, started["conversation_id"])
    assert conversation["lead_fields"] == {"name": "Anna Berg", "email": "anna@example.com"}


async def test_a_broken_tool_call_is_answered_not_crashed(
    visitor: httpx.AsyncClient, client: httpx.AsyncClient, tenant: Tenant, openai_stub: OpenAIStub
) -> None:
    agent = await llm_agent(client, tenant, openai_stub)
    started = await start(visitor, agent.public_key)
    openai_stub.script_tool_calls(StubToolCall("delete_everything", ('{"all": true}',), id="c1"))
    openai_stub.script_tool_calls(StubToolCall("save_lead_details", ('{"fields": 5}',), id="c2"))
    openai_stub.script_text("Wie kann ich sonst helfen?")
    answer = await say(visitor, started, "Hallo")
    assert replies(answer) == ["Wie kann ich sonst helfen?"]
    results = [m for m in openai_stub.requests[-1].body["messages"] if m["role"] == "tool"]
    assert "unknown tool" in results[0]["content"]
    assert "invalid arguments" in results[1]["content"]


async def test_a_failing_model_degrades_to_a_polite_fallback(
    visitor: httpx.AsyncClient, client: httpx.AsyncClient, tenant: Tenant, openai_stub: OpenAIStub
) -> None:
    agent = await llm_agent(client, tenant, openai_stub)
    started = await start(visitor, agent.public_key)
    openai_stub.script_error(500)
    openai_stub.script_error(500)
    answer = await say(visitor, started, "Hallo?")
    assert answer["status"] == "active"
    assert "technische Schwierigkeiten" in replies(answer)[0]
    stored = (await transcript(client, agent, started["conversation_id"]))["messages"][-1]
    assert stored["model"] == "fallback"

    openai_stub.script_text("Jetzt geht es wieder.")
    assert replies(await say(visitor, started, "Und jetzt?")) == ["Jetzt geht es wieder."]


async def test_an_answer_from_a_knowledge_search_cites_its_sources(
    visitor: httpx.AsyncClient,
    client: httpx.AsyncClient,
    tenant: Tenant,
    openai_stub: OpenAIStub,
    db: Database,
) -> None:
    base = await create_base(client, tenant)
    text = "Professionelle Zahnreinigung: 89 Euro, etwa 60 Minuten."
    await add_source(client, tenant, base["id"], {"kind": "text", "title": "Preise", "text": text})
    await run_jobs(db)
    llm = (await llm_agent(client, tenant, openai_stub)).id
    detail = await client.get(f"{API}/agents/{llm}", headers=tenant.headers("agency_owner"))
    agent = await publish_agent(
        client,
        tenant,
        llm=detail.json()["llm"],
        knowledge_base_ids=[base["id"]],
        tools=["search_knowledge"],
    )
    started = await start(visitor, agent.public_key)
    openai_stub.script_tool_calls(
        StubToolCall("search_knowledge", ('{"query": "Zahnreinigung Preis"}',), id="k1")
    )
    openai_stub.script_text("Die Zahnreinigung kostet 89 Euro.")
    answer = await say(visitor, started, "Was kostet eine Zahnreinigung?")

    [reply] = [m for m in answer["messages"] if m["role"] == "assistant"]
    assert reply["content"] == "Die Zahnreinigung kostet 89 Euro."
    assert reply["sources"] == [{"title": "Preise", "url": None}]
