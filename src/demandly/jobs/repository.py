"""Queries on jobs and domain events. Every state change of a claimed job is *fenced*: it only
applies while the job is still running under the same claim (worker and attempt), so a worker
that lost its lease can never overwrite the outcome of the worker that took the job over."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from demandly.jobs.models import DomainEvent, Job, JobStatus
from demandly.kit.context import Scope
from demandly.kit.db import as_written, execute_core, grants_criteria
from demandly.kit.pagination import PageParams, paginate

# Built once (plain Core statements: nothing to scope, inserts are checked before).
_INSERT_EVENT = insert(DomainEvent.__table__)
_INSERT_JOBS = {
    name: dialect_insert(Job.__table__)
    .on_conflict_do_nothing(index_elements=["idempotency_key"])
    .returning(Job.__table__.c.id)
    for name, dialect_insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}


def _dialect_insert(session: AsyncSession) -> Any:
    return postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def is_postgres(self) -> bool:
        return self.session.bind.dialect.name == "postgresql"

    # --- writing ---------------------------------------------------------------------------

    async def insert(self, values: dict[str, Any]) -> Job | None:
        """Insert a job unless its idempotency key is taken (then None)."""
        statement = _dialect_insert(self.session)(Job).values(**values)
        if values.get("idempotency_key") is not None:
            # Race-safe: a concurrent insert of the same key waits for the first to commit
            # (PostgreSQL) or cannot run at the same time (SQLite's write lock).
            statement = statement.on_conflict_do_nothing(index_elements=["idempotency_key"])
        result = await self.session.execute(statement.returning(Job))
        return result.scalar_one_or_none()  # type: ignore[no-any-return]

    async def insert_many(self, rows: list[dict[str, Any]]) -> set[str]:
        """Insert jobs, skipping those whose idempotency key is taken (as ``insert`` does);
        returns the ids of the ones inserted. The rows go as parameters of one statement
        built once, which the driver sends as a single multi-row INSERT; only the ids of the
        rows written come back (the ORM's bulk INSERT … RETURNING of whole jobs cost twice as
        much)."""
        statement = _INSERT_JOBS[self.session.bind.dialect.name]
        return set((await execute_core(self.session, statement, rows)).scalars())

    async def insert_events(self, rows: list[dict[str, Any]]) -> list[DomainEvent]:
        """Write the events in one statement and hand them back as written (each row holds
        every column; the ORM's INSERT … RETURNING cost a third of an event's time)."""
        await execute_core(self.session, _INSERT_EVENT, rows)
        return [as_written(self.session, DomainEvent, row) for row in rows]

    async def update_where(
        self, job_id: str, condition: ColumnElement[bool], **values: Any
    ) -> bool:
        """Apply ``values`` to the job if ``condition`` still holds; tells whether it did."""
        result = await self.session.execute(
            update(Job)
            .where(Job.id == job_id, condition)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def update_claimed(self, job: Job, worker: str, **values: Any) -> bool:
        return await self.update_where(job.id, claimed_by(job, worker), **values)

    # --- reading ---------------------------------------------------------------------------

    async def get(self, job_id: str) -> Job | None:
        return await self.session.get(Job, job_id, populate_existing=True)

    async def by_idempotency_key(self, key: str) -> Job | None:
        result = await self.session.execute(select(Job).where(Job.idempotency_key == key))
        return result.scalar_one_or_none()

    async def next_due(self, now: datetime) -> Job | None:
        """The next job to run: due and queued, or running under an expired lease (its worker
        died). PostgreSQL skips rows another worker is claiming right now."""
        statement = (
            select(Job)
            .where(
                or_(
                    and_(Job.status == JobStatus.QUEUED, Job.run_at <= now),
                    and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at <= now),
                )
            )
            .order_by(Job.priority, Job.run_at, Job.id)
            .limit(1)
        )
        if self.is_postgres:
            statement = statement.with_for_update(skip_locked=True)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def page(
        self,
        params: PageParams,
        *,
        within: Scope | None = None,
        agency_id: str | None = None,
        client_id: str | None = None,
        status: str | None = None,
        name: str | None = None,
    ) -> tuple[list[Job], str | None]:
        statement: Select[Any] = select(Job)
        if within is not None:
            statement = statement.where(grants_criteria(within, Job.agency_id, Job.client_id))
        for column, value in (
            (Job.agency_id, agency_id),
            (Job.client_id, client_id),
            (Job.status, status),
            (Job.name, name),
        ):
            if value is not None:
                statement = statement.where(column == value)
        return await paginate(self.session, statement, Job.id, params)

    async def event_page(
        self,
        params: PageParams,
        *,
        within: Scope | None = None,
        agency_id: str | None = None,
        client_id: str | None = None,
        event_type: str | None = None,
    ) -> tuple[list[DomainEvent], str | None]:
        statement: Select[Any] = select(DomainEvent)
        if within is not None:
            statement = statement.where(
                grants_criteria(within, DomainEvent.agency_id, DomainEvent.client_id)
            )
        for column, value in (
            (DomainEvent.agency_id, agency_id),
            (DomainEvent.client_id, client_id),
            (DomainEvent.type, event_type),
        ):
            if value is not None:
                statement = statement.where(column == value)
        return await paginate(self.session, statement, DomainEvent.id, params)

    async def delete_finished_before(self, cutoff: datetime) -> int:
        """Succeeded and cancelled jobs that ended before ``cutoff`` (dead ones stay for
        inspection and replay)."""
        result = await self.session.execute(
            delete(Job).where(
                Job.status.in_([JobStatus.SUCCEEDED.value, JobStatus.CANCELLED.value]),
                Job.finished_at < cutoff,
            )
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def claimed_by(job: Job, worker: str) -> ColumnElement[bool]:
    """Still running under this claim: same worker, same attempt."""
    return and_(
        Job.status == JobStatus.RUNNING,
        Job.locked_by == worker,
        Job.attempts == job.attempts,
    )
