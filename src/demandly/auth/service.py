"""Authentication: resolving API keys and session tokens into an AuthContext."""

from __future__ import annotations

import hmac
from dataclasses import replace
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from demandly.auth.context import AuthContext, Grant
from demandly.auth.models import ApiKey, LoginSession
from demandly.auth.repository import CredentialRepository
from demandly.kit.context import Actor
from demandly.kit.crypto import get_keyring, hash_token
from demandly.kit.time import utcnow
from demandly.tenancy.models import Membership, Role, Status, User

API_KEY_PREFIX = "dmd_"
# Write "last used" at most this often: reads must not turn into writes on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def grants_from_memberships(memberships: list[Membership]) -> tuple[Grant, ...]:
    return tuple(
        Grant(
            role=Role(m.role),
            agency_id=m.agency_id,
            client_id=m.client_id,
            assigned_client_ids=frozenset(m.assigned_client_ids),
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
    )
    role = ctx.primary_role
    return replace(
        ctx, actor=replace(actor, kind="user", id=user.id, role=role.value if role else None)
    )


def context_for_api_key(key: ApiKey, actor: Actor) -> AuthContext:
    grant = Grant(role=Role(key.role), agency_id=key.agency_id, client_id=key.client_id)
    return AuthContext(
        kind="api_key",
        subject_id=key.id,
        grants=(grant,),
        api_key_id=key.id,
        actor=replace(actor, kind="api_key", id=key.id, role=key.role),
    )


async def authenticate_api_key(
    session: AsyncSession, token: str, actor: Actor
) -> AuthContext | None:
    if not token.startswith(API_KEY_PREFIX):
        return None
    key = await CredentialRepository(session).api_key_by_hash(hash_token(token))
    now = utcnow()
    if key is None or key.revoked_at is not None or (key.expires_at and key.expires_at <= now):
        return None
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        key.last_used_at = now
    return context_for_api_key(key, actor)


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


def is_session_usable(login: LoginSession, now: object | None = None) -> bool:
    now = now or utcnow()
    return login.revoked_at is None and not login.pending_totp and login.expires_at > now  # type: ignore[operator]


def csrf_token_for(session_token: str) -> str:
    """Bound to the session: a page can only send it if it could read our cookie or page."""
    return get_keyring().mac(session_token, "csrf")


def csrf_token_matches(session_token: str, sent: str) -> bool:
    return hmac.compare_digest(csrf_token_for(session_token), sent)
