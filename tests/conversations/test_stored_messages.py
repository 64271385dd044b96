"""Messages a turn writes without the ORM (``store_messages``): every column as the ORM would
write it, and only within the session's scope."""

from __future__ import annotations

from dataclasses import fields

import httpx
import pytest
from sqlalchemy import select

from demandly.conversations import service
from demandly.conversations.models import Message, MessageRole
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.kit.errors import NotFound
from demandly.kit.time import utcnow
from tests.conversations.conftest import PublishedAgent, start


def test_a_new_message_holds_every_column_of_its_row() -> None:
    assert {f.name for f in fields(service.NewMessage)} == set(Message.__table__.c.keys())


async def test_stored_messages_read_back_as_written(
    db: Database, visitor: httpx.AsyncClient, agent: PublishedAgent
) -> None:
    started = await start(visitor, agent.public_key)
    scope = Scope.for_client(agent.tenant.agency.id, agent.tenant.clients[0].id)
    async with db.session(scope) as session:
        conversation = await service.get(session, started["conversation_id"])
        reply = service.new_message(
            conversation,
            2,
            MessageRole.ASSISTANT,
            "Gern.",
            tool_calls=[{"id": "c1", "name": "end_conversation", "arguments": {}}],
            quick_replies=["Ja"],
            model="offline",
            latency_ms=3,
        )
        await service.store_messages(session, [reply])
        await session.commit()
    async with db.session(scope) as session:
        stored = (await session.scalars(select(Message).where(Message.id == reply.id))).one()
    for column in (c.name for c in Message.__table__.c):
        assert getattr(stored, column) == getattr(reply, column), column


async def test_messages_outside_the_scope_are_refused(db: Database, agent: PublishedAgent) -> None:
    tenant = agent.tenant
    scope = Scope.for_client(tenant.agency.id, tenant.clients[0].id)
    foreign = service.NewMessage(
        id="msg_foreign",
        created_at=utcnow(),
        agency_id=tenant.agency.id,
        client_id=tenant.clients[1].id,  # the agency's other client
        conversation_id="conv_foreign",
        seq=1,
        role=MessageRole.USER.value,
        content="Hallo",
    )
    async with db.session(scope) as session:
        with pytest.raises(NotFound):
            await service.store_messages(session, [foreign])
