"""Housekeeping of the queue itself."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from demandly.jobs.registry import JobContext, periodic
from demandly.jobs.repository import JobRepository
from demandly.kit.time import utcnow

FINISHED_JOBS_KEPT = timedelta(days=14)


@periodic("jobs.purge_finished", every=timedelta(hours=6))
async def purge_finished_jobs(ctx: JobContext, payload: dict[str, Any]) -> None:
    await JobRepository(ctx.session).delete_finished_before(utcnow() - FINISHED_JOBS_KEPT)
