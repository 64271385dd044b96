"""Jobs and events are written in the caller's transaction: they exist only if it commits."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from demandly.jobs.models import DomainEvent, Job, JobStatus
from demandly.jobs.service import NewJob, emit, enqueue, enqueue_many
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.kit.errors import NotFound
from demandly.kit.time import utcnow
from tests.factories import unique
from tests.jobs.helpers import load_job


async def _count(db: Database, model: type, **where: object) -> int:
    statement = select(func.count()).select_from(model)
    for column, value in where.items():
        statement = statement.where(getattr(model, column) == value)
    async with db.session(Scope.for_system()) as session:
        return int((await session.execute(statement)).scalar_one())


async def test_a_job_enqueued_in_a_rolled_back_transaction_does_not_exist(db: Database) -> None:
    async with db.session(Scope.for_agency("agc_outbox")) as session:
        job = await enqueue(session, "test.noop", {"n": 1}, agency_id="agc_outbox")
        event = await emit(session, "test.happened", agency_id="agc_outbox")
        job_id, event_id = job.id, event.id
        await session.rollback()
    assert await _count(db, Job, id=job_id) == 0
    assert await _count(db, DomainEvent, id=event_id) == 0


async def test_a_committed_job_is_queued_with_its_settings(db: Database) -> None:
    run_at = utcnow() + timedelta(hours=2)
    async with db.session(Scope.for_client("agc_out2", "cli_out2")) as session:
        job = await enqueue(
            session,
            "test.noop",
            {"lead_id": "led_1"},
            agency_id="agc_out2",
            client_id="cli_out2",
            run_at=run_at,
            priority=5,
            max_attempts=3,
        )
        await session.commit()
    stored = await load_job(db, job.id)
    assert (stored.status, stored.name, stored.payload) == (
        "queued",
        "test.noop",
        {"lead_id": "led_1"},
    )
    assert (stored.agency_id, stored.client_id, stored.priority) == ("agc_out2", "cli_out2", 5)
    assert (stored.attempts, stored.max_attempts, stored.run_at) == (0, 3, run_at)


async def test_the_same_idempotency_key_gives_the_same_job(db: Database) -> None:
    key = unique("idem")
    async with db.session(Scope.for_agency("agc_idem")) as session:
        first = await enqueue(
            session, "test.noop", {"v": 1}, agency_id="agc_idem", idempotency_key=key
        )
        again = await enqueue(
            session, "test.noop", {"v": 2}, agency_id="agc_idem", idempotency_key=key
        )
        await session.commit()
    async with db.session(Scope.for_agency("agc_idem")) as session:
        later = await enqueue(
            session, "test.noop", {"v": 3}, agency_id="agc_idem", idempotency_key=key
        )
        await session.commit()
    assert first.id == again.id == later.id
    assert later.payload == {"v": 1}
    assert await _count(db, Job, idempotency_key=key) == 1


async def test_concurrent_enqueues_with_one_key_make_one_job(db: Database) -> None:
    key = unique("race")
    scope = Scope.for_agency("agc_race")
    async with db.session(scope) as first_session, db.session(scope) as second_session:
        first = await enqueue(
            first_session, "test.noop", {}, agency_id="agc_race", idempotency_key=key
        )
        second = asyncio.create_task(
            enqueue(second_session, "test.noop", {}, agency_id="agc_race", idempotency_key=key)
        )
        # Give the second insert time to run into the first's uncommitted row (it must wait).
        await asyncio.sleep(0.2)
        assert not second.done()
        await first_session.commit()
        second_job = await second
        await second_session.commit()
    assert second_job.id == first.id
    assert await _count(db, Job, idempotency_key=key) == 1


async def test_a_tenant_cannot_enqueue_for_another_agency(db: Database) -> None:
    async with db.session(Scope.for_agency("agc_mine")) as session:
        with pytest.raises(NotFound):
            await enqueue(session, "test.noop", {}, agency_id="agc_theirs")
        with pytest.raises(NotFound):
            await emit(session, "test.happened", agency_id="agc_theirs")


async def test_platform_jobs_may_be_enqueued_from_a_tenants_unit_of_work(db: Database) -> None:
    async with db.session(Scope.for_agency("agc_plat")) as session:
        job = await enqueue(session, "test.noop", {"why": "platform mail"})
        await session.commit()
    stored = await load_job(db, job.id)
    assert stored.agency_id is None and stored.status == JobStatus.QUEUED
    # ... but only the system scope sees it afterwards.
    async with db.session(Scope.for_agency("agc_plat")) as session:
        assert await session.get(Job, job.id, populate_existing=True) is None


async def test_bad_arguments_are_refused_before_writing(db: Database) -> None:
    async with db.session(Scope.for_system()) as session:
        with pytest.raises(ValueError):
            await enqueue(session, "", {})
        with pytest.raises(ValueError):
            await enqueue(session, "x" * 101, {})
        with pytest.raises(ValueError):
            await enqueue(session, "test.noop", {}, client_id="cli_without_agency")
        with pytest.raises(ValueError):
            await enqueue(session, "test.noop", {}, max_attempts=0)
        with pytest.raises(TypeError):
            await enqueue(session, "test.noop", {"when": object()})


async def test_jobs_queued_together_are_each_as_enqueue_would_queue_them(db: Database) -> None:
    key, run_at = unique("many"), utcnow() + timedelta(hours=1)
    async with db.session(Scope.for_agency("agc_many")) as session:
        earlier = await enqueue(
            session, "test.noop", {"v": 0}, agency_id="agc_many", idempotency_key=key
        )
        first, taken, client_job, repeated = await enqueue_many(
            session,
            [
                NewJob("test.first", {"n": 1}, agency_id="agc_many", run_at=run_at, priority=5),
                NewJob("test.noop", {"v": 1}, agency_id="agc_many", idempotency_key=key),
                NewJob("test.second", {"n": 2}, agency_id="agc_many", client_id="cli_many"),
                NewJob("test.noop", {"v": 2}, agency_id="agc_many", idempotency_key=key),
            ],
        )
        assert await enqueue_many(session, []) == []
        await session.commit()
    assert taken == repeated == earlier.id
    assert (await load_job(db, taken)).payload == {"v": 0}
    assert await _count(db, Job, idempotency_key=key) == 1
    stored = await load_job(db, first)
    assert (stored.name, stored.payload, stored.run_at, stored.priority) == (
        "test.first",
        {"n": 1},
        run_at,
        5,
    )
    assert (await load_job(db, client_job)).client_id == "cli_many"


async def test_jobs_queued_together_outside_the_scope_are_refused(db: Database) -> None:
    async with db.session(Scope.for_agency("agc_many2")) as session:
        with pytest.raises(NotFound):
            await enqueue_many(
                session,
                [
                    NewJob("test.noop", {}, agency_id="agc_many2"),
                    NewJob("test.noop", {}, agency_id="agc_elsewhere"),
                ],
            )
