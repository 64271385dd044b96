"""Deleting a source or a base leaves no rows behind, in any table or index."""

from __future__ import annotations

import httpx

from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.tenancy.models import Client
from tests.factories import Tenant
from tests.knowledge.conftest import API, add_source, create_base, row_counts, run_jobs, search

LONG_TEXT = "\n\n".join(
    f"Abschnitt {n}: Die Praxis bietet Leistung Nummer {n} mit ausführlicher Beratung an. " * 6
    for n in range(12)
)


async def filled_base(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, client_index: int = 0
) -> tuple[str, list[str]]:
    base = await create_base(client, tenant, client_index=client_index)
    ids = []
    for title in ("Eins", "Zwei"):
        source = await add_source(
            client, tenant, base["id"], {"kind": "text", "title": title, "text": LONG_TEXT}
        )
        ids.append(source["id"])
    await run_jobs(db)
    return base["id"], ids


async def test_deleting_a_source_removes_its_chunks_from_every_index(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    kb_id, (first, second) = await filled_base(client, tenant, db)
    before = await row_counts(db, tenant.agency.id, [kb_id])
    assert before["knowledge_chunks"] > 2 and before["index"] == before["knowledge_chunks"]

    response = await client.delete(
        f"{API}/knowledge-bases/{kb_id}/sources/{first}", headers=tenant.headers("agency_owner")
    )
    assert response.status_code == 204
    after = await row_counts(db, tenant.agency.id, [kb_id])
    assert after["knowledge_sources"] == 1
    assert after["knowledge_chunks"] == before["knowledge_chunks"] // 2
    assert after["index"] == after["knowledge_chunks"]
    hits = await search(client, tenant, kb_id, "Leistung Nummer 3 Beratung", k=50)
    assert hits and {h["source_id"] for h in hits} == {second}


async def test_deleting_a_base_leaves_no_rows(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    kb_id, _ = await filled_base(client, tenant, db)
    response = await client.delete(
        f"{API}/knowledge-bases/{kb_id}", headers=tenant.headers("agency_owner")
    )
    assert response.status_code == 204
    assert await row_counts(db, tenant.agency.id, [kb_id]) == {
        "knowledge_bases": 0,
        "knowledge_sources": 0,
        "knowledge_chunks": 0,
        "index": 0,
    }


async def test_a_purged_client_takes_its_index_rows_along(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    """Rows removed by the database's cascade (not by the knowledge service) leave the index
    too."""
    kb_id, _ = await filled_base(client, tenant, db, client_index=1)
    async with db.session(Scope.for_system()) as session:
        row = await session.get(Client, tenant.clients[1].id)
        await session.delete(row)
        await session.commit()
    counts = await row_counts(db, tenant.agency.id, [kb_id])
    assert counts["knowledge_chunks"] == 0 and counts["index"] == 0
