"""The periodic job ``knowledge.compact_index`` merges SQLite's full-text index into one
segment (searches read it several times faster) and changes no answer; on PostgreSQL it has
nothing to do and succeeds."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from demandly.jobs.service import enqueue
from demandly.kit.context import Scope
from demandly.kit.db import Database
from tests.factories import Tenant
from tests.knowledge.conftest import add_source, create_base, run_jobs, search

ROOMS = ("Keller", "Dachboden", "Wartezimmer", "Labor", "Garten", "Empfang")


async def _segments(db: Database) -> int:
    async with db.session(Scope.for_system()) as session:
        statement = text("SELECT count(DISTINCT segid) FROM knowledge_fts_idx")
        return int((await session.execute(statement)).scalar_one())


async def test_compacting_the_index_changes_no_answer(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    base = await create_base(client, tenant)
    for room in ROOMS:
        text_ = f"Der Tresor der Praxis steht im {room}. Im {room} gibt es auch Stühle."
        await add_source(client, tenant, base["id"], {"kind": "text", "title": room, "text": text_})
        # One ingestion, one transaction: on SQLite each adds a segment to the index.
        await run_jobs(db)
    questions = [f"Steht der Tresor im {room}?" for room in ROOMS] + ["Gibt es Stühle?"]
    before = [await search(client, tenant, base["id"], q) for q in questions]
    if db.dialect == "sqlite":
        assert await _segments(db) > 1
    # The periodic task's job, queued as the scheduler does but without its once-per-period
    # key: another test may already have had this period's job run in the shared database.
    async with db.session(Scope.for_system()) as session:
        await enqueue(session, "knowledge.compact_index", {})
        await session.commit()
    await run_jobs(db)
    assert [await search(client, tenant, base["id"], q) for q in questions] == before
    for hits, room in zip(before, ROOMS, strict=False):
        assert room in hits[0]["text"]
    if db.dialect == "sqlite":
        assert await _segments(db) == 1
