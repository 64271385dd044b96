"""Queries for credentials. Authentication runs before the caller's tenant scope is known:
the caller of these methods runs them under the system scope and narrows it right after."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.auth.models import ApiKey, LoginSession
from demandly.tenancy.models import Membership, User


class CredentialRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def session_by_token_hash(self, token_hash: str) -> LoginSession | None:
        result = await self.session.execute(
            select(LoginSession).where(LoginSession.token_hash == token_hash)
        )
        return result.scalar_one_or_none()

    async def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        result = await self.session.execute(select(ApiKey).where(ApiKey.key_hash == key_hash))
        return result.scalar_one_or_none()

    async def user_by_id(self, user_id: str) -> User | None:
        return await self.session.get(User, user_id)

    async def user_by_email(self, email: str) -> User | None:
        result = await self.session.execute(select(User).where(User.email == email.lower()))
        return result.scalar_one_or_none()

    async def memberships_of(self, user_id: str) -> list[Membership]:
        result = await self.session.execute(select(Membership).where(Membership.user_id == user_id))
        return list(result.scalars().all())
