"""API keys as objects the caller manages: create (shown once), list, revoke.

A key holds one role at one place: an agency role at an agency, or a client role at a client.
Whoever makes or revokes a key needs ``api_keys:manage`` there and may not hand out (or take
away) a role above their own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.audit import service as audit_service
from demandly.auth.context import AuthContext
from demandly.auth.models import ApiKey
from demandly.auth.permissions import Permission, allows, can_grant
from demandly.auth.repository import ApiKeyRepository
from demandly.kit.cache import TTLCache
from demandly.kit.crypto import hash_token
from demandly.kit.errors import Forbidden, NotFound, ValidationFailed
from demandly.kit.ids import random_token
from demandly.kit.time import utcnow
from demandly.tenancy.models import Role, Status

API_KEY_PREFIX = "dmd_"
DISPLAY_PREFIX_LENGTH = 12
MANAGE = Permission.API_KEYS_MANAGE


@dataclass
class ResolvedKey:
    """What a request needs of an API key, kept briefly so that busy machine clients do not
    cost a look-up per call."""

    id: str
    name: str
    role: str
    agency_id: str
    client_id: str | None
    expires_at: datetime | None
    last_used_at: datetime | None
    agency_suspended: bool

    @classmethod
    def of(cls, key: ApiKey, agency_status: str) -> ResolvedKey:
        return cls(
            key.id,
            key.name,
            key.role,
            key.agency_id,
            key.client_id,
            key.expires_at,
            key.last_used_at,
            agency_status == Status.SUSPENDED,
        )


# A key changes only by revocation, which clears its entry in this process at once; other
# processes stop accepting it within KEY_CACHE_SECONDS (docs/security.md).
KEY_CACHE_SECONDS = 5.0
resolved_keys: TTLCache[str, ResolvedKey] = TTLCache(
    ttl_seconds=KEY_CACHE_SECONDS, max_items=10_000
)


_lookups: dict[str, asyncio.Future[ResolvedKey | None]] = {}


def forget_api_key(key_hash: str) -> None:
    resolved_keys.discard(key_hash)


def forget_all_api_keys() -> None:
    """After a change that touches many keys at once (an agency suspended or reactivated)."""
    resolved_keys.clear()


async def resolve_api_key(
    key_hash: str, load: Callable[[], Awaitable[tuple[ApiKey, str] | None]]
) -> ResolvedKey | None:
    """The live key with this hash: from the cache, else loaded once however many requests
    ask at the same moment (the others wait for that one look-up)."""
    cached = resolved_keys.get(key_hash)
    if cached is not None:
        return cached
    pending = _lookups.get(key_hash)
    if pending is not None:
        await asyncio.wait([pending])
        if not pending.cancelled() and pending.exception() is None:
            return pending.result()
    future: asyncio.Future[ResolvedKey | None] = asyncio.get_running_loop().create_future()
    _lookups[key_hash] = future
    try:
        found = await load()
        resolved = (
            ResolvedKey.of(*found) if found is not None and found[0].revoked_at is None else None
        )
        if resolved is not None:
            lifetime = (
                (resolved.expires_at - utcnow()).total_seconds() if resolved.expires_at else None
            )
            resolved_keys.put(key_hash, resolved, lifetime)
        future.set_result(resolved)
        return resolved
    except BaseException:
        future.cancel()
        raise
    finally:
        _lookups.pop(key_hash, None)


def _check_place_and_role(agency_id: str | None, client_id: str | None, role: Role) -> None:
    if (agency_id is None) == (client_id is None):
        raise ValidationFailed("agency_id", "Give exactly one of agency_id and client_id.")
    if client_id is not None and not role.is_client_role:
        raise ValidationFailed(
            "role",
            "A client's key needs a client role (client_admin, client_member, client_viewer).",
        )
    if agency_id is not None and not role.is_agency_role:
        raise ValidationFailed(
            "role",
            "An agency's key needs an agency role (agency_owner, agency_admin, agency_member).",
        )


async def _place(
    repo: ApiKeyRepository, agency_id: str | None, client_id: str | None
) -> tuple[str, str | None]:
    """(agency id, client id) of a place the caller can see; 404 otherwise."""
    if client_id is not None:
        client = await repo.live_client(client_id)
        if client is None:
            raise NotFound("Client not found.")
        return client.agency_id, client.id
    assert agency_id is not None
    agency = await repo.agency(agency_id)
    if agency is None:
        raise NotFound("Agency not found.")
    return agency.id, None


async def create_api_key(
    session: AsyncSession,
    ctx: AuthContext,
    *,
    name: str,
    role: Role,
    agency_id: str | None,
    client_id: str | None,
) -> tuple[ApiKey, str]:
    """The new key and its secret (returned this once, stored only as a hash)."""
    _check_place_and_role(agency_id, client_id, role)
    agency_id, client_id = await _place(ApiKeyRepository(session), agency_id, client_id)
    own_role = ctx.require(MANAGE, agency_id, client_id)
    if not can_grant(own_role, role):
        raise Forbidden(f"Your role ({own_role.value}) cannot create a key with role {role.value}.")
    secret = random_token(API_KEY_PREFIX)
    key = ApiKey(
        name=name.strip() or "API key",
        key_hash=hash_token(secret),
        display_prefix=secret[:DISPLAY_PREFIX_LENGTH],
        role=role.value,
        agency_id=agency_id,
        client_id=client_id,
        created_by_user_id=ctx.user_id,
    )
    session.add(key)
    # The audit hook records the row's creation as ``api_key.created``.
    await session.flush()
    return key, secret


def _manageable_places(ctx: AuthContext) -> list[tuple[str, str | None]]:
    return [(g.agency_id, g.client_id) for g in ctx.grants if allows(g.role, MANAGE)]


async def list_statement(
    session: AsyncSession, ctx: AuthContext, *, agency_id: str | None, client_id: str | None
) -> Select[Any]:
    """Keys the caller manages, optionally of one agency or one client."""
    repo = ApiKeyRepository(session)
    if client_id is not None:
        place_agency, place_client = await _place(repo, None, client_id)
        ctx.require(MANAGE, place_agency, place_client)
        if agency_id is not None and agency_id != place_agency:
            raise NotFound("Client not found.")
        agency_id, client_id = place_agency, place_client
    elif agency_id is not None:
        await _place(repo, agency_id, None)
    if ctx.is_platform_admin:
        return repo.list_statement(places=None, agency_id=agency_id, client_id=client_id)
    places = _manageable_places(ctx)
    if agency_id is not None:
        places = [p for p in places if p[0] == agency_id]
    if not places:
        raise Forbidden("Your role does not allow api_keys:manage here.")
    return repo.list_statement(places=places, agency_id=agency_id, client_id=client_id)


async def revoke_api_key(session: AsyncSession, ctx: AuthContext, key_id: str) -> None:
    """Stops working at once; revoking twice is harmless."""
    repo = ApiKeyRepository(session)
    key = await repo.get(key_id)
    if key is None:
        raise NotFound("API key not found.")
    own_role = ctx.require(MANAGE, key.agency_id, key.client_id)
    if not can_grant(own_role, Role(key.role)):
        raise Forbidden(f"Your role ({own_role.value}) cannot revoke a key with role {key.role}.")
    if key.revoked_at is not None:
        return
    key.revoked_at = utcnow()
    forget_api_key(key.key_hash)
    await audit_service.record(
        session,
        action="api_key.revoked",
        entity_type="api_key",
        entity_id=key.id,
        agency_id=key.agency_id,
        client_id=key.client_id,
    )


async def revoke_keys_of_client(session: AsyncSession, client_id: str) -> int:
    """A deleted client's keys stop working at once (its data is going away)."""
    keys = await ApiKeyRepository(session).active_keys_of_client(client_id)
    now = utcnow()
    for key in keys:
        key.revoked_at = now
        forget_api_key(key.key_hash)
    return len(keys)
