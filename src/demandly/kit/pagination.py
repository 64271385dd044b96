"""Cursor pagination over time-sortable ids (newest first)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")
MAX_LIMIT = 200


@dataclass(frozen=True)
class PageParams:
    limit: int = 50
    cursor: str | None = None


def page_params(
    limit: int = Query(50, ge=1, le=MAX_LIMIT, description="Items per page"),
    cursor: str | None = Query(
        None,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",  # an id; a NUL byte would otherwise reach PostgreSQL
        description="`next_cursor` of the last page",
    ),
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


async def paginate(
    session: AsyncSession, statement: Select[Any], id_column: Any, params: PageParams
) -> tuple[list[Any], str | None]:
    """Rows of ``statement`` newest first, after ``params.cursor``; and the next cursor."""
    if params.cursor:
        statement = statement.where(id_column < params.cursor)
    statement = statement.order_by(id_column.desc()).limit(params.limit + 1)
    rows = list((await session.execute(statement)).scalars().all())
    if len(rows) > params.limit:
        rows = rows[: params.limit]
        return rows, _row_id(rows[-1])
    return rows, None


def _row_id(row: Any) -> str:
    return str(row.id)
