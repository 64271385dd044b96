"""PostgreSQL under the async engine (asyncpg): a transaction's ``BEGIN`` and its settings
sent as one message.

SQLAlchemy's asyncpg adapter sends ``BEGIN`` on its own, when a transaction's first statement
runs, and every transaction then sets its row-level-security settings in a statement of its
own: two round trips before the first real one. ``begin_with_settings`` sends both in one
simple-protocol message instead and hands the adapter a transaction to commit or roll back,
as its own ``BEGIN`` would have: one round trip fewer for every unit of work (of the six that
an offline-engine turn makes when it captures nothing).

``run_on_asyncpg`` runs a statement ``kit.prepared`` compiled straight through the adapter's
prepared statements. Both lean on private parts of SQLAlchemy's asyncpg adapter (its
transaction, lock, prepared statements and error translation), as ``kit/sqlite.py`` does on
aiosqlite's; the tests of ``kit`` fail when an upgrade moves them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.util.concurrency import await_


class _Begun:
    """A transaction begun by ``begin_with_settings``: what the adapter calls to end it."""

    __slots__ = ("_connection",)

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def commit(self) -> None:
        await self._connection.execute("COMMIT")

    async def rollback(self) -> None:
        await self._connection.execute("ROLLBACK")


def begin_with_settings(
    connection: Connection, names: Mapping[str, str], values: Mapping[str, str]
) -> bool:
    """Begin ``connection``'s transaction and ``set_config`` each setting (``names``: key to
    setting name, ``values``: key to value) transaction-locally, in one round trip. False,
    with nothing sent, where that cannot be done so (the transaction has begun, it asks for
    another isolation level or access mode, a value is not plain text): the caller then sets
    them with a statement of its own."""
    adapted = connection.connection.dbapi_connection
    if (
        getattr(adapted, "_transaction", True) is not None
        or adapted.isolation_level is not None
        or adapted.readonly
        or adapted.deferrable
        or not all(map(_plain, (*names.values(), *values.values())))
    ):
        return False
    assignments = ", ".join(
        f"set_config('{name}', '{values[key]}', true)" for key, name in names.items()
    )
    await_(_begin(adapted, f"BEGIN; SELECT {assignments}"))
    return True


def _plain(text: str) -> bool:
    # Written into the SQL as a literal: no quote, backslash or NUL can end or bend it.
    return not any(c in text for c in "'\\\0")


async def _begin(adapted: Any, sql: str) -> None:
    async with adapted._execute_mutex:
        try:
            await adapted._connection.execute(sql)
        except Exception as error:
            if adapted._connection.is_in_transaction():
                # Begun, then failed: the adapter's rollback must end it.
                adapted._transaction = _Begun(adapted._connection)
            adapted._handle_exception(error)
        adapted._transaction = _Begun(adapted._connection)


# --- statements straight to asyncpg (``kit.prepared``) ---------------------------------------


async def run_on_asyncpg(
    adapted: Any, dialect: Dialect, sql: str, arguments: list[list[Any]], many: bool
) -> list[Any] | None:
    """``sql`` run with each of ``arguments`` as SQLAlchemy's adapter would run it (under its
    lock, in its prepared statements), its rows as asyncpg returns them; None, with nothing
    sent, when the adapter has not begun its transaction (it begins it with its first
    statement). Errors come as the adapter's."""
    if adapted._transaction is None:
        return None
    async with adapted._execute_mutex:
        try:
            prepared, _ = await adapted._prepare(sql, dialect._invalidate_schema_cache_asof)
            if many:
                await prepared.executemany(arguments)
                return []
            return await prepared.fetch(*arguments[0])  # type: ignore[no-any-return]
        except Exception as error:
            adapted._handle_exception(error)
            raise
