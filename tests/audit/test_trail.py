"""Every create, update and delete of an audited row leaves an audit event in the same
transaction; explicit events for actions that are not row changes."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from demandly.audit.chain import GENESIS_HASH, event_hash
from demandly.audit.models import PLATFORM_CHAIN, AuditHead
from demandly.audit.service import record, verify_chains
from demandly.kit.context import Actor, Scope
from demandly.kit.db import Database
from demandly.kit.errors import NotFound
from demandly.tenancy.models import Agency, Client, User
from tests.audit.helpers import ALICE, events_of, fields_of
from tests.factories import make_agency, unique


async def test_creating_a_row_records_who_created_what(db: Database) -> None:
    tenant = await make_agency(db, clients=0)
    agency_id = tenant.agency.id
    async with db.session(Scope.for_agency(agency_id), ALICE) as session:
        client = Client(agency_id=agency_id, name="Zahnarzt Müller")
        session.add(client)
        await session.commit()

    [event] = await events_of(db, chain=agency_id, entity_id=client.id)
    assert event.action == "client.created"
    assert (event.entity_type, event.agency_id, event.client_id) == ("client", agency_id, client.id)
    assert (event.actor_kind, event.actor_id, event.actor_role) == (
        "user",
        "usr_alice",
        "agency_admin",
    )
    assert (event.ip, event.user_agent, event.request_id) == (
        "203.0.113.7",
        "pytest-agent/1.0",
        "req-audit-1",
    )
    assert event.changed_fields == []


async def test_an_update_records_the_changed_column_names_never_the_values(db: Database) -> None:
    tenant = await make_agency(db, clients=1)
    client = tenant.clients[0]
    async with db.session(Scope.for_agency(client.agency_id), ALICE) as session:
        loaded = await session.get(Client, client.id)
        assert loaded is not None
        loaded.name = "Secret New Name GmbH"
        loaded.privacy_policy_url = "https://example.test/privacy"
        await session.commit()

    [event] = await events_of(db, entity_id=client.id, action="client.updated")
    assert sorted(event.changed_fields) == ["name", "privacy_policy_url"]
    stored = " ".join(str(value) for value in fields_of(event).values())
    assert "Secret New Name" not in stored and "example.test/privacy" not in stored


async def test_setting_a_column_to_its_current_value_records_nothing(db: Database) -> None:
    tenant = await make_agency(db, clients=1)
    client = tenant.clients[0]
    async with db.session(Scope.for_agency(client.agency_id), ALICE) as session:
        loaded = await session.get(Client, client.id)
        assert loaded is not None
        loaded.name = loaded.name
        await session.commit()
    assert await events_of(db, entity_id=client.id, action="client.updated") == []


async def test_deleting_a_row_is_recorded(db: Database) -> None:
    tenant = await make_agency(db, clients=1)
    client = tenant.clients[0]
    async with db.session(Scope.for_agency(client.agency_id), ALICE) as session:
        loaded = await session.get(Client, client.id)
        await session.delete(loaded)
        await session.commit()
    [event] = await events_of(db, entity_id=client.id, action="client.deleted")
    assert (event.agency_id, event.client_id) == (client.agency_id, client.id)


async def test_a_rolled_back_change_leaves_no_audit_event(db: Database) -> None:
    tenant = await make_agency(db, clients=0)
    async with db.session(Scope.for_agency(tenant.agency.id), ALICE) as session:
        client = Client(agency_id=tenant.agency.id, name="Never committed")
        session.add(client)
        await session.flush()
        await session.rollback()
    assert await events_of(db, entity_id=client.id) == []


async def test_a_rolled_back_savepoint_drops_its_events_and_keeps_the_transactions(
    db: Database,
) -> None:
    tenant = await make_agency(db, clients=0)
    agency_id = tenant.agency.id
    async with db.session(Scope.for_agency(agency_id), ALICE) as session:
        kept = Client(agency_id=agency_id, name="Kept")
        session.add(kept)
        await session.flush()
        savepoint = await session.begin_nested()
        undone = Client(agency_id=agency_id, name="Undone")
        session.add(undone)
        inner = await session.begin_nested()
        deeper = Client(agency_id=agency_id, name="Released, then undone with its parent")
        session.add(deeper)
        await session.flush()
        await inner.commit()
        await savepoint.rollback()
        released = await session.begin_nested()
        after = Client(agency_id=agency_id, name="Released")
        session.add(after)
        await session.flush()
        await released.commit()
        await session.commit()

    events = await events_of(db, chain=agency_id)
    created = [e.entity_id for e in events if e.action == "client.created"]
    assert created == [kept.id, after.id]
    assert undone.id not in created and deeper.id not in created
    [report] = await verify_chains(db, [agency_id])
    assert report.ok


async def test_an_open_unit_of_work_does_not_hold_up_the_agencys_other_writers(
    db: Database,
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time anyway")
    tenant = await make_agency(db, clients=0)
    agency_id = tenant.agency.id
    async with db.session(Scope.for_agency(agency_id), ALICE) as slow:
        first = Client(agency_id=agency_id, name="Written first, committed last")
        slow.add(first)
        await slow.flush()
        # The chain's head was locked from the first event to the commit: this writer of the
        # same agency waited for the slow one (and here, where the slow one waits for it,
        # forever).
        async with db.session(Scope.for_agency(agency_id), ALICE) as quick:
            second = Client(agency_id=agency_id, name="Written second, committed first")
            quick.add(second)
            await asyncio.wait_for(quick.commit(), timeout=30)
        await slow.commit()

    events = await events_of(db, chain=agency_id)
    assert [e.entity_id for e in events][-2:] == [second.id, first.id]
    [report] = await verify_chains(db, [agency_id])
    assert report.ok and report.events_checked == len(events)


async def test_users_are_recorded_in_the_platform_chain(db: Database) -> None:
    async with db.session(Scope.for_system()) as session:
        user = User(email=f"{unique('u')}@example.test", name="Platform person")
        session.add(user)
        await session.commit()
    [event] = await events_of(db, entity_id=user.id)
    assert (event.chain, event.agency_id, event.action) == (PLATFORM_CHAIN, None, "user.created")
    assert event.actor_kind == "system"


async def test_a_new_agency_opens_its_own_chain(db: Database) -> None:
    tenant = await make_agency(db, clients=2)
    events = await events_of(db, chain=tenant.agency.id)
    assert [e.action for e in events] == ["agency.created", "client.created", "client.created"]
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[0].prev_hash == GENESIS_HASH
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]


async def test_each_hash_covers_the_event_and_its_predecessor(db: Database) -> None:
    tenant = await make_agency(db, clients=1)
    for event in await events_of(db, chain=tenant.agency.id):
        fields = fields_of(event)
        assert event_hash(fields) == event.hash
        assert event_hash({**fields, "prev_hash": "f" * 64}) != event.hash


async def test_events_written_in_one_flush_are_chained_in_order(db: Database) -> None:
    tenant = await make_agency(db, clients=0)
    agency_id = tenant.agency.id
    async with db.session(Scope.for_agency(agency_id), ALICE) as session:
        clients = [Client(agency_id=agency_id, name=f"c{i}") for i in range(5)]
        session.add_all(clients)
        await session.flush()
        agency = await session.get(Agency, agency_id)
        assert agency is not None
        agency.name = "Renamed"
        await session.delete(clients[0])
        await session.commit()

    events = await events_of(db, chain=agency_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.entity_id for e in events[1:6]] == [c.id for c in clients]
    assert {(e.action, e.entity_id) for e in events[6:]} == {
        ("agency.updated", agency_id),
        ("client.deleted", clients[0].id),
    }
    [report] = await verify_chains(db, [agency_id])
    assert report.ok and report.events_checked == len(events)
    async with db.session(Scope.for_system()) as session:
        head = await session.get(AuditHead, agency_id)
        assert head is not None and (head.seq, head.last_hash) == (len(events), events[-1].hash)


async def test_record_writes_an_explicit_event_with_the_sessions_actor(db: Database) -> None:
    tenant = await make_agency(db, clients=1)
    agency_id, client_id = tenant.agency.id, tenant.clients[0].id
    actor = Actor(kind="api_key", id="key_123", role="client_admin", request_id="r-77")
    async with db.session(Scope.for_client(agency_id, client_id), actor) as session:
        await record(
            session,
            action="api_key.revoked",
            entity_type="api_key",
            entity_id="key_999",
            agency_id=agency_id,
            client_id=client_id,
            changed_fields=["revoked_at"],
        )
        await session.commit()
    [event] = await events_of(db, entity_id="key_999")
    assert (event.action, event.chain, event.client_id) == ("api_key.revoked", agency_id, client_id)
    assert (event.actor_kind, event.actor_id, event.request_id) == ("api_key", "key_123", "r-77")
    assert event.changed_fields == ["revoked_at"]


async def test_record_without_an_agency_goes_to_the_platform_chain(db: Database) -> None:
    async with db.session(Scope(), Actor(kind="anonymous", ip="198.51.100.1")) as session:
        await record(session, action="user.login_failed", entity_type="user", entity_id="usr_x1")
        await session.commit()
    events = await events_of(db, entity_id="usr_x1")
    assert [(e.chain, e.agency_id, e.ip) for e in events] == [
        (PLATFORM_CHAIN, None, "198.51.100.1")
    ]


async def test_record_refuses_an_agency_outside_the_scope(db: Database) -> None:
    mine = await make_agency(db, clients=0)
    other = await make_agency(db, clients=0)
    async with db.session(Scope.for_agency(mine.agency.id)) as session:
        with pytest.raises(NotFound):
            await record(session, action="agency.exported", agency_id=other.agency.id)


async def test_record_comes_after_the_changes_made_before_it(db: Database) -> None:
    tenant = await make_agency(db, clients=0)
    agency_id = tenant.agency.id
    async with db.session(Scope.for_agency(agency_id), ALICE) as session:
        client = Client(agency_id=agency_id, name="first")
        session.add(client)
        await record(session, action="client.welcomed", entity_id=client.id, agency_id=agency_id)
        await session.commit()
    events = await events_of(db, chain=agency_id)
    assert [e.action for e in events][-2:] == ["client.created", "client.welcomed"]


async def test_audit_events_are_scoped_like_other_tenant_rows(db: Database) -> None:
    mine = await make_agency(db, clients=1)
    other = await make_agency(db, clients=1)
    from demandly.audit.models import AuditEvent

    async with db.session(Scope.for_agency(mine.agency.id)) as session:
        chains = set((await session.execute(select(AuditEvent.chain).distinct())).scalars())
    assert mine.agency.id in chains
    assert other.agency.id not in chains and PLATFORM_CHAIN not in chains
