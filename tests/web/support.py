"""Driving the dashboard as a browser would, without one: a cookie-keeping client per user,
sign-in through the real login form, the CSRF token read from the page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.kit.time import utcnow
from demandly.tenancy.models import Agency, AgencyDomain, User
from tests.factories import PASSWORD

CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


@asynccontextmanager
async def browser(app, host: str = "testserver") -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    """An HTTP client that keeps cookies, as seen on ``host`` (a custom domain, say)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url=f"http://{host}", follow_redirects=False
    ) as client:
        yield client


async def sign_in(client: httpx.AsyncClient, user: User, password: str = PASSWORD) -> str:
    """Log in through the login form; returns the CSRF token the pages carry."""
    response = await client.post(
        "/login", data={"email": user.email, "password": password, "next": "/app"}
    )
    assert response.status_code == 303, response.text
    home = await client.get("/app")
    assert home.status_code == 200, home.text
    return csrf_of(home.text)


def csrf_of(html: str) -> str:
    found = CSRF_INPUT.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


async def verified_domain(db: Database, agency: Agency, domain: str) -> None:
    """A custom domain whose DNS check has passed (the check itself is tested in tenancy)."""
    async with db.session(Scope.for_system()) as session:
        session.add(
            AgencyDomain(
                agency_id=agency.id, domain=domain, verification_token="t", verified_at=utcnow()
            )
        )
        await session.commit()
