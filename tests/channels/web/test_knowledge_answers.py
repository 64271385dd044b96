"""Answers from knowledge through the public chat API: the offline engine searches the agent's
real knowledge base, answers with the sentences that answer the question and names the source;
a question the base does not cover is passed on. German and English."""

from __future__ import annotations

from typing import Any

import httpx

from demandly.kit.db import Database
from tests.conversations.conftest import publish_agent, say, start
from tests.factories import Tenant
from tests.knowledge.conftest import add_source, create_base, run_jobs

CLEANING_DE = """# Professionelle Zahnreinigung

Bei der professionellen Zahnreinigung entfernen wir Beläge und Zahnstein gründlich.
Die Reinigung dauert etwa 45 bis 60 Minuten.
Sie kostet 89 Euro, viele Zusatzversicherungen übernehmen die Kosten.
Wir empfehlen sie zweimal im Jahr.
"""
PARKING_DE = """# Anfahrt

Unsere Praxis liegt direkt am Marktplatz. Mit der Straßenbahn Linie 4 sind Sie in zehn
Minuten vom Hauptbahnhof bei uns.
"""
CLEANING_EN = """# Professional cleaning

During a professional cleaning we thoroughly remove plaque and tartar.
The appointment takes about 45 to 60 minutes.
It costs 89 euros; many supplementary insurances cover it.
"""


async def knowledge_agent(
    client: httpx.AsyncClient, db: Database, tenant: Tenant, language: str, pages: dict[str, str]
) -> str:
    base = await create_base(client, tenant, language)
    for title, text in pages.items():
        await add_source(
            client, tenant, base["id"], {"kind": "markdown", "title": title, "text": text}
        )
    await run_jobs(db)
    agent = await publish_agent(
        client,
        tenant,
        language=language,
        greeting=None,
        faq=[],
        tools=["save_lead_details", "request_handoff", "end_conversation", "search_knowledge"],
        knowledge_base_ids=[base["id"]],
    )
    return agent.public_key


def answer(reply: dict[str, Any]) -> dict[str, Any]:
    return [m for m in reply["messages"] if m["role"] == "assistant"][-1]


async def test_a_german_question_is_answered_from_the_knowledge_base_with_its_source(
    client: httpx.AsyncClient, visitor: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    key = await knowledge_agent(
        client, db, tenant, "de", {"Zahnreinigung": CLEANING_DE, "Anfahrt": PARKING_DE}
    )
    started = await start(visitor, key)

    duration = answer(await say(visitor, started, "Wie lange dauert eine Zahnreinigung?"))
    assert duration["content"].startswith("Die Reinigung dauert etwa 45 bis 60 Minuten.")
    assert "Beläge" not in duration["content"] and "89 Euro" not in duration["content"]
    assert [s["title"] for s in duration["sources"]] == ["Professionelle Zahnreinigung"]

    price = answer(await say(visitor, started, "Was kostet die Reinigung der Zähne?"))
    assert "89 Euro" in price["content"]

    unknown = answer(await say(visitor, started, "Kann ich bei Ihnen mit Bitcoin bezahlen?"))
    assert "keine sichere Antwort" in unknown["content"]
    assert unknown["sources"] == []


async def test_an_english_question_is_answered_from_the_knowledge_base(
    client: httpx.AsyncClient, visitor: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    key = await knowledge_agent(client, db, tenant, "en", {"Cleaning": CLEANING_EN})
    started = await start(visitor, key)
    reply = answer(await say(visitor, started, "How long does a professional cleaning take?"))
    assert reply["content"].startswith("The appointment takes about 45 to 60 minutes.")
    assert [s["title"] for s in reply["sources"]] == ["Professional cleaning"]
    unknown = answer(await say(visitor, started, "Do you sell electric toothbrushes?"))
    assert "can't find a reliable answer" in unknown["content"]
