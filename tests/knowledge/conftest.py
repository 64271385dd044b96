"""Helpers of the knowledge tests: bases and sources made through the API, ingestion run by a
real worker, and the rows each table holds."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from demandly.jobs.worker import Worker
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.knowledge import index
from demandly.knowledge.models import KnowledgeBase, KnowledgeChunk, KnowledgeSource
from tests.factories import Tenant, make_tenant

API = "/api/v1"


@pytest.fixture
async def tenant(db: Database) -> Tenant:
    """A tenant of the test's own, so counts and searches see only its rows."""
    return await make_tenant(db)


async def create_base(
    client: httpx.AsyncClient, tenant: Tenant, language: str = "de", client_index: int = 0
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/knowledge-bases",
        json={
            "client_id": tenant.clients[client_index].id,
            "name": f"Wissen {language}",
            "language": language,
        },
        headers=tenant.headers("agency_owner"),
    )
    assert response.status_code == 201, response.text
    return response.json()


async def add_source(
    client: httpx.AsyncClient, tenant: Tenant, kb_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/knowledge-bases/{kb_id}/sources", json=body, headers=tenant.headers("agency_owner")
    )
    assert response.status_code == 201, response.text
    return response.json()


async def upload(
    client: httpx.AsyncClient,
    tenant: Tenant,
    kb_id: str,
    name: str,
    data: bytes,
    content_type: str = "application/octet-stream",
) -> httpx.Response:
    return await client.post(
        f"{API}/knowledge-bases/{kb_id}/sources",
        files={"file": (name, data, content_type)},
        headers=tenant.headers("agency_owner"),
    )


async def run_jobs(db: Database) -> int:
    """Run every due job (ingestion included) to the end: however many other tests left due
    in the shared database, not only the first thousand."""
    worker, total, batch = Worker(db, name="knowledge-tests"), 0, 1000
    while (ran := await worker.run_until_idle(max_jobs=batch)) == batch:
        total += ran
    return total + ran


async def sources(client: httpx.AsyncClient, tenant: Tenant, kb_id: str) -> list[dict[str, Any]]:
    response = await client.get(
        f"{API}/knowledge-bases/{kb_id}/sources", headers=tenant.headers("agency_owner")
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def search(
    client: httpx.AsyncClient, tenant: Tenant, kb_id: str, query: str, k: int = 5
) -> list[dict[str, Any]]:
    response = await client.post(
        f"{API}/knowledge-bases/{kb_id}/search",
        json={"query": query, "k": k},
        headers=tenant.headers("client_viewer"),
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def row_counts(db: Database, agency_id: str, kb_ids: list[str]) -> dict[str, int]:
    """Rows of the agency in every knowledge table, and the full-text index rows of the bases
    (looked up in the index itself: an orphan index row counts)."""
    counts: dict[str, int] = {}
    async with db.session(Scope.for_system()) as session:
        for model in (KnowledgeBase, KnowledgeSource, KnowledgeChunk):
            statement = select(func.count()).select_from(model).where(model.agency_id == agency_id)
            counts[model.__tablename__] = int((await session.execute(statement)).scalar_one())
        counts["index"] = await index.index_rows(session, kb_ids)
    return counts
