"""A tenant per test, API helpers for contacts and leads, and the SMTP fixtures."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from demandly.jobs.models import DomainEvent
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.tenancy.models import Client
from tests.conversations.conftest import _openai_stub_server, openai_stub, visitor  # noqa: F401
from tests.factories import Tenant, make_tenant
from tests.integrations.smtp import mail_outbox, smtp_server, use_smtp  # noqa: F401

API = "/api/v1"


@pytest.fixture
async def tenant(db: Database) -> Tenant:
    return await make_tenant(db)


async def set_client_timezone(db: Database, client_id: str, timezone: str, locale: str) -> None:
    async with db.session(Scope.for_system()) as session:
        client = await session.get(Client, client_id)
        assert client is not None
        client.timezone, client.locale = timezone, locale
        await session.commit()


async def post_contact(
    http: httpx.AsyncClient,
    tenant: Tenant,
    expect: int = 201,
    role: str = "client_member",
    **body: Any,
) -> dict[str, Any]:
    body.setdefault("client_id", tenant.clients[0].id)
    response = await http.post(f"{API}/contacts", json=body, headers=tenant.headers(role))
    assert response.status_code == expect, response.text
    return response.json()


async def post_lead(
    http: httpx.AsyncClient, tenant: Tenant, expect: int = 201, **body: Any
) -> dict[str, Any]:
    body.setdefault("client_id", tenant.clients[0].id)
    response = await http.post(f"{API}/leads", json=body, headers=tenant.headers("client_member"))
    assert response.status_code == expect, response.text
    return response.json()


async def events_of(db: Database, lead_id: str) -> list[str]:
    async with db.session(Scope.for_system()) as session:
        rows = await session.execute(
            select(DomainEvent.type)
            .where(DomainEvent.entity_id == lead_id)
            .order_by(DomainEvent.id)
        )
        return list(rows.scalars())
