"""Core statements on the session's connection (``kit.db.execute_core``), and the rows they
return made into the session's instances (``as_loaded``) as if the ORM had loaded them."""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from demandly.kit.context import Scope
from demandly.kit.db import Database, as_loaded, execute_core
from demandly.kit.ids import new_id
from demandly.kit.time import utcnow
from demandly.tenancy.models import Agency, Client
from tests.factories import World

CLIENTS = Client.__table__


async def test_a_core_statement_sees_the_session_s_pending_changes(
    db: Database, world: World
) -> None:
    async with db.session(Scope.for_agency(world.a.agency.id)) as session:
        client = Client(agency_id=world.a.agency.id, name="pending")
        session.add(client)
        found = await execute_core(session, select(CLIENTS.c.name).where(CLIENTS.c.id == client.id))
        assert found.scalar_one() == "pending"
        await session.rollback()


async def test_a_returned_row_becomes_the_session_s_instance(db: Database, world: World) -> None:
    first = world.a.clients[0]
    async with db.session(Scope.for_agency(world.a.agency.id)) as session:
        statement = select(CLIENTS).where(CLIENTS.c.id == first.id)
        row = (await execute_core(session, statement)).mappings().one()
        loaded = as_loaded(session, Client, row)
        assert loaded.name == first.name and loaded in session and not session.dirty
        assert await session.get(Client, first.id) is loaded
        # A later row of the same client refreshes the instance the session holds.
        again = as_loaded(session, Client, {**row, "name": "renamed"})
        assert again is loaded and loaded.name == "renamed" and not session.dirty
        # A change made meanwhile gives way to what the statement returned, as a load with
        # populate_existing would have it.
        loaded.timezone = "Europe/Vienna"
        assert session.dirty
        as_loaded(session, Client, {**row, "timezone": "Europe/Paris"})
        assert loaded.timezone == "Europe/Paris"
        assert not session.is_modified(loaded)  # nothing left for a flush to write
        await session.rollback()


# --- a statement run again goes straight to the driver (kit.prepared) --------------------

AGENCIES = Agency.__table__
AGENCY_BY_ID = select(AGENCIES).where(AGENCIES.c.id == bindparam("agency_id"))
RENAME_CLIENT = (
    update(CLIENTS)
    .where(CLIENTS.c.id == bindparam("client_id"))
    .values(name=bindparam("new_name"))
    .returning(CLIENTS.c.id, CLIENTS.c.name, CLIENTS.c.updated_at)
)
INSERT_CLIENT = insert(CLIENTS)
CLIENTS_BY_IDS = select(CLIENTS.c.id).where(CLIENTS.c.id.in_(bindparam("ids", expanding=True)))


async def test_a_statement_run_again_returns_what_sqlalchemy_returns(
    db: Database, world: World
) -> None:
    agency = world.a.agency
    async with db.session(Scope.for_system()) as session:
        connection = await session.connection()
        expected = (await connection.execute(AGENCY_BY_ID, {"agency_id": agency.id})).mappings()
        expected_row = dict(expected.one())
        for _ in range(3):
            found = await execute_core(session, AGENCY_BY_ID, {"agency_id": agency.id})
            row = dict(found.mappings().one())
            assert row == expected_row
            assert row["created_at"].tzinfo is not None  # UTCDateTime's own conversion
            assert isinstance(row["branding"], dict)
        none = await execute_core(session, AGENCY_BY_ID, {"agency_id": "agc_missing"})
        assert none.first() is None


async def test_a_statement_run_again_skips_sqlalchemy_s_cursor(
    db: Database, world: World, sent: list[str]
) -> None:
    statement = select(AGENCIES.c.name).where(AGENCIES.c.id == bindparam("agency_id"))
    async with db.session(Scope.for_system()) as session:
        names = [
            (await execute_core(session, statement, {"agency_id": world.a.agency.id})).scalar()
            for _ in range(3)
        ]
    assert names == [world.a.agency.name] * 3
    # The first run went SQLAlchemy's way (and planned the statement); the others did not.
    assert sum("FROM agencies" in s for s in sent) == 1


async def test_an_update_run_again_sets_the_onupdate_columns_and_returns_its_row(
    db: Database, world: World
) -> None:
    first, second = world.a.clients[:2]
    async with db.session(Scope.for_agency(world.a.agency.id)) as session:
        for client, name in ((first, "Praxis Eins"), (second, "Praxis Zwei"), (first, "Eins")):
            parameters = {"client_id": client.id, "new_name": name}
            row = (await execute_core(session, RENAME_CLIENT, parameters)).mappings().one()
            assert row["id"] == client.id and row["name"] == name
            assert row["updated_at"] is not None and row["updated_at"].tzinfo is not None
        names = await execute_core(
            session, select(CLIENTS.c.name).where(CLIENTS.c.id.in_([first.id, second.id]))
        )
        assert sorted(names.scalars()) == ["Eins", "Praxis Zwei"]
        await session.rollback()


def _client_row(agency_id: str, name: str) -> dict[str, object]:
    return {
        "id": new_id("cli"),
        "agency_id": agency_id,
        "name": name,
        "created_at": utcnow(),
    }


async def test_rows_written_in_one_statement_are_all_written_with_their_defaults(
    db: Database, world: World
) -> None:
    agency_id = world.a.agency.id
    async with db.session(Scope.for_agency(agency_id)) as session:
        batches = [[_client_row(agency_id, f"Batch {i}-{j}") for j in range(3)] for i in range(3)]
        for rows in batches:
            await execute_core(session, INSERT_CLIENT, rows)
        ids = [row["id"] for rows in batches for row in rows]
        found = await execute_core(
            session,
            select(CLIENTS.c.name, CLIENTS.c.timezone, CLIENTS.c.status).where(
                CLIENTS.c.id.in_(ids)
            ),
        )
        rows = found.all()
        assert len(rows) == 9
        # Python-side defaults of the columns left out, as SQLAlchemy fills them.
        assert {(r.timezone, r.status) for r in rows} == {("Europe/Berlin", "active")}
        await session.rollback()


async def test_a_duplicate_key_raises_integrity_error_and_the_session_rolls_back(
    db: Database, world: World
) -> None:
    agency_id = world.a.agency.id
    taken = world.a.clients[0].id
    for _ in range(3):  # the first run SQLAlchemy's way, the next ones planned
        async with db.session(Scope.for_agency(agency_id)) as session:
            row = {**_client_row(agency_id, "Duplicate"), "id": taken}
            with pytest.raises(IntegrityError):
                await execute_core(session, INSERT_CLIENT, row)
            await session.rollback()
            still = await execute_core(session, AGENCY_BY_ID, {"agency_id": agency_id})
            assert still.mappings().one()["id"] == agency_id


async def test_an_in_list_is_rendered_for_each_run(db: Database, world: World) -> None:
    clients = world.a.clients
    async with db.session(Scope.for_agency(world.a.agency.id)) as session:
        for count in (1, 2, 1):
            wanted = [c.id for c in clients[:count]]
            found = await execute_core(session, CLIENTS_BY_IDS, {"ids": wanted})
            assert sorted(found.scalars()) == sorted(wanted)
