"""FastAPI dependencies: the database session of the request and the caller's AuthContext."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.auth import service as auth_service
from demandly.auth.context import AuthContext
from demandly.auth.errors import FailAfterCommit
from demandly.kit.context import Actor, Scope
from demandly.kit.db import Database, set_scope
from demandly.kit.errors import Forbidden, Unauthorized
from demandly.kit.http import client_ip

SESSION_COOKIE = "dmd_session"
CSRF_COOKIE = "dmd_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_database(request: Request) -> Database:
    return request.app.state.db


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the handler returns, rolled back when it
    raises, except for ``FailAfterCommit``, whose changes are committed before its error is
    answered (a failed login's count must stick)."""
    async with get_database(request).session() as session:
        try:
            yield session
            if session.in_transaction():  # a request that touched nothing needs no commit
                await session.commit()
        except FailAfterCommit as failure:
            await session.commit()
            raise failure.error from None
        except BaseException:
            await session.rollback()
            raise


# Scope "function": the transaction ends before the response is sent, so a client never sees
# an answer (a new session cookie, a created id) whose data is not committed yet.
DbSession = Annotated[AsyncSession, Depends(get_session, scope="function")]


def request_actor(request: Request, kind: str = "anonymous", **kwargs: object) -> Actor:
    return Actor(
        kind=kind,
        ip=client_ip(request),
        user_agent=(request.headers.get("user-agent") or "")[:300] or None,
        request_id=getattr(request.state, "request_id", None),
        **kwargs,  # type: ignore[arg-type]
    )


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def get_optional_auth(request: Request, session: DbSession) -> AuthContext | None:
    """Resolve the caller from an API key (Authorization: Bearer dmd_…) or the session cookie.
    Sets the request's tenant scope and audit actor on the database session."""
    base_actor = request_actor(request)
    await set_scope(session, Scope.for_system(), base_actor)
    token = bearer_token(request)
    if token is not None:
        ctx = await auth_service.authenticate_api_key(session, token, base_actor)
    elif (cookie := request.cookies.get(SESSION_COOKIE)) is not None:
        ctx = await auth_service.authenticate_session(session, cookie, base_actor)
        if ctx is not None and request.method not in SAFE_METHODS:
            _check_csrf(request, cookie)
    else:
        ctx = None
    await set_scope(session, ctx.scope if ctx else Scope(), ctx.actor if ctx else base_actor)
    request.state.auth = ctx
    return ctx


def _check_csrf(request: Request, session_token: str) -> None:
    sent = request.headers.get(CSRF_HEADER)
    if not sent or not auth_service.csrf_token_matches(session_token, sent):
        raise Forbidden("Missing or wrong CSRF token.", code="csrf_failed")


async def get_auth(
    ctx: Annotated[AuthContext | None, Depends(get_optional_auth)],
) -> AuthContext:
    if ctx is None:
        raise Unauthorized()
    return ctx


CurrentAuth = Annotated[AuthContext, Depends(get_auth)]
OptionalAuth = Annotated[AuthContext | None, Depends(get_optional_auth)]
