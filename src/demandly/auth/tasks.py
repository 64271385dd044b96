"""Periodic housekeeping of credentials: ended sessions and forgotten login failures."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from demandly.auth import throttle
from demandly.auth.repository import CredentialRepository
from demandly.jobs.registry import JobContext, periodic
from demandly.kit.time import utcnow

# Keep ended sessions a day for the "where am I logged in" list and incident analysis.
ENDED_SESSION_KEPT = timedelta(days=1)


@periodic("auth.purge_ended_sessions", every=timedelta(hours=1))
async def purge_ended_sessions(ctx: JobContext, payload: dict[str, Any]) -> None:
    await CredentialRepository(ctx.session).delete_expired_sessions(utcnow() - ENDED_SESSION_KEPT)


@periodic("auth.purge_stale_throttles", every=timedelta(hours=1))
async def purge_stale_throttles(ctx: JobContext, payload: dict[str, Any]) -> None:
    await throttle.purge_stale(ctx.session)


@periodic("auth.purge_password_resets", every=timedelta(hours=1))
async def purge_password_resets(ctx: JobContext, payload: dict[str, Any]) -> None:
    # Links that ended a day ago are of no use, not even to explain a support question.
    await CredentialRepository(ctx.session).delete_ended_password_resets(
        utcnow() - ENDED_SESSION_KEPT
    )
