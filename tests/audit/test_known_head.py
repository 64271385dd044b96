"""Appending after the head this process wrote last, without reading it first, never forks a
chain when that guess is wrong: a rolled-back transaction or another process moved the head.
(SQLite: PostgreSQL links events inside the commit, where the head is read anyway.)"""

from __future__ import annotations

import pytest

from demandly.audit import chain as audit_chain
from demandly.audit.chain import PendingEvent
from demandly.audit.service import verify_chains
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.tenancy.models import Client
from tests.audit.helpers import ALICE, events_of
from tests.factories import make_agency


@pytest.fixture(autouse=True)
def _appending_in_python(db: Database) -> None:
    if db.dialect == "postgresql":
        pytest.skip("PostgreSQL links events inside the commit (audit_chain_queued)")


async def _add_client(db: Database, agency_id: str, name: str, *, commit: bool = True) -> None:
    async with db.session(Scope.for_agency(agency_id), ALICE) as session:
        session.add(Client(agency_id=agency_id, name=name))
        await session.flush()
        if commit:
            await session.commit()
        else:
            await session.rollback()


async def _assert_unbroken(db: Database, agency_id: str, length: int) -> None:
    events = await events_of(db, chain=agency_id)
    assert [e.seq for e in events] == list(range(1, length + 1))
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    [report] = await verify_chains(db, [agency_id])
    assert report.ok and report.events_checked == length


async def test_after_a_rolled_back_append_the_next_one_continues_the_stored_chain(
    db: Database,
) -> None:
    agency_id = (await make_agency(db, clients=0)).agency.id
    await _add_client(db, agency_id, "rolled back before its events were appended", commit=False)
    # Events are appended as the transaction commits; a commit can still fail after that.
    lost = PendingEvent(action="client.created", entity_type="client", agency_id=agency_id)
    async with db.session(Scope.for_agency(agency_id), ALICE) as session:
        connection = await session.connection()
        await connection.run_sync(audit_chain.append_events, [(ALICE, lost)])
        await session.rollback()
    assert audit_chain._last_heads[agency_id][0] == 2  # the guess is the lost append's head
    await _add_client(db, agency_id, "kept")
    await _assert_unbroken(db, agency_id, 2)


async def test_a_head_another_process_moved_is_read_again(db: Database) -> None:
    agency_id = (await make_agency(db, clients=0)).agency.id
    stale = audit_chain._last_heads[agency_id]
    await _add_client(db, agency_id, "written by another process")
    # That process's append left this one's guess behind.
    audit_chain._last_heads[agency_id] = stale
    await _add_client(db, agency_id, "written here")
    await _assert_unbroken(db, agency_id, 3)
    assert audit_chain._last_heads[agency_id][0] == 3


async def test_a_process_without_a_guess_reads_the_head(db: Database) -> None:
    agency_id = (await make_agency(db, clients=0)).agency.id
    audit_chain._last_heads.pop(agency_id)
    await _add_client(db, agency_id, "after a restart")
    await _assert_unbroken(db, agency_id, 2)
