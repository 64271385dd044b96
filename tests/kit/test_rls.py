"""PostgreSQL row-level security, the second wall behind the ORM scoping. The application
connects as a role without BYPASSRLS; each transaction sets ``app.agency_id`` locally."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.config import Settings
from demandly.kit.context import Scope
from demandly.kit.db import Database, create_engine
from demandly.tenancy.models import Client
from tests.factories import World

pytestmark = pytest.mark.usefixtures("world")


@pytest.fixture(autouse=True)
def _postgres_only(backend: str) -> None:
    if backend != "postgres":
        pytest.skip("row-level security is a PostgreSQL feature")


async def test_app_role_cannot_bypass_rls(db: Database) -> None:
    async with db.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT current_user, rolbypassrls, rolsuper FROM pg_roles "
                    "WHERE rolname = current_user"
                )
            )
        ).one()
    assert row.current_user == "demandly_app"
    assert row.rolbypassrls is False and row.rolsuper is False


async def test_a_connection_stays_in_the_app_role_whatever_its_transactions_do(
    settings: Settings, world: World
) -> None:
    """The role is the connection's own, not a setting of its first transaction: a first
    transaction that rolls back (a read, a refused login), ``RESET ROLE`` or ``RESET ALL``
    leave the connection in the app role, and row-level security in force."""
    engine = create_engine(settings.effective_database_url, app_role=settings.pg_app_role)
    seen: list[tuple[int, str, int]] = []
    try:
        for undo in ("ROLLBACK", "RESET ROLE", "RESET ALL"):
            async with engine.connect() as conn:
                if undo == "ROLLBACK":
                    await conn.execute(text("SELECT 1"))
                    await conn.rollback()
                else:
                    await conn.execute(text(undo))
                    await conn.commit()
            async with engine.connect() as conn:  # the same pooled connection
                row = (
                    await conn.execute(
                        text(
                            "SELECT pg_backend_pid() AS pid, current_user AS role,"
                            " (SELECT count(*) FROM clients) AS clients"
                        )
                    )
                ).one()
                seen.append((row.pid, row.role, row.clients))
    finally:
        await engine.dispose()
    assert len({pid for pid, _, _ in seen}) == 1
    assert [(role, clients) for _, role, clients in seen] == [(settings.pg_app_role, 0)] * 3


async def test_transaction_without_tenant_sees_no_rows(db: Database, world: World) -> None:
    async with db.engine.connect() as conn:
        count = (await conn.execute(text("SELECT count(*) FROM clients"))).scalar_one()
        agencies = (await conn.execute(text("SELECT count(*) FROM agencies"))).scalar_one()
    assert count == 0 and agencies == 0


async def test_agency_setting_reads_only_that_agency(db: Database, world: World) -> None:
    async with db.engine.connect() as conn:
        await conn.execute(
            text("SELECT set_config('app.agency_id', :a, true)"), {"a": world.a.agency.id}
        )
        owners = (await conn.execute(text("SELECT DISTINCT agency_id FROM clients"))).all()
        foreign = (
            await conn.execute(
                text("SELECT count(*) FROM clients WHERE id = :id"), {"id": world.b.clients[0].id}
            )
        ).scalar_one()
    assert [r.agency_id for r in owners] == [world.a.agency.id]
    assert foreign == 0


async def test_agency_setting_cannot_insert_for_another_agency(db: Database, world: World) -> None:
    async with db.engine.connect() as conn:
        await conn.execute(
            text("SELECT set_config('app.agency_id', :a, true)"), {"a": world.a.agency.id}
        )
        with pytest.raises((ProgrammingError, DBAPIError), match="row-level security"):
            await conn.execute(
                text(
                    "INSERT INTO clients (id, agency_id, name, timezone, locale, status, "
                    "created_at) VALUES ('cli_x', :b, 'x', 'UTC', 'en', 'active', now())"
                ),
                {"b": world.b.agency.id},
            )
        await conn.rollback()


async def test_setting_does_not_leak_to_the_next_transaction(db: Database, world: World) -> None:
    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        await conn.execute(
            text("SELECT set_config('app.agency_id', :a, true)"), {"a": world.a.agency.id}
        )
        assert (await conn.execute(text("SELECT count(*) FROM clients"))).scalar_one() >= 2
        await conn.commit()
        # Same pooled DBAPI connection, next transaction: the setting is gone.
        assert await conn.get_raw_connection() is raw
        setting = (
            await conn.execute(text("SELECT current_setting('app.agency_id', true)"))
        ).scalar_one()
        assert setting in (None, "")
        assert (await conn.execute(text("SELECT count(*) FROM clients"))).scalar_one() == 0


async def test_orm_session_sets_the_scope_for_rls(db: Database, world: World) -> None:
    """Even a statement that skips the ORM criteria sees only the scope's agency."""
    async with db.session(Scope.for_agency(world.a.agency.id)) as session:
        rows = await session.execute(
            select(Client.agency_id).distinct(), execution_options={"skip_tenant_scope": True}
        )
        assert list(rows.scalars()) == [world.a.agency.id]


async def test_every_tenant_table_has_row_level_security(db: Database) -> None:
    from demandly.models import Base

    tenant_tables = sorted(
        mapper.local_table.name
        for mapper in Base.registry.mappers
        if getattr(mapper.class_, "__tenant__", False)
    )
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT relname FROM pg_class WHERE relrowsecurity AND relkind = 'r'")
        )
        protected = {r.relname for r in rows}
    assert tenant_tables and set(tenant_tables) <= protected, set(tenant_tables) - protected


async def _settings(session: AsyncSession) -> tuple[str, str, str]:
    row = (
        await session.execute(
            text(
                "SELECT current_setting('app.agency_id', true) AS agency_ids,"
                " current_setting('app.system', true) AS system,"
                " current_setting('plan_cache_mode') AS plans"
            )
        )
    ).one()
    return row.agency_ids, row.system, row.plans


async def test_a_unit_of_work_carries_its_settings_from_its_begin_to_its_end(
    db: Database, world: World
) -> None:
    """The settings travel with the transaction's BEGIN (one round trip): every transaction of
    a session has them, a commit ends them, and a failed statement's rollback too."""
    agency = world.a.agency.id
    async with db.session(Scope.for_agency(agency)) as session:
        assert await _settings(session) == (agency, "off", "force_custom_plan")
        await session.commit()
        assert await _settings(session) == (agency, "off", "force_custom_plan")
        with pytest.raises(DBAPIError):
            await session.execute(text("SELECT 1 / 0"))
        await session.rollback()
        rows = await session.execute(
            select(Client.agency_id).distinct(), execution_options={"skip_tenant_scope": True}
        )
        assert list(rows.scalars()) == [agency]
    async with db.engine.connect() as conn:  # the pooled connection, without the session
        assert (await conn.execute(text("SELECT count(*) FROM clients"))).scalar_one() == 0


async def test_the_settings_travel_with_begin_not_in_a_statement_of_their_own(
    db: Database, world: World, sent: list[str]
) -> None:
    async with db.session(Scope.for_agency(world.a.agency.id)) as session:
        await session.execute(text("SELECT 1"))
        await session.commit()
    assert sent == ["SELECT 1"]


async def test_a_visitors_turn_may_reuse_plans_and_nothing_else_does(db: Database) -> None:
    system = Scope.for_system()
    async with db.session(system, reuse_plans=True) as session:
        assert await _settings(session) == ("", "on", "auto")
    async with db.session(system) as session:
        assert await _settings(session) == ("", "on", "force_custom_plan")


async def test_settings_that_cannot_travel_with_begin_are_set_on_their_own(
    db: Database, world: World, sent: list[str]
) -> None:
    """A value the BEGIN message cannot carry as a literal (a quote) still reaches the
    transaction, as a parameter of a statement of its own."""
    odd = "agc_'; SELECT 1; --"
    scope = Scope(grants={odd: None, world.a.agency.id: None})
    async with db.session(scope) as session:
        agency_ids, _, _ = await _settings(session)
        owners = await session.execute(
            select(Client.agency_id).distinct(), execution_options={"skip_tenant_scope": True}
        )
        assert list(owners.scalars()) == [world.a.agency.id]
    assert agency_ids == ",".join(sorted([odd, world.a.agency.id]))
    assert "set_config" in sent[0]
