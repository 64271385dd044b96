"""The demo practice is alive after seeding: Lena answers from the practice's website and
price list, books into its calendar, and seeding twice changes nothing."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from demandly.app import create_app
from demandly.booking.models import Calendar
from demandly.bootstrap import _seed, demo_public_key
from demandly.config import Settings
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.knowledge.models import KnowledgeBase, KnowledgeChunk, KnowledgeSource

BASE = "http://127.0.0.1:8000"


async def _counts(db: Database) -> tuple[int, int, int, int]:
    async with db.session(Scope.for_system()) as session:
        counted = [
            await session.scalar(select(func.count()).select_from(model))
            for model in (Calendar, KnowledgeBase, KnowledgeSource, KnowledgeChunk)
        ]
    return tuple(int(c or 0) for c in counted)  # type: ignore[return-value]


async def test_the_demo_practice_has_a_calendar_and_an_indexed_knowledge_base(
    fresh_db: tuple[Database, Settings],
) -> None:
    db, _ = fresh_db
    await _seed(db, BASE)
    calendars, bases, sources, chunks = await _counts(db)
    assert (calendars, bases, sources) == (1, 1, 2)
    assert chunks >= 6
    async with db.session(Scope.for_system()) as session:
        states = (await session.execute(select(KnowledgeSource.status))).scalars().all()
        assert set(states) == {"ready"}
    await _seed(db, BASE)
    assert await _counts(db) == (calendars, bases, sources, chunks)


async def test_lena_answers_from_the_practice_website_with_its_source(
    fresh_db: tuple[Database, Settings],
) -> None:
    db, settings = fresh_db
    await _seed(db, BASE)
    async with db.session(Scope.for_system()) as session:
        public_key = await demo_public_key(session)
    app = create_app(settings, database=db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        started = await http.post(
            f"/api/v1/public/agents/{public_key}/conversations", json={"consent": True}
        )
        assert started.status_code == 201, started.text
        token = started.json()["token"]
        answer = await http.post(
            f"/api/v1/public/conversations/{started.json()['conversation_id']}/messages",
            json={"text": "Wie lange hält ein Implantat?"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 200, answer.text
    [reply] = [m for m in answer.json()["messages"] if m["role"] == "assistant"]
    assert "zwanzig Jahre" in reply["content"]
    assert any(s["url"] == f"{BASE}/demo/site/implantate.html" for s in reply["sources"])
