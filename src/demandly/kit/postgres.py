"""PostgreSQL under the async engine (asyncpg): a transaction's ``BEGIN`` and its settings
sent as one message.

SQLAlchemy's asyncpg adapter sends ``BEGIN`` on its own, when a transaction's first statement
runs, and every transaction then sets its row-level-security settings in a statement of its
own: two round trips before the first real one. ``begin_with_settings`` sends both in one
simple-protocol message instead and hands the adapter a transaction to commit or roll back,
as its own ``BEGIN`` would have: one round trip fewer for every unit of work (of the six that
an offline-engine turn makes when it captures nothing).

``run_prepared`` runs a Core statement that ran before straight through asyncpg, on the
session's connection: SQLAlchemy compiles it once, and its cursor, execution context and
async bridge, which cost about as much again as asyncpg's own work per statement, are left
out. Both lean on private parts of SQLAlchemy's asyncpg adapter (its transaction, lock,
prepared statements and error translation), as ``kit/sqlite.py`` does on aiosqlite's; the
tests of ``kit`` fail when an upgrade moves them.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy.engine import Connection, Dialect, IteratorResult, Result
from sqlalchemy.engine.result import SimpleResultMetaData
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql.base import Executable
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


# --- statements straight to asyncpg -------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """A Core statement compiled once for asyncpg: its SQL, its parameters in ``$n`` order
    with their bound values and converters, the columns it returns and their converters."""

    sql: str
    names: tuple[str, ...]
    required: frozenset[str]
    bound: Mapping[str, Any]
    to_database: tuple[Callable[[Any], Any] | None, ...]
    prefetch: tuple[tuple[str, Callable[[], Any]], ...]
    metadata: SimpleResultMetaData | None
    from_database: tuple[Callable[[Any], Any] | None, ...]


_PlanKey = tuple[Dialect, frozenset[str]]
# A statement's plans by dialect and the parameter names it ran with (an INSERT's columns);
# None where SQLAlchemy must run it. A statement is planned on its second run: one built for
# a single run costs no compilation of ours on top of SQLAlchemy's.
_plans: weakref.WeakKeyDictionary[Executable, dict[_PlanKey, _Plan | None]] = (
    weakref.WeakKeyDictionary()
)


def _plan(statement: Executable, dialect: Dialect, keys: frozenset[str]) -> _Plan | None:
    plans = _plans.get(statement)
    if plans is None:
        _plans[statement] = {}
        return None
    if (dialect, keys) not in plans:
        plans[dialect, keys] = _compile(statement, dialect, keys)
    return plans[dialect, keys]


def _compile(statement: Executable, dialect: Dialect, keys: frozenset[str]) -> _Plan | None:
    compiled = statement.compile(dialect=dialect, column_keys=sorted(keys))
    if compiled.post_compile_params or compiled.literal_execute_params:
        return None  # its SQL is made again each run (expanding IN lists)
    prefetch = []
    for column in (*compiled.insert_prefetch, *compiled.update_prefetch):
        default = column.onupdate if column in compiled.update_prefetch else column.default
        if default is None or not (default.is_scalar or default.is_callable):
            return None
        value = default.arg
        prefetch.append(
            (column.key, (lambda v=value: v) if default.is_scalar else partial(value, None))
        )
    bind_names = {name: bind for bind, name in compiled.bind_names.items()}
    if any(bind.callable is not None for bind in bind_names.values()):
        return None  # a value computed at each run
    names = tuple(compiled.positiontup or ())
    processors = compiled._bind_processors
    bound = {name: bind.value for name, bind in bind_names.items() if bind.value is not None}
    result_columns = compiled._result_columns
    metadata = (
        SimpleResultMetaData([column[0] for column in result_columns]) if result_columns else None
    )
    from_database = tuple(
        column[3]._cached_result_processor(dialect, None) for column in result_columns
    )
    return _Plan(
        sql=compiled.string,
        names=names,
        required=frozenset(name for name, bind in bind_names.items() if bind.required),
        bound=bound,
        to_database=tuple(processors.get(name) for name in names),
        prefetch=tuple(prefetch),
        metadata=metadata,
        from_database=from_database,
    )


def _arguments(plan: _Plan, parameters: Mapping[str, Any]) -> list[Any]:
    values = {**plan.bound, **{key: make() for key, make in plan.prefetch}, **parameters}
    return [
        value if convert is None else convert(value)
        for value, convert in zip(map(values.get, plan.names), plan.to_database, strict=True)
    ]


async def run_prepared(
    session: AsyncSession, statement: Executable, parameters: Any
) -> Result[Any] | None:
    """``statement`` with ``parameters`` on the session's connection, straight through
    asyncpg's prepared statement, without SQLAlchemy's execution machinery (a cursor, an
    execution context, a trip through the async bridge: about as much again as asyncpg's
    own work). None when the statement needs that machinery: the caller then runs it
    SQLAlchemy's way."""
    many = isinstance(parameters, list)
    rows_in = parameters if many else [parameters or {}]
    if not rows_in:
        return None
    dialect = session.bind.dialect
    plan = _plan(statement, dialect, frozenset(rows_in[0]))
    if (
        plan is None
        or (many and plan.metadata is not None)  # RETURNING of many rows: SQLAlchemy batches
        or not all(plan.required <= row.keys() for row in rows_in)  # its error, with names
    ):
        return None
    connection = _held_connection(session.sync_session) or (
        (await session.connection()).sync_connection
    )
    adapted = connection.connection.dbapi_connection
    if adapted._transaction is None:
        return None  # the adapter begins its transaction with its first statement
    arguments = [_arguments(plan, row) for row in rows_in]
    # As the adapter's cursor runs a statement: under its lock, with its prepared statements.
    async with adapted._execute_mutex:
        try:
            prepared, _ = await adapted._prepare(plan.sql, dialect._invalidate_schema_cache_asof)
            if many:
                await prepared.executemany(arguments)
                records: list[Any] = []
            else:
                records = await prepared.fetch(*arguments[0])
        except Exception as error:
            raise _translated(dialect, plan.sql, arguments, adapted, error) from error
    return _result(plan, records)


def _held_connection(session: Session) -> Connection | None:
    """The connection the session's active transaction holds already: taken without the trip
    through the async bridge that ``AsyncSession.connection()`` makes to find it."""
    transaction = session.get_transaction()
    if transaction is None or not transaction.is_active:
        return None
    held = transaction._connections.get(session.bind)
    return None if held is None else held[0]


_NO_ROWS = SimpleResultMetaData([])


def _result(plan: _Plan, records: list[Any]) -> Result[Any]:
    if plan.metadata is None:
        return IteratorResult(_NO_ROWS, iter(()))
    convert = plan.from_database
    if any(convert):
        rows = [
            tuple(v if c is None else c(v) for v, c in zip(record, convert, strict=True))
            for record in records
        ]
    else:
        rows = [tuple(record) for record in records]
    return IteratorResult(plan.metadata, iter(rows))


def _translated(
    dialect: Dialect, sql: str, arguments: list[Any], adapted: Any, error: Exception
) -> Exception:
    """asyncpg's error as SQLAlchemy raises it (``IntegrityError`` …), as its adapter and
    connection would have made it."""
    try:
        adapted._handle_exception(error)
    except Exception as dbapi_error:
        if not isinstance(dbapi_error, dialect.loaded_dbapi.Error):
            return dbapi_error
        return DBAPIError.instance(
            sql, arguments, dbapi_error, dialect.loaded_dbapi.Error, dialect=dialect
        )
    return error
