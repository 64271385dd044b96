"""SQLite under the async engine: statements run on the event loop's thread (a local file
answers in microseconds; a trip to aiosqlite's thread costs more than most statements), with
what could stall the loop sent to a thread instead: waiting for another process's lock, a
statement that was slow lately, and moving the WAL into the database file."""

from __future__ import annotations

import asyncio
import collections
import logging
import sqlite3
import time
import weakref
from contextlib import closing
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

logger = logging.getLogger(__name__)

# How long a statement waits for a lock another process holds (a separate `demandly worker`,
# a CLI command) before it fails with "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000
# The inline cursor runs statements on the event loop's thread, not on the one aiosqlite
# opened the connection in.
SQLITE_CONNECT_ARGS = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}


class _Ran:
    """What a statement left on its cursor, taken before the cursor closed."""

    __slots__ = ("arraysize", "description", "lastrowid", "rowcount")

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self.description = cursor.description
        self.rowcount = cursor.rowcount
        self.lastrowid = cursor.lastrowid
        self.arraysize = cursor.arraysize


def _run_statement(
    connection: sqlite3.Connection, operation: str, parameters: Any, many: bool
) -> tuple[_Ran, list[Any]]:
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        else:
            cursor.execute(operation, () if parameters is None else parameters)
        rows = cursor.fetchall() if cursor.description else []
        return _Ran(cursor), rows
    finally:
        cursor.close()


def _is_busy(error: BaseException) -> bool:
    code = getattr(error, "sqlite_errorcode", 0) or 0
    return isinstance(error, sqlite3.OperationalError) and code & 0xFF == sqlite3.SQLITE_BUSY


def _waiting_for_locks(connection: sqlite3.Connection, function: Any, *args: Any) -> Any:
    """Runs in aiosqlite's thread: ``function`` with SQLite's busy handler on, so a lock held
    by another process is waited for there, never on the event loop."""
    connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    try:
        return function(*args)
    finally:
        connection.execute("PRAGMA busy_timeout=0")


async def _in_thread_waiting(adapt_connection: Any, function: Any, *args: Any) -> Any:
    """``function`` in aiosqlite's thread with the busy handler on (``_waiting_for_locks``),
    holding the adapter's mutex as its own calls do."""
    inner = adapt_connection._connection
    async with adapt_connection._execute_mutex:
        return await inner._execute(_waiting_for_locks, inner._conn, function, *args)


# A statement that ran longer than this on the event loop twice in a row runs in aiosqlite's
# thread for its next SLOW_STATEMENT_RUNS runs (then it gets another chance inline): a heavy
# search, an export or a purge must not hold up the loop (a phone call's audio, other
# requests). Twice, because one slow run of a quick statement happens when the process is
# preempted or waits for the GIL, and that would hold up the loop in either place.
INLINE_LIMIT_S = 0.002
SLOW_STATEMENT_RUNS = 100
_slow_once: set[str] = set()
_slow_statements: dict[str, int] = {}


def _note_run(operation: str, seconds: float) -> None:
    if seconds <= INLINE_LIMIT_S:
        _slow_once.discard(operation)
    elif operation not in _slow_once:
        if len(_slow_once) >= 1024:  # statements with expanded IN lists vary without end
            _slow_once.clear()
        _slow_once.add(operation)
    else:
        _slow_once.discard(operation)
        if len(_slow_statements) >= 1024:
            _slow_statements.clear()
        _slow_statements[operation] = SLOW_STATEMENT_RUNS


def _runs_in_thread(operation: str) -> bool:
    """Whether ``operation`` was slow lately (and counts this run down)."""
    left = _slow_statements.get(operation)
    if left is None:
        return False
    if left <= 1:
        del _slow_statements[operation]
    else:
        _slow_statements[operation] = left - 1
    return True


class _InlineCursor(AsyncAdapt_aiosqlite_cursor):
    """Runs each statement on the calling (event-loop) thread. A statement on a local SQLite
    file mostly takes microseconds, while a trip to aiosqlite's thread and back costs
    100-200 µs and two GIL hand-offs; the pool holds one connection, so nothing in this
    process competes for it. What could hold up the loop goes to aiosqlite's thread instead:
    a statement that finds the database locked by another process (the busy timeout is 0
    here; it is run again there with the busy handler on, ``_waiting_for_locks``), and a
    statement that was slow lately (``INLINE_LIMIT_S``, twice in a row). Plain (buffered)
    cursors only, as the adapter's are."""

    __slots__ = ()

    def __init__(self, adapt_connection: Any) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        self._run(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        self._run(operation, seq_of_parameters, many=True)

    def _run(self, operation: Any, parameters: Any, *, many: bool) -> None:
        try:
            ran, rows = await_(self._inline(operation, parameters, many))
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        self._cursor = ran  # type: ignore[assignment]
        self._rows = collections.deque(rows)

    async def _inline(self, operation: Any, parameters: Any, many: bool) -> tuple[_Ran, list[Any]]:
        # A coroutine (awaited through the greenlet like any driver call, which SQLAlchemy
        # checks for) that returns without giving the loop a turn unless it has to wait.
        connection = self._connection._conn
        if operation == BEGIN_WRITE:
            checkpointer = _checkpointers.get(self._connection)
            if checkpointer is not None and checkpointer.restart_due:
                await checkpointer.restart()
        if not _runs_in_thread(operation):
            began = time.perf_counter()
            try:
                return _run_statement(connection, operation, parameters, many)
            except sqlite3.OperationalError as error:
                if not _is_busy(error):
                    raise
            finally:
                _note_run(operation, time.perf_counter() - began)
        return await _in_thread_waiting(  # type: ignore[no-any-return]
            self._adapt_connection, _run_statement, connection, operation, parameters, many
        )

    @property
    def description(self) -> Any:
        return self._cursor.description if self._cursor is not None else None

    async def _async_soft_close(self) -> None:
        return None

    def close(self) -> None:
        self._rows.clear()


class _InlineConnection(AsyncAdapt_aiosqlite_connection):
    """Statements (``_InlineCursor``), COMMIT and ROLLBACK on the event loop's thread. A
    commit in WAL mode appends to the log and does not sync; SQLite's own checkpoint after a
    commit (copy the log into the database file, sync both: milliseconds, now and then) is
    switched off on this connection and done by ``_WalCheckpointer`` in a thread instead."""

    __slots__ = ()
    _cursor_cls = _InlineCursor

    def commit(self) -> None:
        if self._in_transaction():
            self._end_transaction(self._connection._conn.commit)
            checkpointer = _checkpointers.get(self._connection)
            if checkpointer is not None:
                checkpointer.committed()

    def rollback(self) -> None:
        # The pool rolls back every connection it gets back, mostly after a commit: nothing
        # to do then.
        if self._in_transaction():
            self._end_transaction(self._connection._conn.rollback)

    def _in_transaction(self) -> bool:
        connection = self._connection._connection
        return connection is not None and connection.in_transaction

    def _end_transaction(self, function: Any) -> None:
        try:
            await_(self._inline_or_waiting(function))
        except Exception as error:
            self._handle_exception(error)

    async def _inline_or_waiting(self, function: Any) -> None:
        try:
            return function()  # type: ignore[no-any-return]
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                raise
        await _in_thread_waiting(self, function)


# Every transaction begins with this statement (before it, the inline cursor lets a checkpoint
# finish: ``_WalCheckpointer``).
BEGIN_WRITE = "BEGIN IMMEDIATE"

# How many commits of this process go by between two checkpoints. A booking or a chat turn
# writes 10-30 pages, so the log holds a few MB at most before it is copied (SQLite's own
# default copies every 1,000 pages).
CHECKPOINT_EVERY_COMMITS = 64


# How long the second step of a checkpoint waits for another process's write to end.
CHECKPOINT_WAIT_MS = 1_000
# A log that grew past this (a large import, a reader that held it) is cut back to it when it
# starts over.
WAL_SIZE_LIMIT_BYTES = 64 * 1_048_576


class _WalCheckpointer:
    """Copies the WAL into the database file in a worker thread, on a connection of its own,
    every ``CHECKPOINT_EVERY_COMMITS`` commits, in two steps.

    PASSIVE first: it neither waits for nor blocks anyone and copies most of the log, while
    this process goes on writing. That alone never catches up with a process that keeps
    writing, and a log that is never copied to its end never starts over: it only grows (by
    15 MB a second under the chat benchmark). So then RESTART, before this process's next
    write transaction, which waits meanwhile (not the event loop): it copies the little
    appended since and leaves the log to start from its beginning."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.commits = 0
        self.running: asyncio.Future[Any] | None = None
        self.restart_due = False

    def committed(self) -> None:
        self.commits += 1
        if self.commits >= CHECKPOINT_EVERY_COMMITS and self.running is None:
            self.start()

    def start(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a commit outside the event loop: the next one starts it
            return
        self.commits = 0
        self.running = loop.run_in_executor(None, _checkpoint, self.path, "PASSIVE")
        self.running.add_done_callback(self._copied)

    def _copied(self, future: asyncio.Future[Any]) -> None:
        self.running = None
        if future.cancelled():
            return
        if future.exception() is not None:
            logger.warning("sqlite.checkpoint_failed", exc_info=future.exception())
        else:
            self.restart_due = True

    async def restart(self) -> None:
        self.restart_due = False
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, _checkpoint, self.path, "RESTART")
        except Exception:  # the log stays as it is; the next checkpoint tries again
            logger.warning("sqlite.checkpoint_failed", exc_info=True)


def _checkpoint(path: str, mode: str) -> None:
    with closing(sqlite3.connect(path, timeout=CHECKPOINT_WAIT_MS / 1000)) as connection:
        try:
            connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except sqlite3.OperationalError as error:
            if not _is_busy(error):  # busy: another process is checkpointing right now
                raise


_checkpointers: weakref.WeakKeyDictionary[Any, _WalCheckpointer] = weakref.WeakKeyDictionary()


def _database_file(cursor: Any) -> str | None:
    cursor.execute("PRAGMA database_list")
    files = {name: file for _, name, file in cursor.fetchall()}
    return files.get("main") or None  # "" for an in-memory or temporary database


def _inline_fits(dbapi_connection: Any) -> bool:
    """The inline cursor leans on private parts of SQLAlchemy's adapter and of aiosqlite; it
    is used only where they are as it expects, else the stock adapter runs (slower, same
    results)."""
    inner = getattr(dbapi_connection, "_connection", None)
    return (
        type(dbapi_connection) is AsyncAdapt_aiosqlite_connection
        and hasattr(dbapi_connection, "_execute_mutex")
        and hasattr(dbapi_connection, "_handle_exception")
        and callable(getattr(inner, "_execute", None))
        and isinstance(getattr(inner, "_conn", None), sqlite3.Connection)
    )


def configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        inline = _inline_fits(dbapi_connection)
        if inline:
            dbapi_connection.__class__ = _InlineConnection
        # Let us issue BEGIN ourselves (see below), then set the pragmas.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # Inline statements must not wait on the event loop (see _InlineCursor).
            cursor.execute(f"PRAGMA busy_timeout={0 if inline else SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            path = _database_file(cursor) if inline else None
            if path is not None:
                cursor.execute("PRAGMA wal_autocheckpoint=0")
                cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
                _checkpointers[dbapi_connection._connection] = _WalCheckpointer(path)
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: a deferred transaction that reads and then
        # writes fails at once with SQLITE_BUSY when another writer got in between.
        connection.exec_driver_sql(BEGIN_WRITE)


async def run_inline(
    adapted: Any, dialect: Any, sql: str, arguments: list[list[Any]], many: bool
) -> list[Any] | None:
    """``sql`` run with each of ``arguments`` by the inline cursor (``kit.prepared``): on the
    loop's thread, or in aiosqlite's when it must wait, as every statement here; None, with
    nothing run, outside a transaction or on the stock adapter. Errors come as the
    adapter's."""
    if type(adapted) is not _InlineConnection or not adapted._in_transaction():
        return None
    cursor = _InlineCursor(adapted)
    try:
        _, rows = await cursor._inline(sql, arguments if many else arguments[0], many)
    except Exception as error:
        adapted._handle_exception(error)
        raise
    return rows
