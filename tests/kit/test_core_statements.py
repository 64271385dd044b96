"""Core statements on the session's connection (``kit.db.execute_core``), and the rows they
return made into the session's instances (``as_loaded``) as if the ORM had loaded them."""

from __future__ import annotations

from sqlalchemy import select

from demandly.kit.context import Scope
from demandly.kit.db import Database, as_loaded, execute_core
from demandly.tenancy.models import Client
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
