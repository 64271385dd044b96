"""Every query of the knowledge domain except the full-text search itself (index.py). The
session's scope filters tenant rows; bulk statements here select or name the ORM models, so
it applies to them too."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from demandly.knowledge.models import (
    KnowledgeBase,
    KnowledgeChunk,
    KnowledgeSource,
    SourceKind,
    SourceStatus,
)
from demandly.tenancy.models import Client, Status

# Bulk statements: the session holds no copies of these rows to keep in step.
_SYNC = {"synchronize_session": False}


class KnowledgeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- bases (a deleted client takes its bases out of sight at once)

    @staticmethod
    def bases(client_id: str | None = None) -> Select[Any]:
        statement = (
            select(KnowledgeBase)
            .join(Client, Client.id == KnowledgeBase.client_id)
            .where(Client.status != Status.DELETED)
        )
        if client_id is not None:
            statement = statement.where(KnowledgeBase.client_id == client_id)
        return statement

    async def base(self, kb_id: str) -> KnowledgeBase | None:
        statement = self.bases().where(KnowledgeBase.id == kb_id)
        statement = statement.execution_options(populate_existing=True)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def languages(self, kb_ids: Sequence[str]) -> dict[str, str]:
        """The visible bases among ``kb_ids``, with their language."""
        rows = await self.session.execute(_languages_statement(), {"kb_ids": list(kb_ids)})
        return {row.id: row.language for row in rows}

    # --- sources

    def sources(self, kb_id: str) -> Select[Any]:
        return select(KnowledgeSource).where(KnowledgeSource.knowledge_base_id == kb_id)

    async def source(
        self, source_id: str, *, with_file: bool = False, for_update: bool = False
    ) -> KnowledgeSource | None:
        statement = (
            select(KnowledgeSource)
            .where(KnowledgeSource.id == source_id)
            .execution_options(populate_existing=True)
        )
        if with_file:
            statement = statement.options(undefer(KnowledgeSource.file_data))
        if for_update:
            statement = statement.with_for_update()
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def update_source(self, source_id: str, **values: Any) -> None:
        """Progress of an ingestion, without loading the row."""
        await self.session.execute(
            update(KnowledgeSource)
            .where(KnowledgeSource.id == source_id)
            .values(**values)
            .execution_options(**_SYNC)
        )

    async def due_recrawls(self, now: datetime, limit: int = 100) -> list[KnowledgeSource]:
        statement = (
            select(KnowledgeSource)
            .where(
                KnowledgeSource.kind == SourceKind.WEBSITE,
                KnowledgeSource.next_crawl_at.is_not(None),
                KnowledgeSource.next_crawl_at <= now,
                KnowledgeSource.status.not_in([SourceStatus.QUEUED, SourceStatus.RUNNING]),
            )
            .order_by(KnowledgeSource.next_crawl_at)
            .limit(limit)
        )
        return list((await self.session.execute(statement)).scalars())

    # --- chunks

    async def delete_chunks(self, source_id: str) -> None:
        """Remove a source's chunks (the index follows by trigger)."""
        await self.session.execute(
            delete(KnowledgeChunk)
            .where(KnowledgeChunk.source_id == source_id)
            .execution_options(**_SYNC)
        )

    async def insert_chunks(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(insert(KnowledgeChunk), rows)

    async def count_chunks(self, kb_id: str | None = None, source_id: str | None = None) -> int:
        statement = select(func.count()).select_from(KnowledgeChunk)
        if kb_id is not None:
            statement = statement.where(KnowledgeChunk.knowledge_base_id == kb_id)
        if source_id is not None:
            statement = statement.where(KnowledgeChunk.source_id == source_id)
        return int((await self.session.execute(statement)).scalar_one())

    async def chunks_with_embeddings(
        self, kb_ids: Sequence[str], limit: int, ids: Sequence[str] | None = None
    ) -> list[tuple[KnowledgeChunk, list[float]]]:
        """Chunks of the bases (among ``ids``, if given) that carry a vector, at most
        ``limit``: dense search compares them in Python."""
        statement = (
            select(KnowledgeChunk, KnowledgeChunk.embedding)
            .where(
                KnowledgeChunk.knowledge_base_id.in_(list(kb_ids)),
                KnowledgeChunk.embedding.is_not(None),
            )
            .limit(limit)
        )
        if ids is not None:
            statement = statement.where(KnowledgeChunk.id.in_(list(ids)))
        rows = await self.session.execute(statement)
        return [(chunk, vector) for chunk, vector in rows.all()]


@cache
def _languages_statement() -> Select[Any]:
    """Built once: every search asks it first, and building it costs more than running it."""
    return (
        KnowledgeRepository.bases()
        .where(KnowledgeBase.id.in_(bindparam("kb_ids", expanding=True)))
        .with_only_columns(KnowledgeBase.id, KnowledgeBase.language)
    )
