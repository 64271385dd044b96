"""Ingestion jobs: read a source (text, file, page or website), chunk it, and swap its chunks
in one transaction; and the scheduled re-crawl of websites.

``ingest`` owns its transactions (the worker's and the CLI's alike): progress is committed as
pages are read, so ``GET .../sources`` shows it while the job runs; the chunks are replaced in
one final transaction together with the source's new status and its event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from demandly.config import Settings, get_settings
from demandly.jobs.registry import JobContext, periodic, task
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.kit.logging import get_logger
from demandly.kit.time import utcnow
from demandly.knowledge import index, service
from demandly.knowledge.chunking import chunk_document
from demandly.knowledge.crawl import CrawlLimits, crawl
from demandly.knowledge.documents import ChunkDraft, Document, ExtractionError
from demandly.knowledge.embeddings import Embedder, EmbeddingsUnavailable
from demandly.knowledge.extract import (
    extract_file,
    extract_html,
    from_markdown,
    from_qa,
    from_text,
)
from demandly.knowledge.fetch import FetchError, fetch, fetch_policy
from demandly.knowledge.models import KnowledgeSource, SourceKind, SourceStatus
from demandly.knowledge.repository import KnowledgeRepository

log = get_logger(__name__)

HTML_TYPES = ("text/html", "application/xhtml+xml")
Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class _Snapshot:
    """What the ingestion needs of a source, read once before the slow part."""

    id: str
    kind: str
    title: str | None
    url: str | None
    content: dict[str, Any]
    file_name: str | None
    file_type: str | None
    file_data: bytes | None

    @classmethod
    def of(cls, source: KnowledgeSource) -> _Snapshot:
        return cls(
            id=source.id,
            kind=source.kind,
            title=source.title,
            url=source.url,
            content=dict(source.content or {}),
            file_name=source.file_name,
            file_type=source.file_type,
            file_data=source.file_data,
        )


@dataclass
class IngestResult:
    status: str
    chunks: int = 0
    documents: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None


class _Failed(Exception):
    """The whole source could not be read; the message is for the user."""


async def ingest(
    db: Database,
    scope: Scope,
    source_id: str,
    *,
    settings: Settings | None = None,
    on_progress: Progress | None = None,
) -> IngestResult | None:
    """Read, chunk and index one source; None if the source no longer exists."""
    settings = settings or get_settings()
    snapshot = await _start(db, scope, source_id)
    if snapshot is None:
        return None
    drafts: list[ChunkDraft] = []
    failures: list[dict[str, str]] = []
    done = 0
    error: str | None = None
    try:
        async for where, document, problem in _documents(snapshot, settings):
            if document is not None:
                drafts.extend(chunk_document(document))
                done += 1
            else:
                failures.append({"where": where, "reason": problem or "unreadable"})
            await _progress(db, scope, source_id, done, failures)
            if on_progress is not None:
                on_progress(done, len(drafts))
        if not drafts:
            error = failures[0]["reason"] if failures else "The source holds no readable text."
    except (_Failed, ExtractionError, FetchError) as exc:
        error = str(exc)
    vectors = await _vectors(drafts, settings) if error is None else None
    return await _finish(db, scope, source_id, drafts, vectors, failures, done, error)


async def _vectors(drafts: list[ChunkDraft], settings: Settings) -> list[list[float]] | None:
    """The chunks' vectors when an embeddings endpoint is configured and answers; else the
    chunks are indexed for full-text search only."""
    embedder = Embedder.from_settings(settings)
    if embedder is None or not drafts:
        return None
    try:
        return await embedder.embed([draft.text for draft in drafts])
    except EmbeddingsUnavailable:
        return None


async def _start(db: Database, scope: Scope, source_id: str) -> _Snapshot | None:
    async with db.session(scope) as session:
        repo = KnowledgeRepository(session)
        source = await repo.source(source_id, with_file=True)
        if source is None:
            return None
        source.status = SourceStatus.RUNNING
        source.started_at = utcnow()
        source.finished_at = None
        source.documents_done = 0
        source.documents_total = None if source.kind == SourceKind.WEBSITE else 1
        source.failures = []
        snapshot = _Snapshot.of(source)
        await session.commit()
    return snapshot


async def _progress(
    db: Database, scope: Scope, source_id: str, done: int, failures: list[dict[str, str]]
) -> None:
    async with db.session(scope) as session:
        await KnowledgeRepository(session).update_source(
            source_id, documents_done=done, failures=list(failures)
        )
        await session.commit()


async def _finish(
    db: Database,
    scope: Scope,
    source_id: str,
    drafts: list[ChunkDraft],
    vectors: list[list[float]] | None,
    failures: list[dict[str, str]],
    done: int,
    error: str | None,
) -> IngestResult | None:
    async with db.session(scope) as session:
        source = await KnowledgeRepository(session).source(source_id, for_update=True)
        if source is None:  # deleted while it was being read
            return None
        source.documents_done = done
        if error is not None:
            source.failures = failures
            await service.mark_failed(session, source, error)
            result = IngestResult(SourceStatus.FAILED, 0, done, failures, error)
        else:
            chunks = await service.replace_chunks(session, source, drafts, vectors)
            await service.mark_ready(session, source, chunks, failures)
            result = IngestResult(SourceStatus.READY, chunks, done, failures)
        await session.commit()
    log.info(
        "knowledge_source_ingested",
        source_id=source_id,
        status=result.status,
        chunks=result.chunks,
        documents=done,
        failures=len(failures),
    )
    return result


# --- reading the sources -------------------------------------------------------------------


async def _documents(
    source: _Snapshot, settings: Settings
) -> AsyncIterator[tuple[str, Document | None, str | None]]:
    """(where, document, why not) for each document of the source."""
    title = source.title or source.url or source.file_name or "Untitled"
    if source.kind == SourceKind.TEXT:
        yield title, from_text(source.content.get("text", ""), title), None
    elif source.kind == SourceKind.MARKDOWN:
        yield title, from_markdown(source.content.get("text", ""), title), None
    elif source.kind == SourceKind.QA:
        pairs = [(q, a) for q, a in source.content.get("pairs", [])]
        yield title, from_qa(pairs, title), None
    elif source.kind == SourceKind.FILE:
        name = source.file_name or "upload"
        data = source.file_data or b""
        document = await asyncio.to_thread(extract_file, name, data, source.file_type)
        yield name, document, None
    elif source.kind == SourceKind.URL:
        yield source.url or "", await _page(source.url or "", settings), None
    elif source.kind == SourceKind.WEBSITE:
        async for item in _site(source, settings):
            yield item
    else:
        raise _Failed(f"Unknown kind of source: {source.kind}.")


async def _page(url: str, settings: Settings) -> Document:
    page = await fetch(url, fetch_policy(settings))
    if page.status >= 400:
        raise _Failed(f"The page answered with HTTP {page.status}.")
    if page.content_type in HTML_TYPES:
        return await asyncio.to_thread(extract_html, page.body, page.url)
    name = urlsplit(page.url).path.rsplit("/", 1)[-1] or "page"
    return await asyncio.to_thread(extract_file, name, page.body, page.content_type)


async def _site(
    source: _Snapshot, settings: Settings
) -> AsyncIterator[tuple[str, Document | None, str | None]]:
    limits = source.content.get("limits") or {}
    crawl_limits = CrawlLimits(
        **{key: int(limits[key]) for key in ("max_pages", "max_depth") if key in limits}
    )
    async for result in crawl(source.url or "", fetch_policy(settings), crawl_limits):
        yield result.url, result.document, result.error


# --- jobs ----------------------------------------------------------------------------------


@task(service.INGEST_TASK)
async def ingest_source(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Runs in the source's agency scope, with transactions of its own (see ``ingest``)."""
    agency_id = ctx.job.agency_id
    scope = Scope.for_agency(agency_id) if agency_id else Scope.for_system()
    await ingest(ctx.db, scope, str(payload["source_id"]))


@periodic("knowledge.compact_index", every=timedelta(minutes=10))
async def compact_index(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Merge the full-text index after ingestions (``index.compact``)."""
    await index.compact(ctx.session)


@periodic("knowledge.recrawl", every=timedelta(hours=1))
async def recrawl_websites(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Queue the websites whose ``recrawl_every_days`` have passed."""
    await service.requeue_due_recrawls(ctx.session)
