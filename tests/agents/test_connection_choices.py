"""The connection picker of the agent builder: anyone editing an agent sees the names of
their own agency's connections (never another agency's), like ``check_connection`` allows."""

from __future__ import annotations

from demandly.agents import schemas as s
from demandly.agents import service
from demandly.kit.context import Scope
from demandly.kit.db import Database, session_scope
from tests.factories import make_tenant


async def _connection(db: Database, agency_id: str, name: str) -> str:
    async with db.session(Scope.for_system()) as session:
        connection = await service.create_connection(
            session,
            s.ProviderConnectionCreate(
                agency_id=agency_id,
                name=name,
                base_url="https://llm.example.test/v1",
                default_model="small",
                region="eu",
            ),
        )
        await session.commit()
    return connection.id


async def test_a_client_user_gets_the_names_of_its_agencys_connections(db: Database) -> None:
    ours, theirs = await make_tenant(db), await make_tenant(db)
    second = await _connection(db, ours.agency.id, "Zweite")
    first = await _connection(db, ours.agency.id, "Erste")
    await _connection(db, theirs.agency.id, "Fremd")
    client_scope = Scope.for_client(ours.agency.id, ours.clients[0].id)
    async with db.session(client_scope) as session:
        choices = await service.connection_choices(session, ours.agency.id)
        assert session_scope(session.sync_session) == client_scope  # narrowed back afterwards
    assert choices == [(first, "Erste"), (second, "Zweite")]
