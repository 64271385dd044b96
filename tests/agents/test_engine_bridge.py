"""What the engine and the web channel get from an agent: the look-up by public key, the live
version, the engine's AgentContext, and the LLM to talk to."""

from __future__ import annotations

from datetime import date, time

import httpx
import pytest
from sqlalchemy import select

from demandly.agents import service
from demandly.config import Settings
from demandly.engine.providers.base import AgentContext, FaqPair, OpeningRange, QualificationField
from demandly.kit.context import Scope
from demandly.kit.db import Database, session_scope
from demandly.tenancy.models import Client
from tests.agents.helpers import API, create_agent, create_connection, publish
from tests.factories import Tenant, World, make_tenant


async def look_up(db: Database, public_key: str) -> service.PublishedAgent | None:
    """As a visitor's request does: no tenant grants at all."""
    async with db.session(Scope()) as session:
        found = await service.agent_by_public_key(session, public_key)
        assert session_scope(session) == Scope()  # the system scope did not stick
        return found


async def test_only_published_live_agents_are_found(
    client: httpx.AsyncClient, db: Database
) -> None:
    tenant = await make_tenant(db)
    created = await create_agent(client, tenant)
    key = created["public_key"]
    assert await look_up(db, key) is None  # a draft answers no one

    await publish(client, tenant, created["id"])
    found = await look_up(db, key)
    assert found is not None
    agent, version = found
    assert agent.id == created["id"] and version.number == 1
    assert version.definition["greeting"] == created["greeting"]

    # Editing the draft does not change what visitors get.
    headers = tenant.headers("agency_owner")
    await client.patch(f"{API}/agents/{created['id']}", json={"greeting": "Neu"}, headers=headers)
    found = await look_up(db, key)
    assert found is not None and found.version.definition["greeting"] == created["greeting"]

    assert await look_up(db, "pk_unknown") is None
    assert await look_up(db, "") is None
    assert await look_up(db, "pk_" + "x" * 200) is None

    await client.delete(f"{API}/agents/{created['id']}", headers=headers)
    assert await look_up(db, key) is None


async def test_a_suspended_client_silences_its_agents(
    client: httpx.AsyncClient, db: Database
) -> None:
    tenant = await make_tenant(db)
    created = await create_agent(client, tenant)
    await publish(client, tenant, created["id"])
    assert await look_up(db, created["public_key"]) is not None
    suspended = await client.patch(
        f"{API}/clients/{tenant.clients[0].id}",
        json={"status": "suspended"},
        headers=tenant.headers("agency_owner"),
    )
    assert suspended.status_code == 200
    assert await look_up(db, created["public_key"]) is None


async def test_published_version_follows_the_scope(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    created = await create_agent(client, world.a)
    async with db.session(Scope.for_agency(world.a.agency.id)) as session:
        assert await service.published_version(session, created["id"]) is None
    await publish(client, world.a, created["id"])
    async with db.session(Scope.for_client(world.a.agency.id, world.a.clients[0].id)) as session:
        version = await service.published_version(session, created["id"])
        assert version is not None and version.number == 1
    async with db.session(Scope.for_agency(world.b.agency.id)) as session:
        assert await service.published_version(session, created["id"]) is None


async def client_row(db: Database, tenant: Tenant, index: int = 0) -> Client:
    async with db.session(Scope.for_system()) as session:
        return (
            await session.execute(select(Client).where(Client.id == tenant.clients[index].id))
        ).scalar_one()


async def test_agent_context_carries_the_version(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    created = await create_agent(client, world.a)
    await publish(client, world.a, created["id"])
    found = await look_up(db, created["public_key"])
    assert found is not None
    business = await client_row(db, world.a)

    context = service.agent_context(found.version, business)
    assert isinstance(context, AgentContext)
    assert context.language == "de"
    assert context.persona_name == "Lena"
    assert context.business_name == business.name
    assert context.greeting == "Guten Tag! Wie kann ich helfen?"
    assert context.instructions.startswith("Sei freundlich.")
    assert context.timezone == "Europe/Berlin"
    assert context.phone_region == "DE"
    assert context.qualification[0] == QualificationField(
        key="name", labels={"de": "Name", "en": "Name"}, type="text", required=True
    )
    insurance = context.qualification[2]
    assert insurance.type == "choice" and insurance.options == ("gesetzlich", "privat")
    assert insurance.hint == "gesetzlich oder privat"
    assert insurance.label("en") == "Insurance"
    callback = context.qualification[3]
    assert callback.required is False and callback.label("de") == "Callback?"
    assert context.faq == (FaqPair(question="Wo parke ich?", answer="Im Hof hinter der Praxis."),)
    assert context.opening_hours[0] == OpeningRange(weekday=0, opens=time(8, 0), closes=time(12, 0))
    assert len(context.opening_hours) == 3
    assert context.closed_dates == (date(2026, 12, 24), date(2026, 12, 25))
    assert context.out_of_hours_message == "Wir sind gerade nicht erreichbar."
    assert context.price_info.startswith("Eine Kontrolle")
    assert context.handoff_keywords == ("Mensch", "Mitarbeiter")


async def test_agent_context_defaults_come_from_the_client(
    client: httpx.AsyncClient, db: Database
) -> None:
    tenant = await make_tenant(db)
    headers = tenant.headers("agency_owner")
    await client.patch(
        f"{API}/clients/{tenant.clients[0].id}", json={"timezone": "Europe/Vienna"}, headers=headers
    )
    created = await create_agent(
        client, tenant, persona_name=None, instructions=None, business_hours={"weekly": []}
    )
    await publish(client, tenant, created["id"])
    found = await look_up(db, created["public_key"])
    assert found is not None
    context = service.agent_context(found.version, await client_row(db, tenant))
    assert context.timezone == "Europe/Vienna" and context.phone_region == "AT"
    assert context.persona_name == AgentContext().persona_name
    assert context.instructions == ""
    assert context.opening_hours == () and context.closed_dates == ()

    await client.patch(
        f"{API}/agents/{created['id']}",
        json={"business_hours": {"timezone": "Europe/Zurich"}},
        headers=headers,
    )
    await publish(client, tenant, created["id"])
    found = await look_up(db, created["public_key"])
    assert found is not None
    context = service.agent_context(found.version, await client_row(db, tenant))
    assert (context.timezone, context.phone_region) == ("Europe/Zurich", "CH")


@pytest.fixture
def no_llm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "DEMANDLY_LLM_BASE_URL", "DEMANDLY_LLM_API_KEY"):
        monkeypatch.delenv(name, raising=False)


async def test_resolve_llm_platform_default_or_offline(
    client: httpx.AsyncClient,
    world: World,
    db: Database,
    settings: Settings,
    no_llm_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created = await create_agent(client, world.a, llm={"temperature": 0.7, "max_tokens": 300})
    await publish(client, world.a, created["id"])
    found = await look_up(db, created["public_key"])
    assert found is not None
    offline = settings.model_copy(update={"llm_base_url": None, "llm_api_key": None})
    assert service.resolve_llm(offline, found.version, None) is None

    local = settings.model_copy(
        update={"llm_base_url": "http://127.0.0.1:11434/v1/", "llm_model": "llama3.1"}
    )
    resolved = service.resolve_llm(local, found.version, None)
    assert resolved == service.ResolvedLLM(
        base_url="http://127.0.0.1:11434/v1",
        api_key=None,
        model="llama3.1",
        temperature=0.7,
        max_tokens=300,
        region=None,
    )

    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    resolved = service.resolve_llm(offline, found.version, None)
    assert resolved is not None
    assert resolved.base_url == "https://api.openai.com/v1" and resolved.api_key == "sk-from-env"
    keyed = settings.model_copy(update={"llm_base_url": None, "llm_api_key": "sk-setting"})
    assert (service.resolve_llm(keyed, found.version, None) or resolved).api_key == "sk-setting"


async def test_resolve_llm_with_the_agencys_connection(
    client: httpx.AsyncClient, world: World, db: Database, settings: Settings, no_llm_env: None
) -> None:
    connection = await create_connection(client, world.a, default_model="gpt-4o-eu")
    created = await create_agent(client, world.a, llm={"connection_id": connection["id"]})
    await publish(client, world.a, created["id"])
    async with db.session(Scope.for_client(world.a.agency.id, world.a.clients[0].id)) as session:
        version = await service.published_version(session, created["id"])
        assert version is not None
        resolved = await service.llm_for(session, settings, version)
    assert resolved is not None
    assert resolved.base_url == "https://eu.llm.example.com/v1"
    assert resolved.api_key == "sk-test-0123456789abcdefWXYZ"  # decrypted for the provider
    assert resolved.model == "gpt-4o-eu" and resolved.region == "eu"
    assert resolved.connection_id == connection["id"]

    # The agent's own model wins over the connection's default.
    headers = world.a.headers("agency_owner")
    await client.patch(
        f"{API}/agents/{created['id']}", json={"llm": {"model": "gpt-4.1"}}, headers=headers
    )
    await publish(client, world.a, created["id"])
    async with db.session(Scope.for_client(world.a.agency.id, world.a.clients[0].id)) as session:
        version = await service.published_version(session, created["id"])
        assert version is not None
        resolved = await service.llm_for(session, settings, version)
        assert resolved is not None and resolved.model == "gpt-4.1"
        # A version whose connection is gone never falls back to another provider.
        platform = settings.model_copy(update={"llm_api_key": "sk-platform"})
        assert service.resolve_llm(platform, version, None) is None
