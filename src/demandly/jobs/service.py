"""The outbox: jobs and domain events written in the caller's transaction, so they exist if and
only if the change that caused them commits. Never commits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from demandly.audit.service import record
from demandly.jobs.models import DomainEvent, Job, JobStatus
from demandly.jobs.registry import MAX_NAME_LENGTH, autodiscover, subscribers
from demandly.jobs.repository import JobRepository
from demandly.kit.context import Scope
from demandly.kit.db import session_scope, set_scope
from demandly.kit.errors import Conflict, NotFound, UnscopedQuery
from demandly.kit.ids import new_id
from demandly.kit.time import ensure_utc, utcnow

MAX_IDEMPOTENCY_KEY = 200
RETRYABLE = (JobStatus.DEAD, JobStatus.SUCCEEDED)
CANCELLABLE = (JobStatus.QUEUED,)


def _check_place(session: AsyncSession, agency_id: str | None, client_id: str | None) -> None:
    """A tenant's job or event may only be written within the scope. Platform-level ones (no
    agency: a password-reset mail, say) may be written from any scope; they are written and
    read back under the system scope, which alone sees them."""
    if client_id is not None and agency_id is None:
        raise ValueError("a client's job or event needs its agency_id")
    scope = session_scope(session.sync_session)
    if scope is None:
        raise UnscopedQuery("job or event written without a tenant scope")
    if agency_id is not None and not scope.allows(agency_id, client_id):
        raise NotFound()


def _check_name(kind: str, name: str) -> None:
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"{kind} must be 1 to {MAX_NAME_LENGTH} characters")


def _json(payload: dict[str, Any] | None) -> dict[str, Any]:
    payload = dict(payload or {})
    try:
        json.dumps(payload)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"payload must be JSON-serialisable: {exc}") from exc
    return payload


@dataclass(frozen=True)
class NewJob:
    """A job to queue with ``enqueue_many``; the fields mean what ``enqueue``'s arguments do."""

    name: str
    payload: dict[str, Any]
    agency_id: str | None = None
    client_id: str | None = None
    run_at: datetime | None = None
    priority: int = 100
    idempotency_key: str | None = None
    max_attempts: int = 8


def _job_values(session: AsyncSession, job: NewJob, now: datetime) -> dict[str, Any]:
    """The job's row, checked: its name, its place in the session's scope, its limits."""
    _check_name("task name", job.name)
    _check_place(session, job.agency_id, job.client_id)
    if job.max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    key = job.idempotency_key
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise ValueError(f"idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    return {
        "id": new_id(Job.__id_prefix__),
        "created_at": now,
        "name": job.name,
        "payload": _json(job.payload),
        "agency_id": job.agency_id,
        "client_id": job.client_id,
        "status": JobStatus.QUEUED.value,
        "priority": job.priority,
        "run_at": ensure_utc(job.run_at) if job.run_at is not None else now,
        "attempts": 0,
        "max_attempts": job.max_attempts,
        "idempotency_key": key,
    }


async def enqueue(
    session: AsyncSession,
    name: str,
    payload: dict[str, Any],
    *,
    agency_id: str | None = None,
    client_id: str | None = None,
    run_at: datetime | None = None,
    priority: int = 100,
    idempotency_key: str | None = None,
    max_attempts: int = 8,
) -> Job:
    """Queue task ``name`` in the caller's transaction. A job with the same idempotency key is
    returned instead of adding a second one."""
    job = NewJob(
        name, payload, agency_id, client_id, run_at, priority, idempotency_key, max_attempts
    )
    return await _insert_job(session, _job_values(session, job, utcnow()))


async def enqueue_many(session: AsyncSession, jobs: Sequence[NewJob]) -> list[str]:
    """Queue several jobs in the caller's transaction with one INSERT per place (agency and
    client), in order; each behaves as ``enqueue`` would (a taken idempotency key names the
    job that holds it). Returns the jobs' ids: the callers queue and go on, and handing back
    whole jobs cost a booking a twentieth of its time."""
    now = utcnow()
    rows = [_job_values(session, job, now) for job in jobs]
    written: dict[str, str] = {}
    for (agency_id, client_id), group in _by_place(rows).items():
        async with _scope_to_write(session, agency_id, client_id):
            written.update(await _insert_jobs(session, group))
    return [written[row["id"]] for row in rows]


def _by_place(rows: list[dict[str, Any]]) -> dict[tuple[str | None, str | None], list[Any]]:
    """Rows grouped by their agency and client, each group in the rows' order."""
    places: dict[tuple[str | None, str | None], list[dict[str, Any]]] = {}
    for row in rows:
        places.setdefault((row["agency_id"], row["client_id"]), []).append(row)
    return places


async def _insert_jobs(session: AsyncSession, rows: list[dict[str, Any]]) -> dict[str, str]:
    """The id of the job each row asked for: its own, or for a row whose key was taken, the
    id of the job that holds the key."""
    repo = JobRepository(session)
    inserted = await repo.insert_many(rows)
    ids: dict[str, str] = {}
    for row in rows:
        if row["id"] in inserted:
            ids[row["id"]] = row["id"]
            continue
        holder = await repo.by_idempotency_key(row["idempotency_key"])
        if holder is None:
            raise Conflict("The idempotency key is in use by a job outside this scope.")
        ids[row["id"]] = holder.id
    return ids


@dataclass(frozen=True)
class NewEvent:
    """A domain event to write with ``emit_many``; the fields mean what ``emit``'s do."""

    type: str
    agency_id: str | None
    client_id: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    payload: dict[str, Any] | None = None


async def emit(
    session: AsyncSession,
    type: str,
    *,
    agency_id: str | None,
    client_id: str | None = None,
    entity_type: str | None = None,
    entity_id: str | None = None,
    payload: dict[str, Any] | None = None,
) -> DomainEvent:
    """Write a domain event and one job per subscribed handler, in the caller's transaction."""
    event = NewEvent(type, agency_id, client_id, entity_type, entity_id, payload)
    return (await emit_many(session, [event]))[0]


async def emit_many(session: AsyncSession, events: Sequence[NewEvent]) -> list[DomainEvent]:
    """Write domain events, in order, with one INSERT per place (agency and client), and one
    job per subscribed handler of each, in the caller's transaction."""
    autodiscover()
    now = utcnow()
    rows = []
    for event in events:
        _check_name("event type", event.type)
        _check_place(session, event.agency_id, event.client_id)
        rows.append(
            {
                "id": new_id(DomainEvent.__id_prefix__),
                "created_at": now,
                "type": event.type,
                "agency_id": event.agency_id,
                "client_id": event.client_id,
                "entity_type": event.entity_type,
                "entity_id": event.entity_id,
                "payload": _json(event.payload),
            }
        )
    written = await _insert_events(session, rows)
    handlers = [
        NewJob(
            task_name,
            {"event_id": row["id"], "event_type": row["type"]},
            agency_id=row["agency_id"],
            client_id=row["client_id"],
            idempotency_key=f"{row['id']}:{task_name}",
        )
        for row in rows
        for task_name in subscribers(row["type"])
    ]
    if handlers:
        await enqueue_many(session, handlers)
    return written


@asynccontextmanager
async def _scope_to_write(
    session: AsyncSession, agency_id: str | None, client_id: str | None
) -> AsyncIterator[None]:
    """A platform-level row written from a tenant's unit of work is written (and read back)
    under the system scope, which alone may see it; then the scope narrows again."""
    previous = session_scope(session.sync_session)
    if previous is None or previous.allows(agency_id, client_id):
        yield
        return
    # Pending changes are flushed (and checked) under the caller's own scope first.
    await session.flush()
    await set_scope(session, Scope.for_system())
    try:
        yield
    finally:
        await set_scope(session, previous)


async def _insert_job(session: AsyncSession, values: dict[str, Any]) -> Job:
    repo = JobRepository(session)
    async with _scope_to_write(session, values["agency_id"], values["client_id"]):
        job = await repo.insert(values)
        if job is None:
            job = await repo.by_idempotency_key(values["idempotency_key"])
    if job is None:
        # The key belongs to a job of another tenant.
        raise Conflict("The idempotency key is in use by a job outside this scope.")
    return job


async def _insert_events(session: AsyncSession, rows: list[dict[str, Any]]) -> list[DomainEvent]:
    written: dict[str, DomainEvent] = {}
    for (agency_id, client_id), group in _by_place(rows).items():
        async with _scope_to_write(session, agency_id, client_id):
            for event in await JobRepository(session).insert_events(group):
                written[event.id] = event
    return [written[row["id"]] for row in rows]


# --- operating on jobs (the API) -----------------------------------------------------------


async def get_job(session: AsyncSession, job_id: str) -> Job:
    job = await JobRepository(session).get(job_id)
    if job is None:
        raise NotFound()
    return job


async def retry_job(session: AsyncSession, job: Job) -> Job:
    """Run a dead or succeeded job again, now, with a fresh count of attempts."""
    repo = JobRepository(session)
    requeued = await repo.update_where(
        job.id,
        Job.status.in_([s.value for s in RETRYABLE]),
        status=JobStatus.QUEUED.value,
        run_at=utcnow(),
        attempts=0,
        finished_at=None,
        locked_by=None,
        lease_expires_at=None,
    )
    return await _after_operation(session, job, requeued, "retried", "Only dead or succeeded")


async def cancel_job(session: AsyncSession, job: Job) -> Job:
    """Cancel a job that has not started."""
    cancelled = await JobRepository(session).update_where(
        job.id,
        Job.status.in_([s.value for s in CANCELLABLE]),
        status=JobStatus.CANCELLED.value,
        finished_at=utcnow(),
    )
    return await _after_operation(session, job, cancelled, "cancelled", "Only queued")


async def _after_operation(
    session: AsyncSession, job: Job, applied: bool, verb: str, allowed: str
) -> Job:
    current = await get_job(session, job.id)
    if not applied:
        raise Conflict(f"{allowed} jobs can be {verb}; this job is {current.status}.")
    await record(
        session,
        action=f"job.{verb}",
        entity_type="job",
        entity_id=job.id,
        agency_id=job.agency_id,
        client_id=job.client_id,
    )
    return current
