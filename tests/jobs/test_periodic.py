"""Periodic tasks: one job per period across workers, and the housekeeping they do."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from demandly.auth.models import LoginSession, LoginThrottle
from demandly.config import Settings
from demandly.jobs.models import Job, JobStatus
from demandly.jobs.registry import periodic_tasks
from demandly.jobs.worker import Worker
from demandly.kit.context import Scope
from demandly.kit.crypto import hash_token
from demandly.kit.db import Database
from demandly.kit.time import utcnow
from tests.factories import make_user
from tests.jobs.helpers import Clock, all_jobs


async def test_each_period_gets_one_job_however_many_workers(
    fresh_db: tuple[Database, Settings],
) -> None:
    db, _ = fresh_db
    clock = Clock()
    workers = [Worker(db, clock=clock) for _ in range(3)]
    for worker in workers:
        await worker.schedule_periodic(force=True)
    names = sorted(job.name for job in await all_jobs(db))
    assert names == sorted(periodic_tasks())
    assert {"auth.purge_stale_throttles", "jobs.purge_finished"} <= set(names)

    clock.advance(hours=6)
    await workers[0].schedule_periodic(force=True)
    assert len(await all_jobs(db)) == 2 * len(periodic_tasks())


async def test_scheduling_is_throttled_to_once_a_minute(
    fresh_db: tuple[Database, Settings],
) -> None:
    db, _ = fresh_db
    clock = Clock()
    worker = Worker(db, clock=clock)
    assert await worker.schedule_periodic() == len(periodic_tasks())
    assert await worker.schedule_periodic() == 0
    clock.advance(minutes=1)
    assert await worker.schedule_periodic() == len(periodic_tasks())


async def test_housekeeping_removes_what_is_spent_and_keeps_the_rest(
    fresh_db: tuple[Database, Settings],
) -> None:
    db, _ = fresh_db
    user = await make_user(db)
    now = utcnow()
    async with db.session(Scope.for_system()) as session:
        session.add_all(
            [
                LoginSession(
                    user_id=user.id,
                    token_hash=hash_token("old"),
                    expires_at=now - timedelta(days=3),
                ),
                LoginSession(
                    user_id=user.id,
                    token_hash=hash_token("live"),
                    expires_at=now + timedelta(days=3),
                ),
                LoginThrottle(
                    key="ip:203.0.113.9", failures=2, last_failure_at=now - timedelta(days=30)
                ),
                LoginThrottle(key="ip:203.0.113.10", failures=2, last_failure_at=now),
                Job(
                    name="done.long.ago",
                    status=JobStatus.SUCCEEDED.value,
                    finished_at=now - timedelta(days=30),
                ),
                Job(
                    name="dead.long.ago",
                    status=JobStatus.DEAD.value,
                    finished_at=now - timedelta(days=30),
                ),
            ]
        )
        await session.commit()
    worker = Worker(db)
    await worker.schedule_periodic(force=True)
    await worker.run_until_idle()
    async with db.session(Scope.for_system()) as session:
        sessions = set((await session.execute(select(LoginSession.token_hash))).scalars())
        throttles = set((await session.execute(select(LoginThrottle.key))).scalars())
        jobs = {j.name: j.status for j in (await session.execute(select(Job))).scalars()}
    assert sessions == {hash_token("live")}
    assert throttles == {"ip:203.0.113.10"}
    assert "done.long.ago" not in jobs and jobs["dead.long.ago"] == JobStatus.DEAD.value
    assert all(jobs[name] == JobStatus.SUCCEEDED.value for name in periodic_tasks())
