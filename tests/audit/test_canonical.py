"""An event's hash is the same whoever computes it: PostgreSQL links queued events inside the
commit from the canonical form's pieces, and ``audit verify`` recomputes it in Python."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from demandly.audit.chain import Canonical, canonical_json
from demandly.audit.models import AuditEvent, AuditQueued
from demandly.audit.service import record, verify_chains
from demandly.config import Settings
from demandly.kit.context import Actor, Scope
from demandly.kit.db import Database
from demandly.tenancy.models import Client
from tests.audit.helpers import ALICE, events_of, fields_of
from tests.factories import make_agency

AWKWARD = 'Mözilla/5.0 "quoted" \\ back\\slash\n\ttab \u0001 ☃ 𝄞 \u2028 </script>'


def _fields(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "id": "aud_1",
        "chain": "agc_1",
        "seq": 41,
        "agency_id": "agc_1",
        "client_id": None,
        "actor_kind": "user",
        "actor_id": "usr_1",
        "actor_role": "agency_admin",
        "action": "client.updated",
        "entity_type": "client",
        "entity_id": "cli_1",
        "changed_fields": ["name", "privacy_policy_url"],
        "ip": "2001:db8::1",
        "user_agent": AWKWARD,
        "request_id": 'req "1"',
        "created_at": datetime(2026, 12, 4, 15, 0, 0, 123, tzinfo=UTC),
        "prev_hash": "ab" * 32,
    }
    fields.update(overrides)
    return fields


def test_the_pieces_around_the_link_make_the_canonical_form() -> None:
    for overrides in ({}, {"user_agent": None, "request_id": None}, {"changed_fields": []}):
        fields = _fields(**overrides)
        canonical = Canonical.of(fields)
        # What the trigger (migration 0011) puts together around the link it knows.
        filled = canonical.head + str(fields["prev_hash"]) + canonical.middle
        filled += str(fields["seq"]) + canonical.tail
        assert filled.encode() == canonical_json(fields)


def test_the_pieces_do_not_depend_on_the_link() -> None:
    assert Canonical.of(_fields(seq=1, prev_hash="0" * 64)) == Canonical.of(_fields())


async def test_awkward_text_in_an_event_verifies(db: Database) -> None:
    tenant = await make_agency(db, clients=0)
    agency_id = tenant.agency.id
    actor = Actor(kind="user", id="usr_awk", user_agent=AWKWARD, request_id='r "1"', ip="::1")
    async with db.session(Scope.for_agency(agency_id), actor) as session:
        session.add(Client(agency_id=agency_id, name="Ünïcödé"))
        await record(session, action="client.checked", agency_id=agency_id, entity_id="x")
        await session.commit()

    events = await events_of(db, chain=agency_id)
    assert [e.action for e in events][-2:] == ["client.created", "client.checked"]
    assert events[-1].user_agent == AWKWARD
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert canonical_json(fields_of(events[-1])).decode().count(AWKWARD[:7]) == 1
    [report] = await verify_chains(db, [agency_id])
    assert report.ok and report.events_checked == len(events)


async def test_no_event_stays_queued_after_the_commit(db: Database, settings: Settings) -> None:
    tenant = await make_agency(db, clients=3)
    # The application may only queue; the database's owner reads the queue.
    owner = Database(settings.effective_database_url)
    try:
        async with owner.session(Scope.for_system()) as session:
            queued = await session.scalar(select(func.count()).select_from(AuditQueued))
    finally:
        await owner.dispose()
    assert queued == 0
    assert len(await events_of(db, chain=tenant.agency.id)) == 4


async def test_postgresql_links_events_inside_the_commit_sqlite_just_before(db: Database) -> None:
    tenant = await make_agency(db, clients=0)
    agency_id = tenant.agency.id
    seen: list[int] = []

    def count_linked(session: Session) -> None:  # after the audit hook wrote what it writes
        linked = select(func.count()).select_from(AuditEvent).where(AuditEvent.chain == agency_id)
        seen.append(session.execute(linked).scalar_one())

    async with db.session(Scope.for_agency(agency_id), ALICE) as session:
        session.add(Client(agency_id=agency_id, name="Linked when?"))
        await session.flush()
        event.listen(session.sync_session, "before_commit", count_linked)
        await session.commit()

    # agency.created is linked already; the client's event is linked by the trigger in COMMIT
    # on PostgreSQL, by the application just before it on SQLite.
    assert seen == [1 if db.dialect == "postgresql" else 2]
    assert len(await events_of(db, chain=agency_id)) == 2
