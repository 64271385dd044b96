"""Database plumbing: engine, sessions, base models and the one place tenant scoping lives.

Scoping works on every ORM statement, not by convention: ``do_orm_execute`` adds the session's
``Scope`` as criteria to each tenant model the statement touches, and refuses to run when the
session carries no scope. ``before_flush`` refuses writes of rows outside the scope. On
PostgreSQL, row-level security backs this up: each transaction sets ``app.agency_id``
transaction-locally from the same scope.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from functools import cache, lru_cache
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    MetaData,
    String,
    TypeDecorator,
    and_,
    event,
    false,
    inspect,
    or_,
    text,
    true,
)
from sqlalchemy.engine import Dialect, Result
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    ORMExecuteState,
    Session,
    declared_attr,
    make_transient_to_detached,
    mapped_column,
    with_loader_criteria,
)
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql import Executable
from sqlalchemy.sql.elements import BindParameter, ClauseElement, ColumnElement
from sqlalchemy.sql.util import find_tables

from demandly.kit.context import SYSTEM_ACTOR, Actor, Scope
from demandly.kit.errors import NotFound, UnscopedQuery
from demandly.kit.ids import new_id
from demandly.kit.postgres import begin_with_settings
from demandly.kit.prepared import run_prepared
from demandly.kit.sqlite import SQLITE_CONNECT_ARGS, configure_sqlite
from demandly.kit.time import ensure_utc, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC and always hands back timezone-aware datetimes (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = ensure_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return ensure_utc(value) if value is not None else None


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}

    # Tenant models (``__tenant__ = True``, usually via TenantMixin) answer to the scope;
    # audited models (``__audited__ = True``) write audit events on change. Not declared
    # here: a default on Base would shadow the mixin's in the MRO.


class RecordModel(Base):
    """A table with a prefixed, time-sortable string id and creation/update times."""

    __abstract__ = True
    __id_prefix__: ClassVar[str] = "rec"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime | None] = mapped_column(default=None, onupdate=utcnow)

    def __init__(self, **kwargs: Any) -> None:
        if "id" not in kwargs:  # not setdefault: it would make an id that goes unused
            kwargs["id"] = new_id(self.__id_prefix__)
        if "created_at" not in kwargs:
            kwargs["created_at"] = utcnow()
        super().__init__(**kwargs)


class TenantMixin:
    """Every business row: owned by an agency, and by one of its clients unless agency-level."""

    __tenant__: ClassVar[bool] = True
    __audited__: ClassVar[bool] = True

    @declared_attr
    def agency_id(cls) -> Mapped[str]:
        return mapped_column(String(40), ForeignKey("agencies.id", ondelete="CASCADE"), index=True)

    @declared_attr
    def client_id(cls) -> Mapped[str | None]:
        return mapped_column(
            String(40), ForeignKey("clients.id", ondelete="CASCADE"), index=True, nullable=True
        )

    @classmethod
    def tenant_criteria(cls, scope: Scope) -> ColumnElement[bool]:
        return grants_criteria(scope, cls.agency_id, cls.client_id)  # type: ignore[arg-type]

    def tenant_owner(self) -> tuple[str | None, str | None]:
        return self.agency_id, self.client_id  # type: ignore[attr-defined,return-value]


def grants_criteria(scope: Scope, agency_col: Any, client_col: Any | None) -> ColumnElement[bool]:
    """SQL for "row owned by a tenant this scope may see"."""
    conditions: list[ColumnElement[bool]] = []
    for agency_id, client_ids in scope.grants.items():
        agency = _TenantValue(None, agency_id, unique=True)
        if client_ids is None:
            conditions.append(agency_col == agency)
        elif client_col is not None and len(client_ids) == 1:
            # Not IN: an expanding parameter makes each run re-render the statement's SQL.
            (client_id,) = client_ids
            client = _TenantValue(None, client_id, unique=True)
            conditions.append(and_(agency_col == agency, client_col == client))
        elif client_col is not None and client_ids:
            clients = _TenantValue(None, sorted(client_ids), unique=True, expanding=True)
            conditions.append(and_(agency_col == agency, client_col.in_(clients)))
    return or_(*conditions) if conditions else false()


class _TenantValue(BindParameter[Any]):
    """A bound tenant id of the scope's criteria. The ORM applies the criteria as annotated
    copies of these parameters, which hash like the originals; each statement's run then
    compares copy and original in SQLAlchemy's parameter dicts, and a parameter's ``==``
    builds a SQL expression first (about 20 µs, five times per tenant model per statement).
    This ``==`` gives the answer that expression would (equal hashes) without building it.
    Only dicts and sets compare parameters: SQL compares the column, on the left."""

    inherit_cache = True
    __hash__ = BindParameter.__hash__

    def __eq__(self, other: object) -> bool:  # type: ignore[override]
        return isinstance(other, ClauseElement) and hash(self) == hash(other)


_M = TypeVar("_M", bound=Base)


def as_written(session: AsyncSession, model: type[_M], values: dict[str, Any]) -> _M:
    """The row a plain INSERT just wrote with ``values``, as an instance in the session, as if
    read back (what ``INSERT … RETURNING`` the model gives, without RETURNING's cost). Columns
    missing from ``values`` must have a fixed default (usually None), which the row holds."""
    # Made as the ORM makes a loaded row (its constructor would record each value as a
    # change, only for the history to be reset: two thirds of the cost).
    instance = inspect(model).class_manager.new_instance()
    instance.__dict__.update(_row_of(model, values))
    return _joined_as_loaded(session, instance)


def row_of_new(instance: _M) -> dict[str, Any]:
    """What an INSERT of a new (transient) instance writes: the values it was given, and the
    fixed default of each column it was not."""
    model = type(instance)
    defaults, needed = _fixed_defaults(model)
    columns = defaults.keys() | needed
    return _row_of(model, {k: v for k, v in instance.__dict__.items() if k in columns})


def written(session: AsyncSession, instance: _M, row: dict[str, Any]) -> _M:
    """A new instance whose ``row`` (``row_of_new``) a Core INSERT wrote, in the session as if
    read back: persistent, with nothing left for a flush to write."""
    instance.__dict__.update(row)
    return _joined_as_loaded(session, instance)


def _row_of(model: type[Base], values: dict[str, Any]) -> dict[str, Any]:
    defaults, needed = _fixed_defaults(model)
    missing = needed - values.keys()
    if missing:
        raise ValueError(f"{model.__name__} needs values for {', '.join(sorted(missing))}")
    return {**defaults, **values}


def _joined_as_loaded(session: AsyncSession, instance: _M) -> _M:
    make_transient_to_detached(instance)  # its history reset, as a loaded row's
    session.add(instance)
    return instance


def as_loaded(session: AsyncSession, model: type[_M], row: Mapping[str, Any]) -> _M:
    """The row a Core statement returned (every column, e.g. ``UPDATE … RETURNING``) as the
    session's instance of it, as if the ORM had loaded it: the instance the session holds
    takes the row's values (what ``populate_existing`` does), else a new one joins it."""
    sync = session.sync_session
    held = sync.identity_map.get(sync.identity_key(model, row["id"]))
    if held is None:
        return as_written(session, model, dict(row))
    state = inspect(held)
    if state.committed_state or state.expired_attributes or state.callables:
        for key, value in row.items():
            set_committed_value(held, key, value)
    else:
        # Nothing changed, expired or deferred: setting each value as committed would only
        # put it in the instance's dict (at 2 µs a column, against one update of the dict).
        held.__dict__.update(row)
    return held  # type: ignore[return-value]


async def execute_core(
    session: AsyncSession, statement: Executable, parameters: Any = None
) -> Result[Any]:
    """A Core statement on the session's connection, in its transaction (so under its
    row-level security settings), without the ORM's execution machinery (session events, ORM
    compile state). Tenant tables need their criteria written in (``ScopedQuery``) or, for
    writes, ``ensure_writable``. From its second run a statement goes straight to the driver
    (``kit.prepared``), unless the session holds changes to flush first."""
    if not session.autoflush or session.sync_session._is_clean():
        result = await run_prepared(session, statement, parameters)
        if result is not None:
            return result
    return await session.run_sync(_execute_on_connection, statement, parameters)


def _execute_on_connection(session: Session, statement: Executable, parameters: Any) -> Any:
    if session.autoflush:
        # As before any ORM statement: it sees the session's pending changes (a no-op when
        # there are none).
        session.flush()
    return session.connection().execute(statement, parameters)


async def load_core(
    session: AsyncSession, model: type[_M], statement: Executable, parameters: Any = None
) -> list[_M]:
    """The rows of ``model`` a Core statement selects (every column, e.g. a ``ScopedQuery``
    of ``select(Model)``), as the session's instances (``as_loaded``): an ORM select's result
    without the ORM's execution machinery."""
    result = await execute_core(session, statement, parameters)
    return [as_loaded(session, model, row) for row in result.mappings()]


def ensure_writable(session: AsyncSession | Session, agency_id: str, client_id: str | None) -> None:
    """Refuse a write of a tenant's row outside the session's scope, as a flush does (for rows
    written by Core statements, which no flush sees)."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    scope = session_scope(sync)
    if scope is None:
        raise UnscopedQuery("write of tenant data without a tenant scope")
    if not scope.allows(agency_id, client_id):
        # A foreign id in the input: answer like an unknown id.
        raise NotFound()


@cache
def _fixed_defaults(model: type[Base]) -> tuple[dict[str, Any], frozenset[str]]:
    """The model's columns with a fixed default (None if none), and those whose default is
    computed (``as_written`` cannot know what it would have been)."""
    defaults: dict[str, Any] = {}
    needed: set[str] = set()
    for attr in inspect(model).column_attrs:
        default = attr.columns[0].default
        if default is None or default.is_scalar:
            defaults[attr.key] = default.arg if default is not None else None
        else:
            needed.add(attr.key)
    return defaults, frozenset(needed)


# --- scope on the session -----------------------------------------------------------------


def session_scope(session: Session) -> Scope | None:
    return session.info.get("scope")


def session_actor(session: Session) -> Actor:
    return session.info.get("actor") or SYSTEM_ACTOR


async def set_scope(session: AsyncSession, scope: Scope, actor: Actor | None = None) -> None:
    """Give the unit of work its tenant scope (and the actor the audit trail records)."""
    unchanged = session.info.get("scope") == scope
    session.info["scope"] = scope
    if actor is not None:
        session.info["actor"] = actor
    # Only PostgreSQL has settings to keep in step (asked of the bind: getting the connection
    # costs a trip through the async bridge, on every visitor's turn), only when the scope
    # changed (the transaction's begin, or the last change, set them), and only while the
    # transaction can run statements: after a failed flush its rollback takes them anyway.
    if (
        not unchanged
        and _can_run_statements(session.sync_session)
        and session.get_bind().dialect.name == "postgresql"
    ):
        connection = await session.connection()
        await connection.execute(_SETTINGS_SQL, _settings_params(session.sync_session))


def _can_run_statements(session: Session) -> bool:
    transaction = session.get_transaction()
    return transaction is not None and transaction.is_active


@asynccontextmanager
async def system_scope(session: AsyncSession) -> AsyncIterator[None]:
    """Step out of the tenant's scope for rows of no tenant or a look-up across tenants (users
    and their credentials, a slug or domain that must be unique platform-wide): what the
    block changed is flushed inside it, and the session goes back to the caller's scope
    afterwards, also when the block raises."""
    previous = session_scope(session.sync_session)
    await set_scope(session, Scope.for_system())
    try:
        yield
        await session.flush()
    finally:
        await set_scope(session, previous or Scope())
        if previous is None:
            session.info.pop("scope", None)


# The transaction's settings: the tenant (row-level security) and how PostgreSQL plans the
# session's prepared statements (``Database.session``'s ``reuse_plans``).
_SETTINGS_NAMES = {
    "agency_ids": "app.agency_id",
    "system": "app.system",
    "plans": "plan_cache_mode",
}
_SETTINGS_SQL = text(
    "SELECT "
    + ", ".join(f"set_config('{name}', :{key}, true)" for key, name in _SETTINGS_NAMES.items())
)


def _settings_params(session: Session) -> dict[str, str]:
    scope = session_scope(session) or Scope()
    return {
        "agency_ids": ",".join(sorted(scope.agency_ids)),
        "system": "on" if scope.system else "off",
        "plans": "auto" if session.info.get("reuse_plans") else "force_custom_plan",
    }


@event.listens_for(Session, "after_begin")
def _apply_transaction_settings(session: Session, transaction: Any, connection: Any) -> None:
    # A savepoint begins inside a transaction that carries the settings already (set_scope
    # keeps them in step with the session's scope).
    if connection.dialect.name != "postgresql" or transaction.nested:
        return
    settings = _settings_params(session)
    if not begin_with_settings(connection, _SETTINGS_NAMES, settings):
        connection.execute(_SETTINGS_SQL, settings)


@event.listens_for(Session, "do_orm_execute")
def _scope_statement(state: ORMExecuteState) -> None:
    if state.is_column_load or state.execution_options.get("skip_tenant_scope"):
        return
    tenant_classes = [m.class_ for m in state.all_mappers if getattr(m.class_, "__tenant__", False)]
    if not tenant_classes:
        return
    scope = session_scope(state.session)
    if scope is None:
        names = ", ".join(sorted(c.__name__ for c in tenant_classes))
        raise UnscopedQuery(f"query on tenant data ({names}) without a tenant scope")
    if scope.system or state.is_insert:
        return
    grants = _grants_key(scope)
    state.statement = state.statement.options(
        *(_tenant_option(cls, grants) for cls in tenant_classes)
    )


GrantsKey = tuple[tuple[str, tuple[str, ...] | None], ...]


def _grants_key(scope: Scope) -> GrantsKey:
    return tuple(
        sorted(
            (agency_id, None if client_ids is None else tuple(sorted(client_ids)))
            for agency_id, client_ids in scope.grants.items()
        )
    )


@lru_cache(maxsize=4096)
def _tenant_option(cls: type, grants: GrantsKey) -> Any:
    """The criteria option for one tenant model under one set of grants. Built once per
    (model, grants) instead of per statement (about a third of the hook's cost): a pure
    function of its key (the grants themselves), so it can never hand one tenant's criteria to
    another."""
    return with_loader_criteria(cls, cls.tenant_criteria(_scope_of(grants)), include_aliases=True)  # type: ignore[attr-defined]


def _scope_of(grants: GrantsKey) -> Scope:
    return Scope(grants={agency: None if ids is None else frozenset(ids) for agency, ids in grants})


TenantFilter = Callable[[type], ColumnElement[bool]]
_E = TypeVar("_E", bound=Executable)


class ScopedQuery(Generic[_E]):
    """A hot query built once per set of grants, with its tenant criteria written in from the
    session's scope (each tenant model's ``tenant_criteria``, as the session hook applies
    them), so that it skips the hook and SQLAlchemy finds it compiled: a third to a half of
    the cost of the same query built per call and scoped by the hook.

    ``build(tenant)`` returns the statement, with ``bindparam``s for its arguments; it puts
    ``tenant(Model)`` into the WHERE for every tenant model it reads, or into the ON of an
    outer join. A statement that reads a tenant table ``build`` did not filter is refused
    when it is built (as an unscoped ORM query is), and so is a session without a scope."""

    def __init__(self, build: Callable[[TenantFilter], _E]) -> None:
        self._build = build
        self._built = lru_cache(maxsize=1024)(self._for_grants)

    def statement(self, session: AsyncSession | Session) -> _E:
        sync = session.sync_session if isinstance(session, AsyncSession) else session
        scope = session_scope(sync)
        if scope is None:
            raise UnscopedQuery("scoped query without a tenant scope")
        return self._built(None if scope.system else _grants_key(scope))

    def _for_grants(self, grants: GrantsKey | None) -> _E:
        scope = None if grants is None else _scope_of(grants)
        filtered: set[Any] = set()

        def tenant(model: type) -> ColumnElement[bool]:
            filtered.add(model.__table__)  # type: ignore[attr-defined]
            return true() if scope is None else model.tenant_criteria(scope)  # type: ignore[attr-defined]

        statement = self._build(tenant)
        unfiltered = sorted(
            table.name
            for table in find_tables(statement, include_joins=True, include_crud=True)
            if table in _tenant_tables() and table not in filtered
        )
        if unfiltered:
            raise UnscopedQuery(f"scoped query reads {', '.join(unfiltered)} without criteria")
        return statement.execution_options(skip_tenant_scope=True)  # type: ignore[return-value]


@cache
def _tenant_tables() -> frozenset[Any]:
    return frozenset(
        mapper.local_table
        for mapper in Base.registry.mappers
        if getattr(mapper.class_, "__tenant__", False)
    )


@event.listens_for(Session, "before_flush")
def _refuse_writes_outside_scope(session: Session, flush_context: Any, instances: Any) -> None:
    for obj in (*session.new, *session.dirty, *session.deleted):
        if not getattr(obj, "__tenant__", False):
            continue
        scope = session_scope(session)
        if scope is None:
            raise UnscopedQuery(f"write of {type(obj).__name__} without a tenant scope")
        agency_id, client_id = obj.tenant_owner()
        if not scope.allows(agency_id, client_id):
            # A foreign id in the input: answer like an unknown id.
            raise NotFound()


# --- engine and sessions ------------------------------------------------------------------


def create_engine(url: str, *, app_role: str | None = None, echo: bool = False) -> AsyncEngine:
    if url.startswith("sqlite"):
        # One connection: SQLite has one writer anyway, and queueing on the pool (asyncio)
        # is far cheaper than SQLite's busy handler, which sleeps in steps of up to 100 ms.
        # Units of work are short and never nest, so they take turns.
        engine = create_async_engine(
            url,
            echo=echo,
            connect_args=SQLITE_CONNECT_ARGS,
            pool_size=1,
            max_overflow=0,
            pool_timeout=60,
        )
        configure_sqlite(engine)
        return engine
    # No pre-ping: it costs a round trip per checkout; a connection PostgreSQL dropped fails
    # one request and is replaced. Recycling keeps connections younger than server timeouts.
    return create_async_engine(
        url,
        echo=echo,
        pool_size=20,
        max_overflow=20,
        pool_recycle=1800,
        connect_args={"server_settings": _connection_settings(app_role)},
    )


def _connection_settings(app_role: str | None) -> dict[str, str]:
    """What every PostgreSQL connection is opened with (its startup parameters).

    ``role``: the application role (no BYPASSRLS) even when the URL names the owner. As a
    startup parameter it is the session's own default, which no rollback, ``RESET ROLE`` or
    ``RESET ALL`` undoes. (A ``SET ROLE`` on connect ran inside the connection's first
    transaction, and a first transaction that rolled back took it away: the connection then
    ran as the owner, past row-level security, for the rest of its life.)

    ``plan_cache_mode``: asyncpg prepares every statement, and from its sixth run PostgreSQL
    may switch to a generic plan. Under row-level security the tenant filter's generic
    estimate made the dashboard's inbox lookups by primary key scan instead (60-180 ms
    instead of 1 ms); planning each run costs far less than that. A session that only looks
    rows up by key may reuse plans (``Database.session``), set per transaction."""
    settings = {"plan_cache_mode": "force_custom_plan"}
    if app_role:
        settings["role"] = app_role
    return settings


class UnitOfWork(AsyncSession):
    """The session every request and job works in. Leaving its ``async with`` closes it in
    place when it holds no connection (it committed or never began: closing it then only
    forgets its objects, with nothing to wait for), instead of in a shielded task of its own
    as SQLAlchemy does for every session, a task and two turns of the event loop (~130 µs)
    per unit of work. A session still in a transaction is closed SQLAlchemy's way: its
    connection's rollback and return to the pool must not be cut short by a cancellation."""

    async def __aexit__(self, type_: Any, value: Any, traceback: Any) -> None:
        if self.in_transaction():
            await super().__aexit__(type_, value, traceback)
        else:
            # No connection to give back, so no I/O: closed without the trip through the
            # async bridge (a greenlet) that ``close()`` takes.
            self.sync_session.close()


class Database:
    def __init__(self, url: str, *, app_role: str | None = None) -> None:
        self.url = url
        self.engine = create_engine(url, app_role=app_role)
        self.sessionmaker = async_sessionmaker(
            self.engine, class_=UnitOfWork, expire_on_commit=False
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(
        self, scope: Scope | None = None, actor: Actor | None = None, *, reuse_plans: bool = False
    ) -> AsyncSession:
        """A unit of work. ``reuse_plans``: PostgreSQL may plan each of its statements once and
        reuse the plan (a generic plan) instead of planning every run with its parameters (the
        connections' default, see ``create_engine``): for the units of work of a visitor's
        turn, which only look rows up by key and run thousands of times a minute (the chat
        bench on PostgreSQL: 207 → 244 turns/s)."""
        session = self.sessionmaker()
        if scope is not None:
            session.info["scope"] = scope
        if actor is not None:
            session.info["actor"] = actor
        if reuse_plans:
            session.info["reuse_plans"] = True
        return session

    async def dispose(self) -> None:
        await self.engine.dispose()
