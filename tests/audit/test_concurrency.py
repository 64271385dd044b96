"""Concurrent writers of one agency never fork its chain."""

from __future__ import annotations

import asyncio

from demandly.audit.service import verify_chains
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.tenancy.models import Client
from tests.audit.helpers import ALICE, events_of
from tests.factories import make_agency

WRITERS = 20


async def test_twenty_concurrent_transactions_make_one_unbroken_chain(db: Database) -> None:
    tenant = await make_agency(db, clients=0)
    agency_id = tenant.agency.id
    start = asyncio.Event()

    async def writer(i: int) -> None:
        async with db.session(Scope.for_agency(agency_id), ALICE) as session:
            await start.wait()
            session.add(Client(agency_id=agency_id, name=f"writer {i} a"))
            await session.flush()
            # Let the others run into the same chain before this transaction ends.
            await asyncio.sleep(0)
            session.add(Client(agency_id=agency_id, name=f"writer {i} b"))
            await session.commit()

    tasks = [asyncio.create_task(writer(i)) for i in range(WRITERS)]
    await asyncio.sleep(0)
    start.set()
    await asyncio.gather(*tasks)

    events = await events_of(db, chain=agency_id)
    expected = 1 + 2 * WRITERS  # agency.created, then two clients per writer
    assert [e.seq for e in events] == list(range(1, expected + 1))
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    [report] = await verify_chains(db, [agency_id])
    assert report.ok and report.events_checked == expected
