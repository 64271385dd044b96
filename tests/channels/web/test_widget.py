"""The widget script as websites load it, and the demo practice website that embeds it."""

from __future__ import annotations

import gzip
import random
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from demandly.agents.models import Agent
from demandly.app import create_app
from demandly.bootstrap import DEMO_PRACTICE, DEMO_SLUG, _seed, demo_public_key
from demandly.config import Settings
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.tenancy.models import Agency, Client

WIDGET = Path(__file__).parents[3] / "src/demandly/channels/web/static/widget.js"
SIZE_BUDGET = 25 * 1024
API = "/api/v1/public"


@pytest.fixture
async def demo_key(db: Database) -> str:
    await _seed(db)
    async with db.session(Scope.for_system()) as session:
        key = await demo_public_key(session)
    assert key is not None
    return key


@pytest.fixture
async def visitor(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A browser of its own address: the per-IP limits of other tests never meet it."""
    address = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def test_the_widget_stays_under_25_kb_gzipped() -> None:
    size = len(gzip.compress(WIDGET.read_bytes(), 9))
    assert size < SIZE_BUDGET, f"widget.js is {size} bytes gzipped"


async def test_any_website_may_load_the_widget_and_cache_it(client: httpx.AsyncClient) -> None:
    plain = await client.get(
        "/widget.js",
        headers={"Accept-Encoding": "identity", "Origin": "https://www.praxis.example"},
    )
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("application/javascript")
    assert plain.headers["access-control-allow-origin"] == "*"
    assert "max-age=" in plain.headers["cache-control"]
    assert plain.content == WIDGET.read_bytes()
    # White-label: a client who reads the script's source finds no platform name in it.
    assert b"Demandly" not in plain.content

    revalidated = await client.get("/widget.js", headers={"If-None-Match": plain.headers["etag"]})
    assert revalidated.status_code == 304 and revalidated.content == b""

    zipped = await client.get("/widget.js", headers={"Accept-Encoding": "gzip, br"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) < SIZE_BUDGET
    assert zipped.content == WIDGET.read_bytes()  # httpx unzips: the same script


async def test_the_demo_site_embeds_the_demo_agent(
    client: httpx.AsyncClient, demo_key: str
) -> None:
    for path in ("/demo", "/demo/"):
        page = await client.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        snippet = f'<script src="http://testserver/widget.js" data-agent="{demo_key}" async>'
        assert snippet in page.text
    for section in ("Zahnarztpraxis Dr. Sommer", "Leistungen", "Sprechzeiten", "Kontakt"):
        assert section in page.text

    # The platform's strict CSP holds on the demo: no inline script or style anywhere.
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "style-src 'self';" in csp
    assert all(" src=" in tag for tag in re.findall(r"<script\b[^>]*>", page.text))
    assert "<style" not in page.text and " style=" not in page.text
    css = await client.get("/demo/demo.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


async def test_the_demo_agent_is_lena_of_the_practice(
    visitor: httpx.AsyncClient, db: Database, demo_key: str
) -> None:
    await _seed(db)  # seeding again makes no second agent
    async with db.session(Scope.for_system()) as session:
        practice_agents = (
            await session.scalars(
                select(Agent.public_key)
                .join(Client, Client.id == Agent.client_id)
                .join(Agency, Agency.id == Client.agency_id)
                .where(Agency.slug == DEMO_SLUG, Client.name == DEMO_PRACTICE)
            )
        ).all()
    assert practice_agents == [demo_key]

    agent = (await visitor.get(f"{API}/agents/{demo_key}")).json()
    assert agent["persona_name"] == "Lena" and agent["language"] == "de"
    assert agent["name"] == DEMO_PRACTICE
    assert agent["greeting"].startswith("Guten Tag, hier ist Lena")
    assert agent["brand"]["primary_color"] == "#0b6e69"
    assert "Zahnarztpraxis Dr. Sommer" in agent["privacy_notice"]
    assert agent["privacy_policy_url"].startswith("https://")

    started = await visitor.post(
        f"{API}/agents/{demo_key}/conversations",
        json={"consent": True},
        headers={"Origin": "http://127.0.0.1:8000"},
    )
    assert started.status_code == 201, started.text
    conversation = started.json()
    url = f"{API}/conversations/{conversation['conversation_id']}/messages"
    bearer = {"Authorization": f"Bearer {conversation['token']}"}
    answers = {}
    for question in (
        "Was kostet eine professionelle Zahnreinigung?",
        "Gibt es bei Ihnen Parkplätze?",
        "Behandeln Sie auch Kassenpatienten?",
    ):
        reply = await visitor.post(url, json={"text": question}, headers=bearer)
        assert reply.status_code == 200, reply.text
        answers[question] = reply.json()["messages"][-1]["content"]
    assert "89 Euro" in answers["Was kostet eine professionelle Zahnreinigung?"]
    assert "Patientenparkplätze" in answers["Gibt es bei Ihnen Parkplätze?"]
    assert "Kassenpatienten" in answers["Behandeln Sie auch Kassenpatienten?"]


async def test_the_demo_agent_answers_the_platforms_own_pages_only(
    visitor: httpx.AsyncClient, demo_key: str
) -> None:
    url = f"{API}/agents/{demo_key}/conversations"
    for origin in ("http://127.0.0.1:8000", "http://localhost:8000", "http://testserver"):
        allowed = await visitor.post(url, json={"consent": True}, headers={"Origin": origin})
        assert allowed.status_code == 201, (origin, allowed.text)
    refused = await visitor.post(
        url, json={"consent": True}, headers={"Origin": "https://evil.example"}
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "origin_not_allowed"


async def test_without_the_demo_the_page_says_how_to_seed_it(
    fresh_db: tuple[Database, Settings],
) -> None:
    database, settings = fresh_db
    application = create_app(settings, database=database)
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        missing = await http.get("/demo")
    assert missing.status_code == 404
    assert "demandly serve --demo" in missing.text
