"""A controllable clock, and reading jobs back under the system scope."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import select

from demandly.jobs.models import Job
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.kit.time import utcnow


class Clock:
    """The worker's notion of now, moved by the test instead of waiting."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


async def load_job(db: Database, job_id: str) -> Job:
    async with db.session(Scope.for_system()) as session:
        job = await session.get(Job, job_id)
        assert job is not None
        return job


async def all_jobs(db: Database) -> list[Job]:
    async with db.session(Scope.for_system()) as session:
        return list((await session.execute(select(Job).order_by(Job.id))).scalars())


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Wait until ``check()`` holds: for state in the database, which no event announces."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
