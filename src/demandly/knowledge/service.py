"""Knowledge rules: bases and sources, replacing a source's chunks, and retrieval for the API
and the engine. Never commits: the request or the job owns the transaction (the multi-step
ingestion, which reports progress as it goes, lives in tasks.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from demandly.config import get_settings
from demandly.jobs.service import emit, enqueue
from demandly.kit.errors import Conflict, NotFound
from demandly.kit.ids import new_id
from demandly.kit.time import utcnow
from demandly.knowledge import embeddings, index
from demandly.knowledge import schemas as s
from demandly.knowledge.chunking import near_duplicate_key
from demandly.knowledge.documents import ChunkDraft
from demandly.knowledge.embeddings import Embedder
from demandly.knowledge.models import (
    KnowledgeBase,
    KnowledgeChunk,
    KnowledgeSource,
    SourceKind,
    SourceStatus,
)
from demandly.knowledge.repository import KnowledgeRepository
from demandly.tenancy.models import Client

INGEST_TASK = "knowledge.ingest"
READY_EVENT = "knowledge.source.ready"
FAILED_EVENT = "knowledge.source.failed"
# Candidates fetched from the index per passage asked for (duplicates are collapsed after).
CANDIDATES_PER_RESULT = 5
MIN_CANDIDATES = 25
# Dense search compares the question with every vector of the bases up to this many chunks.
DENSE_ALL_MAX = 2000
INGEST_ATTEMPTS = 3


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with its source, for answers with citations."""

    text: str
    score: float  # 0..1; below index.NOT_KNOWN_BELOW it does not answer the question
    title: str
    url: str | None
    source_id: str
    chunk_id: str
    heading: str | None = None

    @property
    def answers(self) -> bool:
        return self.score >= index.NOT_KNOWN_BELOW


# --- bases ---------------------------------------------------------------------------------


async def create_base(
    session: AsyncSession, client: Client, data: s.KnowledgeBaseCreate
) -> KnowledgeBase:
    base = KnowledgeBase(
        agency_id=client.agency_id, client_id=client.id, name=data.name, language=data.language
    )
    session.add(base)
    await session.flush()
    return base


async def get_base(session: AsyncSession, kb_id: str) -> KnowledgeBase:
    base = await KnowledgeRepository(session).base(kb_id)
    if base is None:
        raise NotFound("Knowledge base not found.")
    return base


async def update_base(
    session: AsyncSession, base: KnowledgeBase, data: s.KnowledgeBaseUpdate
) -> KnowledgeBase:
    for field, value in data.model_dump(exclude_unset=True).items():
        if getattr(base, field) != value:
            setattr(base, field, value)
    await session.flush()
    return await get_base(session, base.id)


async def delete_base(session: AsyncSession, base: KnowledgeBase) -> None:
    """The base, its sources and its chunks go (the database cascades; triggers clear the
    index)."""
    await session.delete(base)
    await session.flush()


# --- sources -------------------------------------------------------------------------------


async def add_source(
    session: AsyncSession,
    base: KnowledgeBase,
    data: s.TextSourceCreate
    | s.MarkdownSourceCreate
    | s.QASourceCreate
    | s.UrlSourceCreate
    | s.WebsiteSourceCreate,
    *,
    queue: bool = True,
) -> KnowledgeSource:
    """A source from JSON; ingested by a job (unless ``queue`` is false: the caller ingests
    it itself, as the CLI does)."""
    content: dict[str, Any] = {}
    url = None
    recrawl = None
    if isinstance(data, s.TextSourceCreate | s.MarkdownSourceCreate):
        content = {"text": data.text}
    elif isinstance(data, s.QASourceCreate):
        content = {"pairs": [[p.question, p.answer] for p in data.pairs]}
    else:
        url = data.url
        if isinstance(data, s.WebsiteSourceCreate):
            content = {"limits": data.limits.model_dump()}
            recrawl = data.recrawl_every_days
    source = KnowledgeSource(
        agency_id=base.agency_id,
        client_id=base.client_id,
        knowledge_base_id=base.id,
        kind=data.kind,
        title=data.title,
        url=url,
        content=content,
        recrawl_every_days=recrawl,
    )
    return await _queue_new(session, source, queue)


async def add_file(
    session: AsyncSession,
    base: KnowledgeBase,
    name: str,
    content_type: str | None,
    data: bytes,
    title: str | None = None,
    *,
    queue: bool = True,
) -> KnowledgeSource:
    """An uploaded file; kept with the source so that a refresh can read it again."""
    source = KnowledgeSource(
        agency_id=base.agency_id,
        client_id=base.client_id,
        knowledge_base_id=base.id,
        kind=SourceKind.FILE,
        title=title or name,
        file_name=name,
        file_type=content_type,
        file_data=data,
        content={},
    )
    return await _queue_new(session, source, queue)


async def _queue_new(
    session: AsyncSession, source: KnowledgeSource, queue: bool
) -> KnowledgeSource:
    session.add(source)
    await session.flush()
    if queue:
        await _enqueue_ingest(session, source)
    return source


async def _enqueue_ingest(session: AsyncSession, source: KnowledgeSource) -> None:
    await enqueue(
        session,
        INGEST_TASK,
        {"source_id": source.id},
        agency_id=source.agency_id,
        client_id=source.client_id,
        max_attempts=INGEST_ATTEMPTS,
    )


async def get_source(session: AsyncSession, base: KnowledgeBase, source_id: str) -> KnowledgeSource:
    source = await KnowledgeRepository(session).source(source_id)
    if source is None or source.knowledge_base_id != base.id:
        raise NotFound("Source not found.")
    return source


async def refresh_source(session: AsyncSession, source: KnowledgeSource) -> KnowledgeSource:
    """Read the source again; its chunks are replaced when the new ones are ready."""
    if source.status in (SourceStatus.QUEUED, SourceStatus.RUNNING):
        raise Conflict("The source is being read already.")
    source.status = SourceStatus.QUEUED
    source.error = None
    await session.flush()
    await _enqueue_ingest(session, source)
    return source


async def requeue_due_recrawls(session: AsyncSession) -> int:
    """Queue the website sources whose re-crawl is due (under the system scope)."""
    due = await KnowledgeRepository(session).due_recrawls(utcnow())
    for source in due:
        source.status = SourceStatus.QUEUED
        source.next_crawl_at = None
        await session.flush()
        await _enqueue_ingest(session, source)
    return len(due)


async def delete_source(session: AsyncSession, source: KnowledgeSource) -> None:
    await session.delete(source)
    await session.flush()


# --- chunks --------------------------------------------------------------------------------


async def replace_chunks(
    session: AsyncSession,
    source: KnowledgeSource,
    drafts: Sequence[ChunkDraft],
    vectors: Sequence[list[float]] | None = None,
) -> int:
    """Swap a source's chunks (with their vectors, if any) for new ones in the caller's
    transaction: searches see the old set or the new one, never a mix. Returns how many
    were indexed."""
    repo = KnowledgeRepository(session)
    await repo.delete_chunks(source.id)
    now = utcnow()
    rowids = await index.next_rowids(session, len(drafts))
    rows = [
        {
            "id": new_id(KnowledgeChunk.__id_prefix__),
            "created_at": now,
            "agency_id": source.agency_id,
            "client_id": source.client_id,
            "knowledge_base_id": source.knowledge_base_id,
            "source_id": source.id,
            "position": position,
            "title": (draft.title or source.title or "")[:500],
            "heading": draft.heading[:500] if draft.heading else None,
            "url": draft.url[:2000] if draft.url else None,
            "text": draft.text,
            "search_text": index.normalise(_indexed_text(draft)),
            "dedupe_key": near_duplicate_key(draft.text)[:64],
            "index_rowid": rowids[position] if rowids is not None else None,
            "embedding": vectors[position] if vectors is not None else None,
        }
        for position, draft in enumerate(drafts)
    ]
    await repo.insert_chunks(rows)
    return len(rows)


def _indexed_text(draft: ChunkDraft) -> str:
    """The title and heading are searched along with the text (unless the text starts with
    the heading already)."""
    parts = [draft.title]
    if draft.heading and not draft.text.startswith(draft.heading):
        parts.append(draft.heading)
    parts.append(draft.text)
    return "\n".join(p for p in parts if p)


async def mark_ready(
    session: AsyncSession, source: KnowledgeSource, chunks: int, failures: list[dict[str, str]]
) -> None:
    now = utcnow()
    source.status = SourceStatus.READY
    source.chunks_indexed = chunks
    source.failures = failures
    source.error = None
    source.finished_at = now
    if source.kind == SourceKind.WEBSITE and source.recrawl_every_days:
        source.next_crawl_at = now + timedelta(days=source.recrawl_every_days)
    await session.flush()
    await _emit(session, READY_EVENT, source, {"chunks_indexed": chunks})


async def mark_failed(session: AsyncSession, source: KnowledgeSource, reason: str) -> None:
    """The source could not be read; its chunks from a previous run stay searchable."""
    source.status = SourceStatus.FAILED
    source.error = reason[:1000]
    source.finished_at = utcnow()
    await session.flush()
    await _emit(session, FAILED_EVENT, source, {"error": source.error})


async def _emit(
    session: AsyncSession, event: str, source: KnowledgeSource, payload: dict[str, Any]
) -> None:
    await emit(
        session,
        event,
        agency_id=source.agency_id,
        client_id=source.client_id,
        entity_type="knowledge_source",
        entity_id=source.id,
        payload={"knowledge_base_id": source.knowledge_base_id, **payload},
    )


# --- retrieval -----------------------------------------------------------------------------


async def retrieve(
    session: AsyncSession, kb_ids: Sequence[str], query: str, k: int = 4
) -> list[Passage]:
    """The ``k`` best passages of the bases for a question, best first, duplicates collapsed.
    Only bases the session's scope can see take part. A passage scoring below
    ``index.NOT_KNOWN_BELOW`` does not answer the question. With an embeddings endpoint
    configured, the order fuses the full-text and the dense ranking (the score stays the
    full-text one: it says whether the question's words are answered)."""
    kb_ids = list(dict.fromkeys(kb_ids))
    if not kb_ids or k < 1:
        return []
    visible = list(await KnowledgeRepository(session).languages(kb_ids))
    groups = index.query_groups(query)
    if not visible or not groups:
        return []
    limit = max(MIN_CANDIDATES, k * CANDIDATES_PER_RESULT)
    embedder = Embedder.from_settings(get_settings())
    # Dense ranking needs a broad candidate set, not only the passages with every word.
    needed = limit if embedder is not None else k
    hits = await index.search(session, visible, groups, limit, needed=needed)
    best = max((hit.rank for hit in hits), default=0.0)

    def scored_chunk(chunk: KnowledgeChunk, rank: float) -> tuple[KnowledgeChunk, float]:
        return chunk, index.score(index.coverage(groups, chunk.search_text), rank, best)

    scored = {hit.chunk.id: (hit.chunk, index.score(hit.coverage, hit.rank, best)) for hit in hits}
    order = sorted(scored, key=lambda chunk_id: -scored[chunk_id][1])
    if embedder is not None:
        dense = await _dense_ranking(session, embedder, visible, query, scored, limit)
        if dense is not None:
            scored.update({chunk.id: scored_chunk(chunk, 0.0) for chunk in dense.extra})
            fused = embeddings.fuse(order, dense.ranking)
            order = sorted(fused, key=lambda chunk_id: -fused[chunk_id])
    return _collapse([scored[chunk_id] for chunk_id in order], k)


def _collapse(ranked: list[tuple[KnowledgeChunk, float]], k: int) -> list[Passage]:
    """The first ``k`` passages, one per near-duplicate fingerprint."""
    passages: list[Passage] = []
    seen: set[str] = set()
    for chunk, value in ranked:
        if chunk.dedupe_key in seen:
            continue
        seen.add(chunk.dedupe_key)
        passages.append(_passage(chunk, value))
        if len(passages) == k:
            break
    return passages


@dataclass(frozen=True)
class _Dense:
    ranking: list[str]  # chunk ids, best first
    extra: list[KnowledgeChunk]  # candidates the full-text search did not return


async def _dense_ranking(
    session: AsyncSession,
    embedder: Embedder,
    kb_ids: list[str],
    query: str,
    known: dict[str, tuple[KnowledgeChunk, float]],
    limit: int,
) -> _Dense | None:
    """Cosine ranking over the candidates: every chunk with a vector when the bases hold at
    most DENSE_ALL_MAX of them, else the full-text candidates. None without vectors or
    when the endpoint fails."""
    repo = KnowledgeRepository(session)
    candidates = await repo.chunks_with_embeddings(kb_ids, DENSE_ALL_MAX + 1)
    if len(candidates) > DENSE_ALL_MAX:
        candidates = await repo.chunks_with_embeddings(kb_ids, limit, ids=list(known))
    if not candidates:
        return None
    try:
        [vector] = await embedder.embed([query])
    except embeddings.EmbeddingsUnavailable:
        return None
    ranked = sorted(candidates, key=lambda pair: -embeddings.cosine(vector, pair[1]))[:limit]
    return _Dense(
        ranking=[chunk.id for chunk, _ in ranked],
        extra=[chunk for chunk, _ in ranked if chunk.id not in known],
    )


def _passage(chunk: KnowledgeChunk, score: float) -> Passage:
    return Passage(
        text=chunk.text,
        score=score,
        title=chunk.title,
        url=chunk.url,
        source_id=chunk.source_id,
        chunk_id=chunk.id,
        heading=chunk.heading,
    )


# --- views ---------------------------------------------------------------------------------


def source_view(source: KnowledgeSource) -> s.Source:
    return s.Source(
        id=source.id,
        knowledge_base_id=source.knowledge_base_id,
        kind=source.kind,
        title=source.title,
        url=source.url,
        file_name=source.file_name,
        status=source.status,  # type: ignore[arg-type]
        documents_done=source.documents_done,
        documents_total=source.documents_total,
        chunks_indexed=source.chunks_indexed,
        failures=[s.SourceFailure.model_validate(f) for f in source.failures or []],
        error=source.error,
        recrawl_every_days=source.recrawl_every_days,
        next_crawl_at=source.next_crawl_at,
        started_at=source.started_at,
        finished_at=source.finished_at,
        created_at=source.created_at,
        updated_at=source.updated_at,
    )


def search_view(passages: list[Passage]) -> s.SearchResult:
    return s.SearchResult(
        items=[
            s.SearchHit(
                chunk_id=p.chunk_id,
                source_id=p.source_id,
                score=p.score,
                text=p.text,
                title=p.title,
                heading=p.heading,
                url=p.url,
            )
            for p in passages
        ],
        not_known_below=index.NOT_KNOWN_BELOW,
    )
