"""Helpers for auth tests: clients with their own peer address, signing in, time travel on
throttle rows."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import select

from demandly.audit.models import AuditEvent
from demandly.kit.context import Scope
from demandly.kit.db import Database
from tests.factories import PASSWORD

LOGIN = "/api/v1/auth/login"


def fresh_ip() -> str:
    """An address no other test uses: throttling counts per address."""
    return "10." + ".".join(str(secrets.randbelow(254) + 1) for _ in range(3))


@asynccontextmanager
async def browser(app: Any, ip: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """A client of its own (own cookie jar), connecting from ``ip``."""
    transport = httpx.ASGITransport(app=app, client=(ip or fresh_ip(), 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def sign_in(
    http: httpx.AsyncClient, email: str, password: str = PASSWORD, **extra: str
) -> httpx.Response:
    """Log in and send the CSRF token from then on, as the dashboard does."""
    response = await http.post(LOGIN, json={"email": email, "password": password, **extra})
    assert response.status_code == 200, response.text
    http.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return response


async def audit_events(db: Database, action: str, entity_id: str | None = None) -> list[AuditEvent]:
    async with db.session(Scope.for_system()) as session:
        statement = select(AuditEvent).where(AuditEvent.action == action)
        if entity_id is not None:
            statement = statement.where(AuditEvent.entity_id == entity_id)
        return list((await session.execute(statement.order_by(AuditEvent.created_at))).scalars())
