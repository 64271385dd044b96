"""An agent answers from knowledge bases and books into a calendar of its own client only."""

from __future__ import annotations

import httpx
import pytest

from demandly.booking.models import Calendar
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.kit.ids import ulid
from demandly.knowledge.models import KnowledgeBase
from tests.agents.helpers import API, agent_body, error_field
from tests.factories import Tenant, make_tenant


@pytest.fixture
async def tenant(db: Database) -> Tenant:
    return await make_tenant(db)


async def _knowledge_base(db: Database, tenant: Tenant, client_index: int = 0) -> str:
    client = tenant.clients[client_index]
    async with db.session(Scope.for_system()) as session:
        kb = KnowledgeBase(
            agency_id=tenant.agency.id, client_id=client.id, name="Praxiswissen", language="de"
        )
        session.add(kb)
        await session.commit()
    return kb.id


async def _calendar(db: Database, tenant: Tenant, client_index: int = 0) -> str:
    client = tenant.clients[client_index]
    async with db.session(Scope.for_system()) as session:
        calendar = Calendar(
            agency_id=tenant.agency.id,
            client_id=client.id,
            name="Behandlungen",
            slug=f"praxis-{ulid()[-8:].lower()}",
            timezone="Europe/Berlin",
        )
        session.add(calendar)
        await session.commit()
    return calendar.id


async def test_an_agent_uses_its_own_clients_knowledge_and_calendar(
    client: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    kb_id = await _knowledge_base(db, tenant)
    calendar_id = await _calendar(db, tenant)
    body = agent_body(tenant.clients[0].id, knowledge_base_ids=[kb_id], calendar_id=calendar_id)
    created = await client.post(f"{API}/agents", json=body, headers=tenant.headers("agency_owner"))
    assert created.status_code == 201, created.text
    assert created.json()["knowledge_base_ids"] == [kb_id]
    assert created.json()["calendar_id"] == calendar_id


async def test_another_clients_knowledge_base_or_calendar_is_not_found(
    client: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    foreign_kb = await _knowledge_base(db, tenant, client_index=1)
    foreign_calendar = await _calendar(db, tenant, client_index=1)
    owner = tenant.headers("agency_owner")
    kb = await client.post(
        f"{API}/agents",
        json=agent_body(tenant.clients[0].id, knowledge_base_ids=[foreign_kb]),
        headers=owner,
    )
    assert kb.status_code == 404
    assert error_field(kb) == "knowledge_base_ids.0"
    calendar = await client.post(
        f"{API}/agents",
        json=agent_body(tenant.clients[0].id, calendar_id=foreign_calendar),
        headers=owner,
    )
    assert calendar.status_code == 404
    assert error_field(calendar) == "calendar_id"


async def test_publishing_refuses_a_knowledge_base_deleted_after_it_was_chosen(
    client: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    kb_id = await _knowledge_base(db, tenant)
    owner = tenant.headers("agency_owner")
    body = agent_body(tenant.clients[0].id, knowledge_base_ids=[kb_id])
    agent = (await client.post(f"{API}/agents", json=body, headers=owner)).json()
    async with db.session(Scope.for_system()) as session:
        await session.delete(await session.get(KnowledgeBase, kb_id))
        await session.commit()
    published = await client.post(f"{API}/agents/{agent['id']}/publish", headers=owner)
    assert published.status_code == 422
    assert error_field(published) == "knowledge_base_ids.0"
