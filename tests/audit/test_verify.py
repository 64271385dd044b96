"""The chains are tamper-evident: editing or removing events behind the application's back (as
the database owner, or with the SQLite file in hand) is detected and the broken event named."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from demandly.audit.service import verify_chains
from demandly.config import Settings
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.tenancy.models import Client
from tests.audit.helpers import ALICE, events_of, fields_of, run_audit_cli
from tests.factories import make_agency


async def as_owner(settings: Settings, sql: str, **params: object) -> None:
    """Run SQL past the application's safeguards: the PostgreSQL owner (superuser), or plain
    SQLite on the file after dropping the append-only triggers."""
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        with sqlite3.connect(url.split(":///", 1)[1]) as conn:
            conn.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
            conn.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")
            conn.execute(sql, params)
        return
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(sql), params)
    finally:
        await engine.dispose()


async def agency_with_history(db: Database, changes: int = 4) -> str:
    tenant = await make_agency(db, clients=1)
    async with db.session(Scope.for_agency(tenant.agency.id), ALICE) as session:
        client = await session.get(Client, tenant.clients[0].id)
        assert client is not None
        for i in range(changes):
            client.name = f"name {i}"
            await session.flush()
        await session.commit()
    return tenant.agency.id


async def test_untouched_chains_verify(fresh_db: tuple[Database, Settings]) -> None:
    db, _ = fresh_db
    first = await agency_with_history(db)
    second = await agency_with_history(db)
    reports = {r.chain: r for r in await verify_chains(db)}
    assert set(reports) == {first, second}
    assert all(r.ok for r in reports.values()), reports
    assert reports[first].events_checked == 2 + 4


async def test_an_altered_field_is_detected_and_named(fresh_db: tuple[Database, Settings]) -> None:
    db, settings = fresh_db
    agency_id = await agency_with_history(db)
    untouched = await agency_with_history(db)
    victim = (await events_of(db, chain=agency_id))[3]
    await as_owner(
        settings, "UPDATE audit_events SET actor_id = 'usr_mallory' WHERE id = :id", id=victim.id
    )

    reports = {r.chain: r for r in await verify_chains(db)}
    broken = reports[agency_id]
    assert not broken.ok
    assert broken.broken_event_id == victim.id
    assert "altered" in (broken.reason or "")
    assert broken.events_checked == 4
    assert reports[untouched].ok


async def test_a_deleted_event_in_the_middle_is_detected(
    fresh_db: tuple[Database, Settings],
) -> None:
    db, settings = fresh_db
    agency_id = await agency_with_history(db)
    events = await events_of(db, chain=agency_id)
    await as_owner(settings, "DELETE FROM audit_events WHERE id = :id", id=events[2].id)

    [report] = await verify_chains(db, [agency_id])
    assert not report.ok
    assert report.broken_event_id == events[3].id
    assert "gap" in (report.reason or "")


async def test_deleting_the_newest_events_is_detected_by_the_head(
    fresh_db: tuple[Database, Settings],
) -> None:
    db, settings = fresh_db
    agency_id = await agency_with_history(db)
    events = await events_of(db, chain=agency_id)
    await as_owner(settings, "DELETE FROM audit_events WHERE id = :id", id=events[-1].id)

    [report] = await verify_chains(db, [agency_id])
    assert not report.ok
    assert f"ends at seq {len(events) - 1}" in (report.reason or "")


async def test_rewriting_a_hash_does_not_hide_the_change(
    fresh_db: tuple[Database, Settings],
) -> None:
    """Recomputing the altered event's own hash breaks the next event's link instead."""
    db, settings = fresh_db
    agency_id = await agency_with_history(db)
    events = await events_of(db, chain=agency_id)
    victim = events[1]
    from demandly.audit.chain import event_hash

    fields = fields_of(victim)
    fields["action"] = "client.viewed"
    await as_owner(
        settings,
        "UPDATE audit_events SET action = 'client.viewed', hash = :h WHERE id = :id",
        h=event_hash(fields),
        id=victim.id,
    )
    [report] = await verify_chains(db, [agency_id])
    assert not report.ok and report.broken_event_id == events[2].id
    assert "prev_hash" in (report.reason or "")


async def test_the_cli_exits_non_zero_and_names_the_broken_event(
    fresh_db: tuple[Database, Settings],
) -> None:
    db, settings = fresh_db
    agency_id = await agency_with_history(db)
    code, output = await run_audit_cli(settings, "verify")
    assert code == 0, output
    assert agency_id in output and "BROKEN" not in output

    victim = (await events_of(db, chain=agency_id))[2]
    await as_owner(settings, "UPDATE audit_events SET ip = '10.0.0.1' WHERE id = :id", id=victim.id)
    code, output = await run_audit_cli(settings, "verify")
    assert code == 1, output
    assert "BROKEN" in output and victim.id in output


async def test_long_chains_are_verified_in_batches(
    fresh_db: tuple[Database, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    import demandly.audit.service as audit_service

    db, settings = fresh_db
    monkeypatch.setattr(audit_service, "VERIFY_BATCH", 2)
    agency_id = await agency_with_history(db, changes=5)  # 7 events
    [report] = await verify_chains(db, [agency_id])
    assert report.ok and report.events_checked == 7

    victim = (await events_of(db, chain=agency_id))[5]
    await as_owner(settings, "UPDATE audit_events SET seq = 99 WHERE id = :id", id=victim.id)
    [report] = await verify_chains(db, [agency_id])
    assert not report.ok and report.broken_event_id == (await events_of(db, chain=agency_id))[5].id
