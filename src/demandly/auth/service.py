"""Authentication: resolving API keys and session tokens into an AuthContext; logging in and
out, the user's sessions, changing the password, and who the caller is (``/me``)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.auth import throttle, totp
from demandly.auth.context import AuthContext, Grant
from demandly.auth.errors import FailAfterCommit
from demandly.auth.keys import (
    API_KEY_PREFIX,
    ResolvedKey,
    forget_api_key,
    resolve_api_key,
)
from demandly.auth.models import LoginSession
from demandly.auth.passwords import hash_password_async, validate_password, verify_password_async
from demandly.auth.repository import CredentialRepository
from demandly.auth.schemas import (
    ApiKeyIdentity,
    MembershipOut,
    MeResponse,
    UserOut,
)
from demandly.auth.support import (
    charge_password_check,
    clear_password_checks,
    password_matches,
    record_user_event,
    require_user,
    system_scope,
    wrong,
)
from demandly.config import Settings
from demandly.kit.context import Actor, Scope
from demandly.kit.crypto import get_keyring, hash_token
from demandly.kit.db import Database, set_scope
from demandly.kit.errors import NotFound, Unauthorized, ValidationFailed
from demandly.kit.ids import random_token
from demandly.kit.time import utcnow
from demandly.tenancy.models import Membership, Role, Status, User

# Write "last used" at most this often: reads must not turn into writes on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# One answer for every wrong e-mail/password combination: no hint which part was wrong.
LOGIN_FAILED = "The e-mail address or the password is wrong."


def grants_from_memberships(memberships: list[Membership]) -> tuple[Grant, ...]:
    return tuple(
        Grant(
            role=Role(m.role),
            agency_id=m.agency_id,
            client_id=m.client_id,
            assigned_client_ids=frozenset(m.assigned_client_ids),
            membership_id=m.id,
        )
        for m in memberships
    )


def context_for_user(
    user: User, memberships: list[Membership], actor: Actor, session_id: str | None = None
) -> AuthContext:
    grants = grants_from_memberships(memberships)
    ctx = AuthContext(
        kind="user",
        subject_id=user.id,
        grants=grants,
        is_platform_admin=user.is_platform_admin,
        user_id=user.id,
        session_id=session_id,
        user=user,
    )
    role = ctx.primary_role
    return replace(
        ctx, actor=replace(actor, kind="user", id=user.id, role=role.value if role else None)
    )


def context_for_api_key(key: ResolvedKey, actor: Actor) -> AuthContext:
    grant = Grant(role=Role(key.role), agency_id=key.agency_id, client_id=key.client_id)
    return AuthContext(
        kind="api_key",
        subject_id=key.id,
        grants=(grant,),
        api_key_id=key.id,
        api_key_name=key.name,
        actor=replace(actor, kind="api_key", id=key.id, role=key.role),
    )


async def authenticate_api_key(
    session: AsyncSession, token: str, actor: Actor
) -> AuthContext | None:
    if not token.startswith(API_KEY_PREFIX):
        return None
    digest = hash_token(token)
    now = utcnow()
    repo = CredentialRepository(session)
    resolved = await resolve_api_key(digest, lambda: repo.api_key_by_hash(digest))
    if resolved is None:
        return None
    if resolved.expires_at and resolved.expires_at <= now:
        forget_api_key(digest)
        return None
    if resolved.last_used_at is None or now - resolved.last_used_at >= LAST_USED_RESOLUTION:
        resolved.last_used_at = now
        await repo.touch_api_key(resolved.id, now)
    return context_for_api_key(resolved, actor)


async def authenticate_session(
    session: AsyncSession, token: str, actor: Actor
) -> AuthContext | None:
    repo = CredentialRepository(session)
    login = await repo.session_by_token_hash(hash_token(token))
    now = utcnow()
    if login is None or not is_session_usable(login, now):
        return None
    user = await repo.user_by_id(login.user_id)
    if user is None or user.status != Status.ACTIVE:
        return None
    if login.last_seen_at is None or now - login.last_seen_at >= LAST_USED_RESOLUTION:
        login.last_seen_at = now
    memberships = await repo.memberships_of(user.id)
    return context_for_user(user, memberships, actor, session_id=login.id)


def is_session_usable(login: LoginSession, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return login.revoked_at is None and not login.pending_totp and login.expires_at > now


def csrf_token_for(session_token: str) -> str:
    """Bound to the session: a page can only send it if it could read our cookie or page."""
    return get_keyring().mac(session_token, "csrf")


def csrf_token_matches(session_token: str, sent: str) -> bool:
    return hmac.compare_digest(csrf_token_for(session_token), sent)


# --- logging in ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedSession:
    token: str
    csrf_token: str
    expires_at: datetime
    user: User
    ctx: AuthContext


async def login(
    session: AsyncSession,
    db: Database,
    settings: Settings,
    *,
    email: str,
    password: str,
    code: str | None,
    actor: Actor,
) -> IssuedSession:
    """Check e-mail, password and (when on) the second factor; issue a session.

    The attempt is counted as a failure before anything is checked (see ``throttle``), in a
    short transaction of its own so that the rows are not locked while the password hash is
    computed. Refusals are raised as ``FailAfterCommit``: their count and audit event are kept."""
    keys = [throttle.account_key(email, settings), throttle.ip_key(actor.ip, settings)]
    if session.in_transaction():
        # A second transaction could wait for this one (SQLite's single writer): count here.
        await throttle.charge(session, keys)
    else:
        async with db.session() as counting:
            await throttle.charge(counting, keys)
            await counting.commit()

    await set_scope(session, Scope.for_system(), actor)
    repo = CredentialRepository(session)
    user = await repo.user_by_email(email)
    matches, new_hash = await verify_password_async(user.password_hash if user else None, password)
    if user is None or not matches or user.status != Status.ACTIVE:
        await record_user_event(session, "login.failed", user.id if user else None)
        raise FailAfterCommit(Unauthorized(LOGIN_FAILED, code="invalid_credentials"))
    if user.totp_enabled_at is not None:
        await _check_second_factor(session, keys, user, code)

    await throttle.reset(session, keys[0])
    await throttle.refund(session, keys[1:])
    if new_hash is not None:
        user.password_hash = new_hash
    return await _issue_session(session, settings, user, actor)


async def _check_second_factor(
    session: AsyncSession, keys: list[throttle.ThrottleKey], user: User, code: str | None
) -> None:
    if not code or not code.strip():
        # The password was right: this attempt was no guess, so it costs nothing.
        await throttle.refund(session, keys)
        raise FailAfterCommit(
            Unauthorized(
                "Enter the code from your authenticator app (or a recovery code).",
                code="totp_required",
            )
        )
    if not await totp.accept_second_factor(session, user, code):
        await record_user_event(session, "login.failed", user.id)
        raise FailAfterCommit(
            Unauthorized("The code is wrong or was already used.", code="totp_invalid")
        )


async def _issue_session(
    session: AsyncSession, settings: Settings, user: User, actor: Actor
) -> IssuedSession:
    now = utcnow()
    token = random_token()
    login_session = LoginSession(
        user_id=user.id,
        token_hash=hash_token(token),
        expires_at=now + timedelta(hours=settings.session_ttl_hours),
        last_seen_at=now,
        ip=actor.ip,
        user_agent=actor.user_agent,
    )
    session.add(login_session)
    memberships = await CredentialRepository(session).memberships_of(user.id)
    ctx = context_for_user(user, memberships, actor, session_id=login_session.id)
    await set_scope(session, Scope.for_system(), ctx.actor)
    await record_user_event(session, "login.succeeded", user.id)
    await set_scope(session, ctx.scope, ctx.actor)
    return IssuedSession(
        token=token,
        csrf_token=csrf_token_for(token),
        expires_at=login_session.expires_at,
        user=user,
        ctx=ctx,
    )


# --- sessions -----------------------------------------------------------------------------


async def logout(session: AsyncSession, ctx: AuthContext | None) -> None:
    """End the caller's session (if it is one)."""
    if ctx is None or ctx.session_id is None or ctx.user_id is None:
        return
    async with system_scope(session):
        await CredentialRepository(session).revoke_sessions(
            ctx.user_id, utcnow(), only_session_id=ctx.session_id
        )
    await record_user_event(session, "logout", ctx.user_id)


async def logout_everywhere(session: AsyncSession, ctx: AuthContext) -> int:
    user_id = require_user(ctx)
    async with system_scope(session):
        revoked = await CredentialRepository(session).revoke_sessions(user_id, utcnow())
    await record_user_event(session, "sessions.revoked", user_id)
    return revoked


def sessions_statement(ctx: AuthContext) -> Select[Any]:
    return CredentialRepository.active_sessions_statement(require_user(ctx), utcnow())


async def revoke_session(session: AsyncSession, ctx: AuthContext, session_id: str) -> bool:
    """Revoke one of the user's own live sessions; True if it was the current one."""
    user_id = require_user(ctx)
    now = utcnow()
    repo = CredentialRepository(session)
    async with system_scope(session):
        if await repo.active_session_of(user_id, session_id, now) is None:
            raise NotFound("Session not found.")
        await repo.revoke_sessions(user_id, now, only_session_id=session_id)
    await record_user_event(session, "sessions.revoked", user_id)
    return session_id == ctx.session_id


async def change_password(
    session: AsyncSession, settings: Settings, ctx: AuthContext, current: str, new: str
) -> None:
    """Set a new password (policy-checked) and sign out every other session."""
    user_id = require_user(ctx)
    repo = CredentialRepository(session)
    async with system_scope(session):
        user = await repo.user_by_id(user_id)
    if user is None:
        raise Unauthorized()
    if new == current:
        raise ValidationFailed("new_password", "The new password must differ from the current one.")
    try:
        validate_password(new, user.email)
    except ValidationFailed as error:
        raise ValidationFailed("new_password", error.message) from None
    await charge_password_check(session, settings, user)
    if not await password_matches(user, current):
        raise wrong("current_password", "The current password is wrong.")
    await clear_password_checks(session, settings, user)
    new_hash = await hash_password_async(new)
    now = utcnow()
    async with system_scope(session):
        user.password_hash = new_hash
        user.password_changed_at = now
        revoked = await repo.revoke_sessions(user.id, now, keep_session_id=ctx.session_id)
    await record_user_event(session, "password.changed", user.id)
    if revoked:
        await record_user_event(session, "sessions.revoked", user.id)


# --- who is calling -----------------------------------------------------------------------


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        name=user.name,
        locale=user.locale,
        is_platform_admin=user.is_platform_admin,
        totp_enabled=user.totp_enabled_at is not None,
    )


async def whoami(session: AsyncSession, ctx: AuthContext) -> MeResponse:
    if ctx.api_key_id is not None:
        grant = ctx.grants[0]
        return MeResponse(
            user=None,
            memberships=[],
            api_key=ApiKeyIdentity(
                id=ctx.api_key_id,
                name=ctx.api_key_name or "",
                role=grant.role,
                agency_id=grant.agency_id,
                client_id=grant.client_id,
            ),
        )
    require_user(ctx)
    if ctx.user is None:
        raise Unauthorized()
    # Authentication loaded the user and their memberships (whatever their role lets them
    # see of the agency): answer from those.
    return MeResponse(
        user=user_out(ctx.user),
        memberships=[
            MembershipOut(
                id=g.membership_id or "",
                role=g.role,
                agency_id=g.agency_id,
                client_id=g.client_id,
                assigned_client_ids=sorted(g.assigned_client_ids),
            )
            for g in ctx.grants
        ],
    )
