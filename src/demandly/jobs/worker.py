"""The job worker: claims due jobs, runs their handlers, retries with backoff, and lets go.

A claim is a short transaction of its own (status running, a lease, attempts + 1); PostgreSQL
workers claim with ``FOR UPDATE SKIP LOCKED`` so several never take the same job, SQLite's
write lock serialises claims. The handler runs in its own transaction, which also marks the job
succeeded: the handler's writes and "done" commit together, and only while the claim still
holds, so a worker whose lease ran out (and whose job another worker took) rolls back instead of
finishing twice. A heartbeat extends the lease of long jobs; a job whose worker died is picked
up again once its lease has expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from demandly.jobs.models import Job, JobStatus
from demandly.jobs.registry import (
    JobContext,
    TaskHandler,
    autodiscover,
    get_task,
    periodic_tasks,
)
from demandly.jobs.repository import JobRepository
from demandly.jobs.service import enqueue
from demandly.kit.context import SYSTEM_ACTOR, Actor, Scope
from demandly.kit.db import Database
from demandly.kit.ids import ulid
from demandly.kit.logging import get_logger, redact
from demandly.kit.time import utcnow

log = get_logger(__name__)

BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 3600.0
MAX_ERROR_LENGTH = 2000
SCHEDULE_EVERY = timedelta(minutes=1)
# Periodic housekeeping yields to real work (lower runs first).
HOUSEKEEPING_PRIORITY = 1000


def retry_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds before retrying after failed attempt ``attempt`` (1-based): exponential from
    2 s, capped at 1 h, with "equal jitter" (between half and all of it) so that jobs that
    failed together do not retry together."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** min(max(attempt, 1) - 1, 30))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def describe_error(exc: BaseException) -> str:
    """Type and message, truncated; e-mail addresses and phone numbers redacted."""
    message = str(exc).strip()
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return redact(text)[:MAX_ERROR_LENGTH]


def default_worker_name() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{ulid()[-6:]}"


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Wait for ``event`` at most ``seconds``; tells whether it is set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_SUCCEEDED = "succeeded"
_LOST = "lost"


class Worker:
    def __init__(
        self,
        db: Database,
        *,
        name: str | None = None,
        poll_seconds: float = 0.5,
        lease_seconds: float = 60.0,
        grace_seconds: float = 10.0,
        heartbeat_seconds: float | None = None,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.name = (name or default_worker_name())[:100]
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.grace_seconds = grace_seconds
        # Beat well within the lease, so that one late beat does not lose the job.
        self.heartbeat_seconds = heartbeat_seconds or max(lease_seconds / 3, 0.01)
        self.clock = clock
        self.rng = rng or random.Random()
        self._scheduled_at: datetime | None = None
        autodiscover()

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)

    # --- loops -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run jobs until ``stop`` is set; poll every ``poll_seconds`` when idle. On stop, the
        running job gets ``grace_seconds`` to finish, else it is released for another worker."""
        log.info("worker_started", worker=self.name)
        while not stop.is_set():
            try:
                await self.schedule_periodic()
                ran = await self._run_next(stop)
            except Exception as exc:  # the database may be away for a moment; keep polling
                log.warning("worker_error", worker=self.name, error_type=type(exc).__name__)
                ran = False
            if not ran:
                await _wait(stop, self.poll_seconds)
        log.info("worker_stopped", worker=self.name)

    async def schedule_periodic(self, *, force: bool = False) -> int:
        """Enqueue this period's job of each periodic task (at most once a minute per worker;
        idempotency keys make it once per period across all workers). Returns how many tasks
        were looked at."""
        now = self.clock()
        if not force and self._scheduled_at and now - self._scheduled_at < SCHEDULE_EVERY:
            return 0
        self._scheduled_at = now
        tasks = periodic_tasks()
        if not tasks:
            return 0
        async with self.db.session(Scope.for_system(), SYSTEM_ACTOR) as session:
            for name, every in tasks.items():
                period = int(now.timestamp() // every.total_seconds())
                await enqueue(
                    session,
                    name,
                    {},
                    idempotency_key=f"periodic:{name}:{period}",
                    priority=HOUSEKEEPING_PRIORITY,
                )
            await session.commit()
        return len(tasks)

    async def run_once(self) -> bool:
        """Claim and run one due job; tells whether there was one."""
        return await self._run_next(None)

    async def run_until_idle(self, max_jobs: int = 1000) -> int:
        """Run due jobs until none is left (or ``max_jobs`` ran); returns how many ran."""
        ran = 0
        while ran < max_jobs and await self.run_once():
            ran += 1
        return ran

    async def _run_next(self, stop: asyncio.Event | None) -> bool:
        job = await self.claim_next()
        if job is None:
            return False
        await self._execute(job, stop)
        return True

    # --- claiming --------------------------------------------------------------------------

    async def claim_next(self) -> Job | None:
        """Claim the next due job for this worker (committed), or None."""
        while True:
            now = self.clock()
            async with self.db.session(Scope.for_system(), SYSTEM_ACTOR) as session:
                job = await JobRepository(session).next_due(now)
                if job is None:
                    return None
                if job.status == JobStatus.RUNNING and job.attempts >= job.max_attempts:
                    # Its worker died during the last allowed attempt.
                    job.status = JobStatus.DEAD.value
                    job.finished_at = now
                    job.locked_by = job.lease_expires_at = None
                    job.last_error = job.last_error or "The worker stopped during the last attempt."
                    await session.commit()
                    log.warning("job_dead", job_id=job.id, job_name=job.name, reason="lease")
                    continue
                job.status = JobStatus.RUNNING.value
                job.locked_by = self.name
                job.lease_expires_at = now + self.lease
                job.attempts += 1
                await session.commit()
                return job

    # --- running ---------------------------------------------------------------------------

    async def _execute(self, job: Job, stop: asyncio.Event | None) -> None:
        handler = get_task(job.name)
        if handler is None:
            await self._bookkeep(
                job,
                status=JobStatus.DEAD.value,
                finished_at=self.clock(),
                last_error=f"Unknown task {job.name!r}: no handler is registered under that name.",
            )
            log.error("job_unknown_task", job_id=job.id, job_name=job.name)
            return
        beat_stop = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(job, beat_stop))
        running = asyncio.create_task(self._run_handler(job, handler, beat_stop))
        try:
            if stop is not None and not await self._finishes_before_stop(running, stop):
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
                await self._release(job)
                return
            outcome = await running
        finally:
            if not running.done():
                running.cancel()
            beat_stop.set()
            await asyncio.gather(heartbeat, return_exceptions=True)
        await self._settle(job, outcome)

    async def _finishes_before_stop(self, running: asyncio.Task[Any], stop: asyncio.Event) -> bool:
        """Wait for the job; once ``stop`` is set, wait at most the grace period."""
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if running.done():
            return True
        await asyncio.wait({running}, timeout=self.grace_seconds)
        return running.done()

    async def _run_handler(self, job: Job, handler: TaskHandler, beat_stop: asyncio.Event) -> Any:
        scope = Scope.for_agency(job.agency_id) if job.agency_id else Scope.for_system()
        actor = Actor(kind="system", request_id=job.id)
        async with self.db.session(scope, actor) as session:
            try:
                await handler(JobContext(job=job, session=session, db=self.db), dict(job.payload))
                # Stop extending the lease before touching the job row in this transaction.
                beat_stop.set()
                done = await JobRepository(session).update_claimed(
                    job,
                    self.name,
                    status=JobStatus.SUCCEEDED.value,
                    finished_at=self.clock(),
                    lease_expires_at=None,
                    last_error=None,
                )
                if not done:
                    await session.rollback()
                    return _LOST
                await session.commit()
                return _SUCCEEDED
            except Exception as exc:
                await session.rollback()
                return _Failed(exc)

    async def _settle(self, job: Job, outcome: Any) -> None:
        if outcome == _SUCCEEDED:
            log.info("job_succeeded", job_id=job.id, job_name=job.name, attempt=job.attempts)
            return
        if outcome == _LOST:
            log.warning("job_lease_lost", job_id=job.id, job_name=job.name, worker=self.name)
            return
        error = outcome.error
        now = self.clock()
        if job.attempts >= job.max_attempts:
            values: dict[str, Any] = {"status": JobStatus.DEAD.value, "finished_at": now}
        else:
            delay = retry_delay(job.attempts, self.rng)
            values = {"status": JobStatus.QUEUED.value, "run_at": now + timedelta(seconds=delay)}
        await self._bookkeep(job, last_error=describe_error(error), **values)
        log.warning(
            "job_failed",
            job_id=job.id,
            job_name=job.name,
            attempt=job.attempts,
            status=values["status"],
            error_type=type(error).__name__,
        )

    async def _release(self, job: Job) -> None:
        """Hand an interrupted job back to the queue; the interrupted try does not count."""
        await self._bookkeep(
            job,
            status=JobStatus.QUEUED.value,
            run_at=self.clock(),
            attempts=max(job.attempts - 1, 0),
        )
        log.info("job_released", job_id=job.id, job_name=job.name, worker=self.name)

    async def _bookkeep(self, job: Job, **values: Any) -> bool:
        """Change the job (system scope, own transaction) while this worker's claim holds."""
        values.setdefault("locked_by", None)
        values.setdefault("lease_expires_at", None)
        async with self.db.session(Scope.for_system(), SYSTEM_ACTOR) as session:
            changed = await JobRepository(session).update_claimed(job, self.name, **values)
            await session.commit()
        return changed

    async def _heartbeat(self, job: Job, stop: asyncio.Event) -> None:
        while not await _wait(stop, self.heartbeat_seconds):
            try:
                async with self.db.session(Scope.for_system(), SYSTEM_ACTOR) as session:
                    await JobRepository(session).update_claimed(
                        job, self.name, lease_expires_at=self.clock() + self.lease
                    )
                    await session.commit()
            except Exception as exc:  # a missed beat is not fatal while the lease lasts
                log.warning("job_heartbeat_failed", job_id=job.id, error_type=type(exc).__name__)
