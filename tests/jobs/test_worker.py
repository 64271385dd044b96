"""The worker: runs due jobs in their tenant's scope, retries with backoff, gives up, survives
dead workers and shuts down without losing the job it was running."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from demandly.audit.models import AuditEvent
from demandly.audit.service import record
from demandly.config import Settings
from demandly.jobs.models import Job, JobStatus
from demandly.jobs.registry import JobContext, task
from demandly.jobs.service import enqueue
from demandly.jobs.worker import Worker, describe_error, retry_delay
from demandly.kit.context import Scope
from demandly.kit.db import Database
from tests.jobs.helpers import Clock, eventually, load_job

calls: Counter[str] = Counter()
seen_scopes: dict[str, Scope | None] = {}
gates: dict[str, asyncio.Event] = {}
started: dict[str, asyncio.Event] = {}


@task("test.worker.record")
async def record_run(ctx: JobContext, payload: dict[str, Any]) -> None:
    calls[ctx.job.id] += 1
    seen_scopes[ctx.job.id] = ctx.session.info.get("scope")
    await record(ctx.session, action="test.ran", entity_id=ctx.job.id, agency_id=ctx.job.agency_id)


@task("test.worker.fail")
async def always_fail(ctx: JobContext, payload: dict[str, Any]) -> None:
    calls[ctx.job.id] += 1
    # Written, then rolled back with the failed attempt.
    await record(
        ctx.session, action="test.partial", entity_id=ctx.job.id, agency_id=ctx.job.agency_id
    )
    raise RuntimeError(f"upstream said no (attempt {ctx.attempt}) to max@example.com")


@task("test.worker.flaky")
async def fail_once(ctx: JobContext, payload: dict[str, Any]) -> None:
    calls[ctx.job.id] += 1
    if ctx.attempt == 1:
        raise ConnectionError("first try fails")


@task("test.worker.gated")
async def wait_for_gate(ctx: JobContext, payload: dict[str, Any]) -> None:
    calls[ctx.job.id] += 1
    started[ctx.job.id].set()
    await gates[ctx.job.id].wait()
    await record(
        ctx.session, action="test.gated", entity_id=ctx.job.id, agency_id=ctx.job.agency_id
    )


async def _enqueue(db: Database, name: str, **kwargs: Any) -> Job:
    async with db.session(Scope.for_system()) as session:
        job = await enqueue(session, name, kwargs.pop("payload", {}), **kwargs)
        await session.commit()
    return job


async def _audit_count(db: Database, entity_id: str) -> int:
    async with db.session(Scope.for_system()) as session:
        rows = await session.execute(select(AuditEvent).where(AuditEvent.entity_id == entity_id))
        return len(rows.all())


def _gate(job: Job) -> tuple[asyncio.Event, asyncio.Event]:
    gates[job.id], started[job.id] = asyncio.Event(), asyncio.Event()
    return started[job.id], gates[job.id]


async def test_a_job_runs_once_in_its_agencys_scope(fresh_db: tuple[Database, Settings]) -> None:
    db, _ = fresh_db
    job = await _enqueue(db, "test.worker.record", agency_id="agc_w1")
    worker = Worker(db, name="w-1")

    assert await worker.run_once() is True
    assert await worker.run_once() is False

    stored = await load_job(db, job.id)
    assert (stored.status, stored.attempts, stored.locked_by) == ("succeeded", 1, "w-1")
    assert stored.finished_at is not None and stored.lease_expires_at is None
    assert calls[job.id] == 1
    assert seen_scopes[job.id] == Scope.for_agency("agc_w1")
    assert await _audit_count(db, job.id) == 1


async def test_a_platform_job_runs_under_the_system_scope(
    fresh_db: tuple[Database, Settings],
) -> None:
    db, _ = fresh_db
    job = await _enqueue(db, "test.worker.record")
    assert await Worker(db).run_until_idle() == 1
    assert seen_scopes[job.id] == Scope.for_system()
    assert (await load_job(db, job.id)).status == "succeeded"


async def test_jobs_run_by_priority_then_time(fresh_db: tuple[Database, Settings]) -> None:
    db, _ = fresh_db
    clock = Clock()
    late = await _enqueue(db, "test.worker.record", run_at=clock.now - timedelta(minutes=1))
    early = await _enqueue(db, "test.worker.record", run_at=clock.now - timedelta(minutes=5))
    urgent = await _enqueue(db, "test.worker.record", priority=1, run_at=clock.now)
    worker = Worker(db, clock=clock)
    order = []
    for _ in range(3):
        job = await worker.claim_next()
        assert job is not None
        order.append(job.id)
    assert order == [urgent.id, early.id, late.id]


async def test_a_job_due_later_is_not_run_early(fresh_db: tuple[Database, Settings]) -> None:
    db, _ = fresh_db
    clock = Clock()
    job = await _enqueue(db, "test.worker.record", run_at=clock.now + timedelta(hours=1))
    worker = Worker(db, clock=clock)

    clock.advance(minutes=59, seconds=59)
    assert await worker.run_once() is False
    assert (await load_job(db, job.id)).status == "queued"

    clock.advance(seconds=1)
    assert await worker.run_once() is True
    assert (await load_job(db, job.id)).status == "succeeded"


async def test_failures_retry_with_backoff_then_the_job_dies(
    fresh_db: tuple[Database, Settings],
) -> None:
    db, _ = fresh_db
    job = await _enqueue(db, "test.worker.fail", agency_id="agc_fail", max_attempts=3)
    clock = Clock()
    worker = Worker(db, clock=clock)

    for attempt, (low, high) in enumerate(((1, 2), (2, 4)), start=1):
        assert await worker.run_once() is True
        stored = await load_job(db, job.id)
        assert (stored.status, stored.attempts) == ("queued", attempt)
        delay = (stored.run_at - clock.now).total_seconds()
        assert low <= delay <= high, (attempt, delay)
        assert stored.last_error == f"RuntimeError: upstream said no (attempt {attempt}) to [email]"
        assert await worker.run_once() is False  # not due yet
        clock.now = stored.run_at

    assert await worker.run_once() is True
    dead = await load_job(db, job.id)
    assert (dead.status, dead.attempts) == ("dead", 3)
    assert dead.last_error == "RuntimeError: upstream said no (attempt 3) to [email]"
    assert dead.finished_at == clock.now
    assert await worker.run_once() is False
    assert calls[job.id] == 3
    assert await _audit_count(db, job.id) == 0  # each failed attempt rolled back its writes


async def test_a_retry_that_succeeds_clears_the_error(fresh_db: tuple[Database, Settings]) -> None:
    db, _ = fresh_db
    job = await _enqueue(db, "test.worker.flaky")
    clock = Clock()
    worker = Worker(db, clock=clock)
    await worker.run_once()
    assert (await load_job(db, job.id)).last_error == "ConnectionError: first try fails"
    clock.advance(seconds=3)
    await worker.run_once()
    stored = await load_job(db, job.id)
    assert (stored.status, stored.attempts, stored.last_error) == ("succeeded", 2, None)


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    for attempt in range(1, 30):
        ceiling = min(3600.0, 2.0 * 2 ** (attempt - 1))
        delays = [retry_delay(attempt, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1
    assert retry_delay(10_000, rng) <= 3600


def test_errors_are_described_by_type_and_message_truncated() -> None:
    assert describe_error(KeyError("x")) == "KeyError: 'x'"
    assert describe_error(RuntimeError()) == "RuntimeError"
    assert len(describe_error(ValueError("y" * 10_000))) == 2000
    assert "+49 170 1234567" not in describe_error(ValueError("call +49 170 1234567"))


async def test_an_unknown_task_dies_with_a_clear_error(fresh_db: tuple[Database, Settings]) -> None:
    db, _ = fresh_db
    job = await _enqueue(db, "test.no_such_task", max_attempts=5)
    assert await Worker(db).run_once() is True
    stored = await load_job(db, job.id)
    assert stored.status == "dead"
    assert stored.last_error is not None
    assert "Unknown task 'test.no_such_task'" in stored.last_error


async def test_a_job_whose_worker_died_is_picked_up_after_its_lease(
    fresh_db: tuple[Database, Settings],
) -> None:
    db, _ = fresh_db
    job = await _enqueue(db, "test.worker.record", agency_id="agc_lease")
    clock = Clock()
    dying = Worker(db, name="dies", lease_seconds=30, clock=clock)
    claimed = await dying.claim_next()  # ... and the process is killed here
    assert claimed is not None and claimed.id == job.id

    survivor = Worker(db, name="survives", lease_seconds=30, clock=clock)
    clock.advance(seconds=29)
    assert await survivor.run_once() is False  # the lease still holds

    clock.advance(seconds=2)
    assert await survivor.run_once() is True
    stored = await load_job(db, job.id)
    assert (stored.status, stored.attempts) == ("succeeded", 2)
    assert calls[job.id] == 1


async def test_a_job_whose_worker_died_on_the_last_attempt_is_dead(
    fresh_db: tuple[Database, Settings],
) -> None:
    db, _ = fresh_db
    job = await _enqueue(db, "test.worker.record", max_attempts=1)
    clock = Clock()
    assert await Worker(db, lease_seconds=10, clock=clock).claim_next() is not None
    clock.advance(seconds=11)
    assert await Worker(db, clock=clock).run_once() is False
    stored = await load_job(db, job.id)
    assert stored.status == "dead" and "last attempt" in (stored.last_error or "")
    assert calls[job.id] == 0


async def test_a_worker_that_lost_its_lease_rolls_its_work_back(
    fresh_db: tuple[Database, Settings],
) -> None:
    """Worker A stalls past its lease (no heartbeat); B takes the job over. Both handlers then
    finish, but only B's writes commit: the job's effects happen exactly once."""
    db, _ = fresh_db
    job = await _enqueue(db, "test.worker.gated", agency_id="agc_stall")
    clock = Clock()
    began, gate = _gate(job)
    stalled = Worker(db, name="stalled", lease_seconds=30, heartbeat_seconds=3600, clock=clock)
    stalled_run = asyncio.create_task(stalled.run_once())
    await began.wait()

    clock.advance(seconds=31)
    taker = Worker(db, name="taker", lease_seconds=30, clock=clock)
    taker_run = asyncio.create_task(taker.run_once())

    began.clear()
    await asyncio.wait_for(began.wait(), timeout=10)  # the taker's run has begun too
    gate.set()
    assert await stalled_run is True
    assert await taker_run is True

    stored = await load_job(db, job.id)
    assert (stored.status, stored.attempts, stored.locked_by) == ("succeeded", 2, "taker")
    assert calls[job.id] == 2  # both handlers ran to the end ...
    assert await _audit_count(db, job.id) == 1  # ... but only the taker's writes committed


async def test_a_heartbeat_keeps_a_long_jobs_lease(fresh_db: tuple[Database, Settings]) -> None:
    db, _ = fresh_db
    job = await _enqueue(db, "test.worker.gated")
    began, gate = _gate(job)
    worker = Worker(db, name="beating", lease_seconds=0.3)
    running = asyncio.create_task(worker.run_once())
    await began.wait()
    first_lease = await _lease(db, job.id)

    async def lease_moved_on() -> bool:
        return await _lease(db, job.id) > first_lease

    await eventually(lease_moved_on)
    gate.set()
    assert await running is True
    assert (await load_job(db, job.id)).status == "succeeded"
    assert calls[job.id] == 1


async def _lease(db: Database, job_id: str) -> datetime:
    lease = (await load_job(db, job_id)).lease_expires_at
    assert lease is not None
    return lease


async def test_shutdown_releases_a_job_that_does_not_finish_in_time(
    fresh_db: tuple[Database, Settings],
) -> None:
    db, _ = fresh_db
    job = await _enqueue(db, "test.worker.gated", agency_id="agc_stop")
    began, _ = _gate(job)
    stop = asyncio.Event()
    worker = Worker(db, name="stopping", poll_seconds=0.01, grace_seconds=0.05)
    running = asyncio.create_task(worker.run(stop))
    await began.wait()
    stop.set()
    await asyncio.wait_for(running, timeout=10)

    stored = await load_job(db, job.id)
    assert (stored.status, stored.locked_by, stored.lease_expires_at) == ("queued", None, None)
    assert stored.attempts == 0
    assert await _audit_count(db, job.id) == 0

    # Another worker picks it up and runs it to the end.
    gates[job.id].set()
    assert await Worker(db, name="next").run_once() is True
    stored = await load_job(db, job.id)
    assert (stored.status, stored.attempts) == ("succeeded", 1)
    assert await _audit_count(db, job.id) == 1


async def test_shutdown_lets_a_job_finish_within_the_grace_period(
    fresh_db: tuple[Database, Settings],
) -> None:
    db, _ = fresh_db
    job = await _enqueue(db, "test.worker.gated")
    began, gate = _gate(job)
    stop = asyncio.Event()
    worker = Worker(db, poll_seconds=0.01, grace_seconds=30)
    running = asyncio.create_task(worker.run(stop))
    await began.wait()
    stop.set()
    await asyncio.sleep(0)
    gate.set()
    await asyncio.wait_for(running, timeout=10)
    stored = await load_job(db, job.id)
    assert (stored.status, stored.attempts) == ("succeeded", 1)


async def test_an_idle_worker_polls_until_stopped(fresh_db: tuple[Database, Settings]) -> None:
    db, _ = fresh_db
    stop = asyncio.Event()
    worker = Worker(db, poll_seconds=0.01)
    running = asyncio.create_task(worker.run(stop))
    job = await _enqueue(db, "test.worker.record")

    async def done() -> bool:
        return (await load_job(db, job.id)).status == "succeeded"

    await eventually(done)
    stop.set()
    await asyncio.wait_for(running, timeout=10)
    assert calls[job.id] == 1


async def test_finished_jobs_are_not_run(fresh_db: tuple[Database, Settings]) -> None:
    db, _ = fresh_db
    jobs = [await _enqueue(db, "test.worker.record") for _ in range(3)]
    async with db.session(Scope.for_system()) as session:
        for job, status in zip(jobs, ("cancelled", "succeeded", "dead"), strict=True):
            stored = await session.get(Job, job.id)
            assert stored is not None
            stored.status = JobStatus(status).value
        await session.commit()
    assert await Worker(db).run_once() is False
    assert all(calls[job.id] == 0 for job in jobs)
