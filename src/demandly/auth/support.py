"""Small helpers the auth services share: recording events about a user's credentials (on
the platform chain, in the system scope) and checking a signed-in user's password."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from demandly.audit import service as audit_service
from demandly.auth import throttle
from demandly.auth.context import AuthContext
from demandly.auth.errors import FailAfterCommit
from demandly.auth.passwords import verify_password_async
from demandly.config import Settings
from demandly.kit.db import system_scope
from demandly.kit.errors import Forbidden, ValidationFailed
from demandly.tenancy.models import User


async def record_user_event(session: AsyncSession, action: str, user_id: str | None) -> None:
    """An event about a user's own credentials, on the platform chain."""
    async with system_scope(session):
        await audit_service.record(session, action=action, entity_type="user", entity_id=user_id)


def require_user(ctx: AuthContext) -> str:
    """The signed-in user's id; API keys have no password, sessions or second factor."""
    if ctx.user_id is None:
        raise Forbidden("Only a signed-in user can do this, not an API key.")
    return ctx.user_id


async def charge_password_check(session: AsyncSession, settings: Settings, user: User) -> None:
    """Checks of a signed-in user's password count against the account's login throttle:
    a stolen session must not become a way to guess the password."""
    await throttle.charge(session, [throttle.account_key(user.email, settings)])


async def clear_password_checks(session: AsyncSession, settings: Settings, user: User) -> None:
    await throttle.reset(session, throttle.account_key(user.email, settings))


async def password_matches(user: User, password: str) -> bool:
    return (await verify_password_async(user.password_hash, password))[0]


def wrong(field: str, message: str) -> FailAfterCommit:
    """A refused check whose failure count must be kept."""
    return FailAfterCommit(ValidationFailed(field, message))
