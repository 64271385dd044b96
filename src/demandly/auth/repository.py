"""Queries for credentials, sessions, 2FA, throttling and API keys.

Authentication runs before the caller's tenant scope is known: the credential look-ups run
under the system scope, set deliberately by the caller and narrowed right after. API keys as
managed objects (create, list, revoke) are read through the caller's own scope."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, delete, false, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.auth.models import (
    ApiKey,
    LoginSession,
    LoginThrottle,
    PasswordReset,
    RecoveryCode,
)
from demandly.tenancy.models import Agency, Client, Membership, Status, User

AGENCY_SUSPENDED = Status.SUSPENDED.value


class CredentialRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def session_by_token_hash(self, token_hash: str) -> LoginSession | None:
        result = await self.session.execute(
            select(LoginSession).where(LoginSession.token_hash == token_hash)
        )
        return result.scalar_one_or_none()

    async def api_key_by_hash(self, key_hash: str) -> tuple[ApiKey, str] | None:
        """The key with this hash and its agency's status."""
        result = await self.session.execute(
            select(ApiKey, Agency.status)
            .join(Agency, Agency.id == ApiKey.agency_id)
            .where(ApiKey.key_hash == key_hash)
        )
        row = result.one_or_none()
        return (row[0], row[1]) if row is not None else None

    async def touch_api_key(self, key_id: str, when: datetime) -> None:
        await self.session.execute(
            update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=when)
        )

    async def user_by_id(self, user_id: str) -> User | None:
        return await self.session.get(User, user_id)

    async def user_by_email(self, email: str) -> User | None:
        result = await self.session.execute(select(User).where(User.email == email.strip().lower()))
        return result.scalar_one_or_none()

    async def memberships_of(self, user_id: str) -> list[Membership]:
        """The user's memberships that grant anything: those of suspended agencies do not."""
        result = await self.session.execute(
            select(Membership)
            .join(Agency, Agency.id == Membership.agency_id)
            .where(Membership.user_id == user_id, Agency.status != AGENCY_SUSPENDED)
            .order_by(Membership.created_at, Membership.id)
        )
        return list(result.scalars().all())

    async def agency_statuses_of(self, user_id: str) -> set[str]:
        """The statuses of the agencies the user is a member of."""
        result = await self.session.execute(
            select(Agency.status)
            .join(Membership, Membership.agency_id == Agency.id)
            .where(Membership.user_id == user_id)
            .distinct()
        )
        return set(result.scalars().all())

    async def agency_by_id(self, agency_id: str) -> Agency | None:
        return await self.session.get(Agency, agency_id)

    # --- login sessions -------------------------------------------------------------------

    @staticmethod
    def active_sessions_statement(user_id: str, now: datetime) -> Select[Any]:
        return select(LoginSession).where(
            LoginSession.user_id == user_id,
            LoginSession.revoked_at.is_(None),
            LoginSession.pending_totp.is_(False),
            LoginSession.expires_at > now,
        )

    async def active_session_of(
        self, user_id: str, session_id: str, now: datetime
    ) -> LoginSession | None:
        statement = self.active_sessions_statement(user_id, now).where(
            LoginSession.id == session_id
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def revoke_sessions(
        self,
        user_id: str,
        now: datetime,
        *,
        keep_session_id: str | None = None,
        only_session_id: str | None = None,
    ) -> int:
        """Revoke the user's live sessions (all, all but one, or just one); how many."""
        statement = update(LoginSession).where(
            LoginSession.user_id == user_id,
            LoginSession.revoked_at.is_(None),
            LoginSession.expires_at > now,
        )
        if keep_session_id is not None:
            statement = statement.where(LoginSession.id != keep_session_id)
        if only_session_id is not None:
            statement = statement.where(LoginSession.id == only_session_id)
        result = await self.session.execute(
            statement.values(revoked_at=now).execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    # --- two-factor -----------------------------------------------------------------------

    async def claim_totp_counter(self, user_id: str, counter: int) -> bool:
        """Record ``counter`` as the last used time step unless it (or a later one) already
        was: concurrent logins with the same code cannot both win."""
        result = await self.session.execute(
            update(User)
            .where(
                User.id == user_id,
                or_(User.totp_last_counter.is_(None), User.totp_last_counter < counter),
            )
            .values(totp_last_counter=counter)
            .execution_options(synchronize_session="fetch")
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def replace_recovery_codes(self, user_id: str, code_hashes: Iterable[str]) -> None:
        await self.delete_recovery_codes(user_id)
        self.session.add_all(RecoveryCode(user_id=user_id, code_hash=h) for h in code_hashes)
        await self.session.flush()

    async def delete_recovery_codes(self, user_id: str) -> None:
        await self.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))

    async def use_recovery_code(self, user_id: str, code_hash: str, now: datetime) -> bool:
        """Mark an unused code as used; False if there is none (or it was used meanwhile)."""
        result = await self.session.execute(
            update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user_id,
                RecoveryCode.code_hash == code_hash,
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def unused_recovery_code_count(self, user_id: str) -> int:
        result = await self.session.execute(
            select(RecoveryCode.id).where(
                RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
            )
        )
        return len(result.all())

    async def delete_expired_sessions(self, before: datetime) -> int:
        """Sessions that ended (expired or revoked) before ``before``."""
        result = await self.session.execute(
            delete(LoginSession).where(
                or_(
                    LoginSession.expires_at < before,
                    and_(LoginSession.revoked_at.is_not(None), LoginSession.revoked_at < before),
                )
            )
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    # --- password resets ------------------------------------------------------------------

    async def password_reset_by_token_hash(self, token_hash: str) -> PasswordReset | None:
        """The reset with this token, locked: two tabs cannot both use one link."""
        result = await self.session.execute(
            select(PasswordReset).where(PasswordReset.token_hash == token_hash).with_for_update()
        )
        return result.scalar_one_or_none()

    async def use_password_resets(self, user_id: str, now: datetime) -> int:
        """Mark every unused reset link of the user used (a new password voids them all)."""
        result = await self.session.execute(
            update(PasswordReset)
            .where(PasswordReset.user_id == user_id, PasswordReset.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def delete_ended_password_resets(self, before: datetime) -> int:
        """Reset links that expired before ``before`` (used or not)."""
        result = await self.session.execute(
            delete(PasswordReset).where(PasswordReset.expires_at < before)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


class ThrottleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock(self, keys: list[str]) -> dict[str, LoginThrottle]:
        """The rows of ``keys`` (created when missing), locked until the transaction ends.
        Locked in key order, so two transactions never wait on each other in a circle."""
        dialect = self.session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        await self.session.execute(
            insert(LoginThrottle)
            .values([{"key": key, "failures": 0} for key in sorted(set(keys))])
            .on_conflict_do_nothing(index_elements=["key"])
        )
        result = await self.session.execute(
            select(LoginThrottle)
            .where(LoginThrottle.key.in_(keys))
            .order_by(LoginThrottle.key)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return {row.key: row for row in result.scalars().all()}

    async def delete(self, key: str) -> None:
        await self.session.execute(delete(LoginThrottle).where(LoginThrottle.key == key))

    async def delete_stale(self, now: datetime, forget_after: timedelta) -> int:
        result = await self.session.execute(
            delete(LoginThrottle).where(
                or_(
                    LoginThrottle.last_failure_at.is_(None),
                    LoginThrottle.last_failure_at < now - forget_after,
                ),
                or_(LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until <= now),
            )
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


class ApiKeyRepository:
    """API keys as the caller manages them: every query runs in the caller's scope."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def agency(self, agency_id: str) -> Agency | None:
        result = await self.session.execute(select(Agency).where(Agency.id == agency_id))
        return result.scalar_one_or_none()

    async def active_keys_of_client(self, client_id: str) -> list[ApiKey]:
        result = await self.session.execute(
            select(ApiKey).where(ApiKey.client_id == client_id, ApiKey.revoked_at.is_(None))
        )
        return list(result.scalars())

    async def live_client(self, client_id: str) -> Client | None:
        result = await self.session.execute(
            select(Client).where(
                Client.id == client_id,
                Client.deleted_at.is_(None),
                Client.status != "deleted",
            )
        )
        return result.scalar_one_or_none()

    async def get(self, key_id: str) -> ApiKey | None:
        result = await self.session.execute(select(ApiKey).where(ApiKey.id == key_id))
        return result.scalar_one_or_none()

    def list_statement(
        self,
        *,
        places: list[tuple[str, str | None]] | None,
        agency_id: str | None = None,
        client_id: str | None = None,
    ) -> Select[Any]:
        """Keys at the given places (an agency's all, or one client's), narrowed by the
        filters; ``places`` None means no restriction beyond the scope."""
        statement = select(ApiKey)
        if places is not None:
            conditions = [
                ApiKey.agency_id == agency
                if client is None
                else and_(ApiKey.agency_id == agency, ApiKey.client_id == client)
                for agency, client in places
            ]
            statement = statement.where(or_(*conditions) if conditions else false())
        if agency_id is not None:
            statement = statement.where(ApiKey.agency_id == agency_id)
        if client_id is not None:
            statement = statement.where(ApiKey.client_id == client_id)
        return statement
