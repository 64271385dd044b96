"""Ingestion as jobs: progress, events, website crawls behind the SSRF guard, refresh that
replaces atomically, scheduled re-crawls."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from demandly.config import reset_settings_cache
from demandly.jobs.models import DomainEvent
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.kit.time import utcnow
from demandly.knowledge import service
from demandly.knowledge.models import KnowledgeSource
from demandly.knowledge.tasks import ingest
from tests.factories import Tenant
from tests.knowledge.conftest import API, add_source, create_base, run_jobs, search, sources
from tests.knowledge.site import LocalSite, serve_site


@pytest.fixture
def site() -> Iterator[LocalSite]:
    with serve_site() as local:
        yield local


@pytest.fixture
def loopback_allowed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The worker's settings allow-list loopback, as for a local test site only."""
    monkeypatch.setenv("DEMANDLY_FETCH_ALLOWED_NETWORKS", "127.0.0.0/8")
    reset_settings_cache()
    yield
    monkeypatch.delenv("DEMANDLY_FETCH_ALLOWED_NETWORKS")
    reset_settings_cache()


async def events_of(db: Database, source_id: str) -> list[str]:
    async with db.session(Scope.for_system()) as session:
        rows = await session.execute(
            select(DomainEvent.type).where(DomainEvent.entity_id == source_id)
        )
        return list(rows.scalars())


async def test_a_website_is_crawled_within_its_host_and_robots(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, site: LocalSite, loopback_allowed: None
) -> None:
    base = await create_base(client, tenant)
    source = await add_source(
        client,
        tenant,
        base["id"],
        {"kind": "website", "url": site.url("/"), "limits": {"max_pages": 12, "max_depth": 2}},
    )
    await run_jobs(db)
    [done] = await sources(client, tenant, base["id"])
    assert done["status"] == "ready", done
    assert 2 <= done["documents_done"] <= 12 and done["chunks_indexed"] >= done["documents_done"]
    assert not site.was_requested("/private/intern")
    hits = await search(client, tenant, base["id"], "Was kostet die Zahnreinigung?")
    assert hits and hits[0]["url"].startswith(site.base_url)
    assert "Dienstplan" not in str(
        await search(client, tenant, base["id"], "Dienstplan Zugangsdaten")
    )
    assert await events_of(db, source["id"]) == [service.READY_EVENT]


async def test_without_the_allow_list_loopback_is_refused(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, site: LocalSite
) -> None:
    base = await create_base(client, tenant)
    source = await add_source(client, tenant, base["id"], {"kind": "url", "url": site.url("/")})
    await run_jobs(db)
    [failed] = await sources(client, tenant, base["id"])
    assert failed["status"] == "failed" and failed["chunks_indexed"] == 0
    assert failed["error"]
    assert site.requested == []
    assert await events_of(db, source["id"]) == [service.FAILED_EVENT]


async def test_a_single_page_is_read(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, site: LocalSite, loopback_allowed: None
) -> None:
    base = await create_base(client, tenant, "en")
    await add_source(client, tenant, base["id"], {"kind": "url", "url": site.url("/en/services")})
    await run_jobs(db)
    [done] = await sources(client, tenant, base["id"])
    assert done["status"] == "ready" and done["documents_done"] == 1
    hits = await search(client, tenant, base["id"], "Do you handle emergencies?")
    assert hits and hits[0]["url"] == site.url("/en/services")


async def test_refresh_replaces_the_chunks_in_one_step(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, site: LocalSite, loopback_allowed: None
) -> None:
    site.add(
        "/angebot",
        "<html><body><main><h1>Angebot</h1><p>Kontrolle kostet 30 €.</p></main></body></html>",
    )
    base = await create_base(client, tenant)
    source = await add_source(
        client, tenant, base["id"], {"kind": "url", "url": site.url("/angebot")}
    )
    await run_jobs(db)
    assert (
        "30 €" in (await search(client, tenant, base["id"], "Was kostet die Kontrolle?"))[0]["text"]
    )

    site.add(
        "/angebot",
        "<html><body><main><h1>Angebot</h1><p>Kontrolle kostet 35 €.</p></main></body></html>",
    )
    refresh = await client.post(
        f"{API}/knowledge-bases/{base['id']}/sources/{source['id']}/refresh",
        headers=tenant.headers("agency_owner"),
    )
    assert refresh.status_code == 202
    # Until the new chunks are in, the old ones answer.
    assert (
        "30 €" in (await search(client, tenant, base["id"], "Was kostet die Kontrolle?"))[0]["text"]
    )
    await run_jobs(db)
    hits = await search(client, tenant, base["id"], "Was kostet die Kontrolle?")
    assert [h["text"] for h in hits if "Kontrolle" in h["text"]] == [hits[0]["text"]]
    assert "35 €" in hits[0]["text"]


async def test_a_failed_refresh_keeps_the_old_chunks(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, site: LocalSite, loopback_allowed: None
) -> None:
    site.add(
        "/team",
        "<html><body><main><h1>Team</h1><p>Dr. Sommer leitet die Praxis.</p></main></body></html>",
    )
    base = await create_base(client, tenant)
    source = await add_source(client, tenant, base["id"], {"kind": "url", "url": site.url("/team")})
    await run_jobs(db)
    site.remove("/team")
    await client.post(
        f"{API}/knowledge-bases/{base['id']}/sources/{source['id']}/refresh",
        headers=tenant.headers("agency_owner"),
    )
    await run_jobs(db)
    [failed] = await sources(client, tenant, base["id"])
    assert failed["status"] == "failed" and "404" in failed["error"]
    assert await search(client, tenant, base["id"], "Wer leitet die Praxis?")


async def test_progress_is_reported_while_reading(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, site: LocalSite, loopback_allowed: None
) -> None:
    base = await create_base(client, tenant)
    source = await add_source(
        client,
        tenant,
        base["id"],
        {"kind": "website", "url": site.url("/"), "limits": {"max_pages": 4}},
    )
    seen: list[tuple[int, int | None]] = []
    result = await ingest(
        db,
        Scope.for_agency(tenant.agency.id),
        source["id"],
        on_progress=lambda d, c: seen.append((d, c)),
    )
    assert result is not None and result.status == "ready"
    assert seen and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[-1][0] == result.documents <= 4


async def test_due_websites_are_crawled_again(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, site: LocalSite, loopback_allowed: None
) -> None:
    base = await create_base(client, tenant)
    source = await add_source(
        client,
        tenant,
        base["id"],
        {
            "kind": "website",
            "url": site.url("/de/leistungen"),
            "limits": {"max_pages": 1},
            "recrawl_every_days": 7,
        },
    )
    await run_jobs(db)
    [done] = await sources(client, tenant, base["id"])
    assert done["next_crawl_at"] is not None
    async with db.session(Scope.for_system()) as session:
        row = await session.get(KnowledgeSource, source["id"])
        assert row is not None
        row.next_crawl_at = utcnow() - timedelta(minutes=1)
        await session.commit()
        assert await service.requeue_due_recrawls(session) >= 1
        await session.commit()
    requested_before = len(site.requested)
    await run_jobs(db)
    assert len(site.requested) > requested_before
    [again] = await sources(client, tenant, base["id"])
    assert again["status"] == "ready" and again["next_crawl_at"] is not None
