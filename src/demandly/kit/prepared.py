"""Core statements run straight on the driver: SQLAlchemy compiles a statement once, and each
later run binds its parameters and runs it on the session's connection and transaction
without SQLAlchemy's cursor, execution context and async bridge, which cost about as much
again per statement as the driver's own work (a chat bench conversation: 46.8 → 40.1 M
instructions on PostgreSQL, 51.6 → 44.5 M on SQLite).

The driver's part is the dialect's: asyncpg's prepared statements (``kit.postgres``), SQLite's
inline cursor (``kit.sqlite``). What needs SQLAlchemy's machinery goes its way: a statement's
first run, an expanding ``IN`` list, a value computed at each run, a missing parameter,
``RETURNING`` of many rows, a connection either runner does not know.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy.engine import Connection, Dialect, IteratorResult, Result
from sqlalchemy.engine.result import SimpleResultMetaData
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql.base import Executable

from demandly.kit.postgres import run_on_asyncpg
from demandly.kit.sqlite import run_inline

# The dialect's runner: ``sql`` with each of the argument lists, the rows it returned; None,
# with nothing run, where it cannot run it.
Runner = Callable[[Any, Dialect, str, list[list[Any]], bool], Awaitable[list[Any] | None]]
_RUNNERS: dict[str, Runner] = {"postgresql": run_on_asyncpg, "sqlite": run_inline}


@dataclass(frozen=True)
class _Plan:
    """A statement compiled once for a dialect: its SQL, its parameters in the order the SQL
    takes them with their bound values and converters, the columns it returns and theirs."""

    sql: str
    names: tuple[str, ...]
    required: frozenset[str]
    bound: Mapping[str, Any]
    to_database: tuple[Callable[[Any], Any] | None, ...]
    prefetch: tuple[tuple[str, Callable[[], Any]], ...]
    metadata: SimpleResultMetaData | None
    from_database: tuple[tuple[int, Callable[[Any], Any]], ...]


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
        # A callable default takes the execution context (SQLAlchemy wraps one that takes
        # nothing); these run without one.
        prefetch.append(
            (column.key, (lambda v=value: v) if default.is_scalar else partial(value, None))
        )
    binds = {name: bind for bind, name in compiled.bind_names.items()}
    if any(bind.callable is not None for bind in binds.values()):
        return None  # a value computed at each run
    names = tuple(compiled.positiontup or ())
    processors = compiled._bind_processors
    result_columns = compiled._result_columns
    converters = (column[3]._cached_result_processor(dialect, None) for column in result_columns)
    return _Plan(
        sql=compiled.string,
        names=names,
        required=frozenset(name for name, bind in binds.items() if bind.required),
        bound={name: bind.value for name, bind in binds.items() if bind.value is not None},
        to_database=tuple(processors.get(name) for name in names),
        prefetch=tuple(prefetch),
        metadata=(
            SimpleResultMetaData([column[0] for column in result_columns])
            if result_columns
            else None
        ),
        from_database=tuple((i, c) for i, c in enumerate(converters) if c is not None),
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
    """``statement`` with ``parameters`` (one mapping, or a list of them for one statement
    run with each) on the session's connection, in its transaction, straight on the driver;
    its rows as SQLAlchemy would return them, its errors as SQLAlchemy raises them (an
    ``IntegrityError`` …). None, with nothing run, when it must go SQLAlchemy's way."""
    many = isinstance(parameters, list | tuple)
    rows_in = list(parameters) if many else [parameters or {}]
    dialect = session.bind.dialect
    runner = _RUNNERS.get(dialect.name)
    if runner is None or not rows_in:
        return None
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
    arguments = [_arguments(plan, row) for row in rows_in]
    try:
        records = await runner(
            connection.connection.dbapi_connection, dialect, plan.sql, arguments, many
        )
    except dialect.loaded_dbapi.Error as error:
        raise DBAPIError.instance(
            plan.sql, arguments, error, dialect.loaded_dbapi.Error, dialect=dialect
        ) from error
    return None if records is None else _result(plan, records)


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
    if plan.from_database:
        rows = [_converted(record, plan.from_database) for record in records]
    else:
        rows = [tuple(record) for record in records]
    return IteratorResult(plan.metadata, iter(rows))


def _converted(record: Any, converters: tuple[tuple[int, Callable[[Any], Any]], ...]) -> tuple:
    row = list(record)
    for index, convert in converters:
        row[index] = convert(row[index])
    return tuple(row)
