"""Jobs and domain events: visible, retryable, cancellable (``/api/v1/jobs``, ``/events``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from demandly.auth.context import AuthContext
from demandly.auth.dependencies import CurrentAuth, DbSession
from demandly.auth.permissions import Permission
from demandly.jobs import service
from demandly.jobs.models import JobStatus
from demandly.jobs.repository import JobRepository
from demandly.jobs.schemas import DomainEventOut, JobOut
from demandly.kit.context import Scope
from demandly.kit.errors import Forbidden, ValidationFailed
from demandly.kit.pagination import Page, PageParams, page_params

router = APIRouter(tags=["jobs"])

Id = Annotated[str | None, Query(max_length=64)]
JobId = Annotated[str, Path(max_length=64)]


def _readable(
    auth: AuthContext, permission: Permission, agency_id: str | None, client_id: str | None
) -> Scope | None:
    """Authorise a listing: the extra narrowing to apply, or None for "the session's scope"."""
    if agency_id is not None:
        auth.require(permission, agency_id, client_id)
        return None
    if auth.is_platform_admin:
        return None
    if client_id is not None:
        raise ValidationFailed("agency_id", "Give the client's agency_id with client_id.")
    within = auth.scope_where(permission)
    if within is None or not within.grants:
        raise Forbidden(f"Your role does not allow {permission.value}.")
    return within


@router.get("/jobs", response_model=Page[JobOut])
async def list_jobs(
    auth: CurrentAuth,
    session: DbSession,
    page: Annotated[PageParams, Depends(page_params)],
    agency_id: Id = None,
    client_id: Id = None,
    status: JobStatus | None = None,
    name: Annotated[str | None, Query(max_length=100)] = None,
) -> Page[JobOut]:
    """Newest first. Platform admins without ``agency_id`` see every job, platform jobs too."""
    within = _readable(auth, Permission.JOBS_READ, agency_id, client_id)
    rows, cursor = await JobRepository(session).page(
        page,
        within=within,
        agency_id=agency_id,
        client_id=client_id,
        status=status.value if status else None,
        name=name,
    )
    return Page[JobOut](items=[JobOut.model_validate(r) for r in rows], next_cursor=cursor)


@router.get("/jobs/{job_id}", response_model=JobOut)
async def get_job(job_id: JobId, auth: CurrentAuth, session: DbSession) -> JobOut:
    job = await service.get_job(session, job_id)
    auth.require(Permission.JOBS_READ, job.agency_id, job.client_id)
    return JobOut.model_validate(job)


@router.post("/jobs/{job_id}/retry", response_model=JobOut)
async def retry_job(job_id: JobId, auth: CurrentAuth, session: DbSession) -> JobOut:
    """A dead or succeeded job runs again now, with its attempts reset."""
    job = await service.get_job(session, job_id)
    auth.require(Permission.JOBS_MANAGE, job.agency_id, job.client_id)
    return JobOut.model_validate(await service.retry_job(session, job))


@router.post("/jobs/{job_id}/cancel", response_model=JobOut)
async def cancel_job(job_id: JobId, auth: CurrentAuth, session: DbSession) -> JobOut:
    """A queued job is cancelled and never runs."""
    job = await service.get_job(session, job_id)
    auth.require(Permission.JOBS_MANAGE, job.agency_id, job.client_id)
    return JobOut.model_validate(await service.cancel_job(session, job))


@router.get("/events", response_model=Page[DomainEventOut])
async def list_events(
    auth: CurrentAuth,
    session: DbSession,
    page: Annotated[PageParams, Depends(page_params)],
    agency_id: Id = None,
    client_id: Id = None,
    type: Annotated[str | None, Query(max_length=100)] = None,
) -> Page[DomainEventOut]:
    """Domain events, newest first."""
    within = _readable(auth, Permission.JOBS_READ, agency_id, client_id)
    rows, cursor = await JobRepository(session).event_page(
        page, within=within, agency_id=agency_id, client_id=client_id, event_type=type
    )
    return Page[DomainEventOut](
        items=[DomainEventOut.model_validate(r) for r in rows], next_cursor=cursor
    )
