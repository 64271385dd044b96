"""Four workers racing over one queue never run a job twice, and leave none behind."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from demandly.app import create_database
from demandly.config import Settings
from demandly.jobs.registry import JobContext, task
from demandly.jobs.service import enqueue
from demandly.jobs.worker import Worker
from demandly.kit.context import Scope
from demandly.kit.db import Database
from tests.jobs.helpers import all_jobs

JOBS = 200
WORKERS = 4
runs: Counter[str] = Counter()


@task("test.many.count")
async def count_run(ctx: JobContext, payload: dict[str, Any]) -> None:
    runs[ctx.job.id] += 1
    await asyncio.sleep(0)  # let the other workers in
    await ctx.session.execute(
        text("INSERT INTO job_runs (job_id, worker) VALUES (:job, :worker)"),
        {"job": ctx.job.id, "worker": ctx.job.locked_by},
    )


async def _create_runs_table(settings: Settings) -> None:
    """A test table with no unique key: a second run of a job would add a second row."""
    engine = create_async_engine(settings.effective_database_url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE job_runs (job_id VARCHAR(40), worker VARCHAR(100))"))
        if conn.dialect.name == "postgresql":
            await conn.execute(
                text(f'GRANT SELECT, INSERT ON job_runs TO "{settings.pg_app_role}"')
            )
    await engine.dispose()


async def test_four_workers_run_every_job_exactly_once(
    fresh_db: tuple[Database, Settings],
) -> None:
    db, settings = fresh_db
    await _create_runs_table(settings)
    async with db.session(Scope.for_system()) as session:
        for i in range(JOBS):
            await enqueue(session, "test.many.count", {}, agency_id=f"agc_many_{i % 5}")
        await session.commit()

    # Two workers share the test's Database, two have their own engines (like processes).
    own = [create_database(settings) for _ in range(2)]
    workers = [Worker(d, name=f"w{i}") for i, d in enumerate([db, db, *own])]
    try:
        done = await asyncio.gather(*(w.run_until_idle(max_jobs=JOBS) for w in workers))
    finally:
        for database in own:
            await database.dispose()

    assert sum(done) == JOBS
    jobs = await all_jobs(db)
    assert len(jobs) == JOBS and {j.status for j in jobs} == {"succeeded"}
    assert {j.attempts for j in jobs} == {1}
    assert all(runs[j.id] == 1 for j in jobs)
    async with db.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT job_id, worker FROM job_runs"))).all()
    assert sorted(r.job_id for r in rows) == sorted(j.id for j in jobs)
    assert {r.worker for r in rows} == {j.locked_by for j in jobs}
    if db.dialect == "postgresql":
        # With SKIP LOCKED the work really is shared.
        assert len({r.worker for r in rows}) > 1
