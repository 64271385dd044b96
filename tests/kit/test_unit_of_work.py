"""Leaving a unit of work (``kit.db.UnitOfWork``): a committed one closes in place, one still
in a transaction rolls back and gives its connection back, whichever way it is left."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from demandly.kit.context import Scope
from demandly.kit.db import Database, UnitOfWork
from demandly.tenancy.models import Client
from tests.factories import World


async def _names(db: Database, world: World) -> set[str]:
    async with db.session(Scope.for_agency(world.a.agency.id)) as session:
        return set((await session.scalars(select(Client.name))).all())


async def test_a_committed_unit_of_work_keeps_its_changes_and_its_objects_usable(
    db: Database, world: World
) -> None:
    async with db.session(Scope.for_agency(world.a.agency.id)) as session:
        assert isinstance(session, UnitOfWork)
        client = Client(agency_id=world.a.agency.id, name="kept")
        session.add(client)
        await session.commit()
    assert client not in session and client.name == "kept"
    assert db.engine.pool.checkedout() == 0
    assert "kept" in await _names(db, world)


async def test_a_unit_of_work_left_by_an_error_rolls_back(db: Database, world: World) -> None:
    with pytest.raises(RuntimeError):
        async with db.session(Scope.for_agency(world.a.agency.id)) as session:
            session.add(Client(agency_id=world.a.agency.id, name="never stored"))
            await session.flush()
            raise RuntimeError("the request failed")
    assert db.engine.pool.checkedout() == 0
    assert "never stored" not in await _names(db, world)


async def test_a_unit_of_work_cancelled_mid_transaction_rolls_back(
    db: Database, world: World
) -> None:
    flushed = asyncio.Event()

    async def request() -> None:
        async with db.session(Scope.for_agency(world.a.agency.id)) as session:
            session.add(Client(agency_id=world.a.agency.id, name="cancelled"))
            await session.flush()
            flushed.set()
            await asyncio.sleep(60)  # the visitor went away: the task is cancelled here

    task = asyncio.create_task(request())
    await flushed.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert db.engine.pool.checkedout() == 0
    assert "cancelled" not in await _names(db, world)
