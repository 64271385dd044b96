"""SQLite runs each statement on the event loop's thread (kit/sqlite.py ``_InlineCursor``): results,
row counts, empty results and errors still behave as SQLAlchemy expects."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import exc, text

from demandly.kit import sqlite as kit_sqlite
from demandly.kit.db import Database


@pytest.fixture
async def sqlite_db(tmp_path: Path):  # type: ignore[no-untyped-def]
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'hop.db'}")
    yield database
    await database.dispose()


async def test_rows_counts_and_errors(sqlite_db: Database) -> None:
    async with sqlite_db.engine.begin() as connection:
        raw = await connection.get_raw_connection()
        assert isinstance(raw.dbapi_connection, kit_sqlite._InlineConnection)
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


async def _count_turns_of_the_loop(counter: list[int]) -> None:
    while True:
        counter[0] += 1
        await asyncio.sleep(0)


async def test_a_lock_held_by_another_process_is_waited_for_off_the_event_loop(
    sqlite_db: Database, tmp_path: Path
) -> None:
    async with sqlite_db.engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"))
    other = sqlite3.connect(tmp_path / "hop.db", isolation_level=None)  # "another process"
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t (name) VALUES ('theirs')")
    turns = [0]
    ticker = asyncio.create_task(_count_turns_of_the_loop(turns))
    asyncio.get_running_loop().call_later(0.2, other.commit)
    try:
        before = turns[0]
        async with sqlite_db.engine.begin() as connection:  # BEGIN IMMEDIATE waits here
            await connection.execute(text("INSERT INTO t (name) VALUES ('ours')"))
        waited_turns = turns[0] - before
    finally:
        ticker.cancel()
        other.close()
    assert waited_turns > 0  # the loop went on serving others while the write waited
    async with sqlite_db.engine.connect() as connection:
        names = (await connection.execute(text("SELECT name FROM t ORDER BY id"))).scalars()
        assert names.all() == ["theirs", "ours"]


async def test_a_statement_that_was_slow_runs_off_the_event_loop_next_time(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    heavy = text(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) "
        "SELECT count(*) FROM n"
    )
    turns = [0]
    ticker = asyncio.create_task(_count_turns_of_the_loop(turns))
    try:
        async with sqlite_db.engine.connect() as connection:
            await asyncio.sleep(0)
            monkeypatch.setattr(kit_sqlite, "INLINE_LIMIT_S", 3600.0)
            before = turns[0]
            assert (await connection.execute(heavy)).scalar() == 200000
            assert turns[0] == before  # fast enough: ran inline, the loop waited
            monkeypatch.setattr(kit_sqlite, "INLINE_LIMIT_S", 0.0)  # every run counts as slow
            for _ in range(2):  # slow twice in a row
                before = turns[0]
                assert (await connection.execute(heavy)).scalar() == 200000
                assert turns[0] == before  # still inline
            before = turns[0]
            assert (await connection.execute(heavy)).scalar() == 200000
            assert turns[0] > before  # ran in aiosqlite's thread: the loop went on
    finally:
        ticker.cancel()
        kit_sqlite._slow_statements.clear()
        kit_sqlite._slow_once.clear()


async def test_committed_rows_reach_the_database_file_from_a_thread(
    sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kit_sqlite, "CHECKPOINT_EVERY_COMMITS", 4)  # the 4th: "c"
    async with sqlite_db.engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"))
    for name in ("a", "b", "c"):
        async with sqlite_db.engine.begin() as connection:
            await connection.execute(text("INSERT INTO t (name) VALUES (:name)"), {"name": name})

    def rows_in_the_file_itself() -> int:
        # immutable=1 reads the database file and ignores the write-ahead log.
        uri = f"file:{tmp_path / 'hop.db'}?immutable=1"
        with closing(sqlite3.connect(uri, uri=True)) as reader:
            try:
                return int(reader.execute("SELECT count(*) FROM t").fetchone()[0])
            except sqlite3.OperationalError:  # the table is not in the file yet
                return 0

    for _ in range(500):  # the checkpoint runs in a worker thread: wait for it
        if rows_in_the_file_itself() == 3:
            break
        await asyncio.sleep(0.01)
    assert rows_in_the_file_itself() == 3


async def test_the_log_starts_over_while_the_process_keeps_writing(
    sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Copying the log (PASSIVE) alone never catches up with a process that keeps writing:
    what it appended meanwhile stays in the log, and a log never copied to its end never
    starts over. So after each copy, the process's next write waits for a RESTART first, and
    the log starts from its beginning. The copy is held until the test has written during it,
    so that the writes fall inside it however fast the thread runs."""
    monkeypatch.setattr(kit_sqlite, "CHECKPOINT_EVERY_COMMITS", 8)
    copied, go_on = threading.Event(), threading.Event()
    checkpoint = kit_sqlite._checkpoint

    def copy_held_open(path: str, mode: str) -> None:
        checkpoint(path, mode)
        if mode == "PASSIVE":
            copied.set()
            go_on.wait(30)

    monkeypatch.setattr(kit_sqlite, "_checkpoint", copy_held_open)
    database = tmp_path / "hop.db"

    async def write() -> None:
        async with sqlite_db.engine.begin() as connection:
            await connection.execute(text("INSERT INTO t (body) VALUES (randomblob(4000))"))

    async with sqlite_db.engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)"))
    for _ in range(8):  # the 8th commit starts the copy
        await write()
    assert await asyncio.to_thread(copied.wait, 30)
    for _ in range(20):  # written while the copy runs
        await write()
    go_on.set()
    (checkpointer,) = [c for c in kit_sqlite._checkpointers.values() if Path(c.path) == database]
    for _ in range(3000):  # the copy's end reaches the event loop
        if checkpointer.restart_due:
            break
        await asyncio.sleep(0.01)
    await write()

    def frames_in_the_log() -> int:
        with closing(sqlite3.connect(database)) as reader:
            return int(reader.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])

    wal = tmp_path / "hop.db-wal"
    # The log's header counts the times it started over (its checkpoint sequence number).
    assert int.from_bytes(wal.read_bytes()[12:16], "big") >= 1
    # Only the last write is in it (a few pages), not the 29 before it (60 or more).
    assert frames_in_the_log() <= 4
    async with sqlite_db.engine.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM t"))).scalar() == 29
