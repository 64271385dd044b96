"""Knowledge bases of a client, their sources, and the chunks the search index holds.

A chunk's ``search_text`` is the normalised form of its text (see ``index.normalise``); the
full-text index is built from it: on PostgreSQL the ``tsv`` column (``simple`` config, GIN), on
SQLite the FTS5 table ``knowledge_fts`` (created by the migration, not a model: a virtual table
has no place in the metadata), whose rowid each chunk keeps in ``index_rowid``. Triggers of
the migration keep both in step with the chunks.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Mapped, mapped_column

from demandly.kit.db import RecordModel, TenantMixin

# A text column on SQLite (left empty there), a tsvector on PostgreSQL.
SearchVector = Text().with_variant(postgresql.TSVECTOR(), "postgresql")


class SourceKind(StrEnum):
    TEXT = "text"
    MARKDOWN = "markdown"
    QA = "qa"
    FILE = "file"
    URL = "url"
    WEBSITE = "website"


class SourceStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    READY = "ready"
    FAILED = "failed"


class KnowledgeBase(RecordModel, TenantMixin):
    __tablename__ = "knowledge_bases"
    __id_prefix__ = "kb"

    client_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(5))


class KnowledgeSource(RecordModel, TenantMixin):
    __tablename__ = "knowledge_sources"
    __id_prefix__ = "ksrc"
    # Progress is bookkeeping of the ingestion job, not an edit by anyone.
    __audit_ignore__ = (
        "status",
        "documents_done",
        "documents_total",
        "chunks_indexed",
        "failures",
        "error",
        "started_at",
        "finished_at",
        "next_crawl_at",
    )

    client_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    knowledge_base_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("knowledge_bases.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))
    title: Mapped[str | None] = mapped_column(String(300), default=None)
    url: Mapped[str | None] = mapped_column(String(2000), default=None)
    # What the source was made from: pasted text, Q&A pairs, crawl limits (by kind).
    content: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # An uploaded file, kept so that a refresh can extract it again.
    file_name: Mapped[str | None] = mapped_column(String(300), default=None)
    file_type: Mapped[str | None] = mapped_column(String(200), default=None)
    file_data: Mapped[bytes | None] = mapped_column(LargeBinary, default=None, deferred=True)
    recrawl_every_days: Mapped[int | None] = mapped_column(Integer, default=None)
    next_crawl_at: Mapped[datetime | None] = mapped_column(default=None, index=True)

    status: Mapped[str] = mapped_column(String(10), default=SourceStatus.QUEUED)
    documents_done: Mapped[int] = mapped_column(Integer, default=0)
    documents_total: Mapped[int | None] = mapped_column(Integer, default=None)
    chunks_indexed: Mapped[int] = mapped_column(Integer, default=0)
    # [{"url" or "document", "reason"}] of pages or files that could not be read.
    failures: Mapped[list[Any]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(String(1000), default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class KnowledgeChunk(RecordModel, TenantMixin):
    """A passage of a source. Written and replaced in bulk by the ingestion: not audited (the
    source is), and no personal data of visitors."""

    __tablename__ = "knowledge_chunks"
    __id_prefix__ = "kch"
    __audited__ = False
    __table_args__ = (
        Index("ix_knowledge_chunks_tsv", "tsv", postgresql_using="gin"),
        Index("ix_knowledge_chunks_kb_dedupe", "knowledge_base_id", "dedupe_key"),
    )

    client_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    knowledge_base_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("knowledge_bases.id", ondelete="CASCADE")
    )
    source_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("knowledge_sources.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(500))
    heading: Mapped[str | None] = mapped_column(String(500), default=None)
    url: Mapped[str | None] = mapped_column(String(2000), default=None)
    text: Mapped[str] = mapped_column(Text)
    search_text: Mapped[str] = mapped_column(Text)
    dedupe_key: Mapped[str] = mapped_column(String(64))
    # SQLite: the chunk's row in knowledge_fts; PostgreSQL: unused.
    index_rowid: Mapped[int | None] = mapped_column(Integer, default=None, unique=True)
    # Filled by a trigger from search_text (PostgreSQL); never written by the application.
    tsv: Mapped[str | None] = mapped_column(SearchVector, deferred=True)
    # A dense vector (list of floats) when an embeddings endpoint is configured.
    embedding: Mapped[list[Any] | None] = mapped_column(
        JSON(none_as_null=True), default=None, deferred=True
    )
