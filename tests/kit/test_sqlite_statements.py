"""SQLite runs each statement in one hop to its thread (kit/db.py ``_OneHopCursor``): results,
row counts, empty results and errors still behave as SQLAlchemy expects."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import exc, text

from demandly.kit import db as kit_db
from demandly.kit.db import Database


@pytest.fixture
async def sqlite_db(tmp_path: Path):  # type: ignore[no-untyped-def]
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'hop.db'}")
    yield database
    await database.dispose()


async def test_rows_counts_and_errors(sqlite_db: Database) -> None:
    async with sqlite_db.engine.begin() as connection:
        raw = await connection.get_raw_connection()
        assert isinstance(raw.dbapi_connection, kit_db._OneHopConnection)
        await connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
        inserted = await connection.execute(
            text("INSERT INTO t (name) VALUES (:name)"), [{"name": "a"}, {"name": "b"}]
        )
        assert inserted.rowcount == 2
        updated = await connection.execute(text("UPDATE t SET name = name || 'x'"))
        assert updated.rowcount == 2
        returned = await connection.execute(
            text("UPDATE t SET name = 'c' WHERE name = 'ax' RETURNING id, name")
        )
        assert [tuple(r) for r in returned] == [(1, "c")]
        empty = await connection.execute(text("SELECT id, name FROM t WHERE id > 10"))
        assert list(empty.keys()) == ["id", "name"]
        assert empty.all() == []
        rows = await connection.execute(text("SELECT name FROM t ORDER BY id"))
        assert rows.scalars().all() == ["c", "bx"]
    async with sqlite_db.engine.begin() as connection:
        with pytest.raises(exc.IntegrityError):
            await connection.execute(text("INSERT INTO t (name) VALUES ('c')"))
