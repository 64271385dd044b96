"""A published agent with a qualification form and FAQ, and a visitor with an address of its own
(so the per-IP rate limits of one test never meet another's)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from demandly.kit.db import Database
from tests.factories import Tenant, make_tenant

API = "/api/v1"


def agent_body(client_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_id": client_id,
        "name": "Empfang",
        "kind": "chat",
        "language": "de",
        "persona_name": "Lena",
        "greeting": "Guten Tag, hier ist Lena von der Praxis. Wie kann ich helfen?",
        "qualification": [
            {"key": "name", "label": {"de": "Name", "en": "Name"}, "type": "text"},
            {"key": "email", "label": {"de": "E-Mail", "en": "E-mail"}, "type": "email"},
        ],
        "faq": [
            {
                "question": "Bieten Sie Zahnreinigung an?",
                "answer": "Ja, die professionelle Zahnreinigung kostet 89 Euro.",
            }
        ],
        "tools": ["save_lead_details", "request_handoff", "end_conversation"],
    }
    body.update(overrides)
    return body


@dataclass
class PublishedAgent:
    tenant: Tenant
    id: str
    public_key: str


async def publish_agent(
    client: httpx.AsyncClient, tenant: Tenant, **overrides: Any
) -> PublishedAgent:
    owner = tenant.headers("agency_owner")
    created = await client.post(
        f"{API}/agents", json=agent_body(tenant.clients[0].id, **overrides), headers=owner
    )
    assert created.status_code == 201, created.text
    agent = created.json()
    published = await client.post(f"{API}/agents/{agent['id']}/publish", headers=owner)
    assert published.status_code == 200, published.text
    return PublishedAgent(tenant=tenant, id=agent["id"], public_key=agent["public_key"])


@pytest.fixture
async def tenant(db: Database) -> Tenant:
    return await make_tenant(db)


@pytest.fixture
async def agent(client: httpx.AsyncClient, tenant: Tenant) -> PublishedAgent:
    return await publish_agent(client, tenant)


@pytest.fixture
async def visitor(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    address = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def start(visitor: httpx.AsyncClient, public_key: str, **headers: str) -> dict[str, Any]:
    response = await visitor.post(
        f"{API}/public/agents/{public_key}/conversations", json={"consent": True}, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()


def bearer(started: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {started['token']}"}


async def say(
    visitor: httpx.AsyncClient, started: dict[str, Any], text: str, **extra: Any
) -> dict[str, Any]:
    response = await visitor.post(
        f"{API}/public/conversations/{started['conversation_id']}/messages",
        json={"text": text, **extra},
        headers=bearer(started),
    )
    assert response.status_code == 200, response.text
    return response.json()


def replies(answer: dict[str, Any]) -> list[str]:
    return [m["content"] for m in answer["messages"] if m["role"] != "user"]


# The OpenAI-protocol stub server of the engine tests, for turns that run on an LLM.
from tests.engine.conftest import _openai_stub_server, openai_stub  # noqa: E402, F401
