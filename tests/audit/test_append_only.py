"""The application cannot change or remove audit events: on PostgreSQL its role has no UPDATE or
DELETE on the table, on SQLite triggers refuse both."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from demandly.kit.db import Database
from tests.audit.helpers import events_of
from tests.factories import make_agency

REFUSED = r"permission denied|append-only"


async def _an_event_id(db: Database) -> str:
    tenant = await make_agency(db, clients=0)
    return (await events_of(db, chain=tenant.agency.id))[0].id


async def _as_app(db: Database, sql: str, event_id: str) -> None:
    async with db.engine.connect() as conn:
        try:
            await conn.execute(text(sql), {"id": event_id})
        finally:
            await conn.rollback()


async def test_the_app_connection_cannot_update_an_audit_event(db: Database) -> None:
    event_id = await _an_event_id(db)
    with pytest.raises(DBAPIError, match=REFUSED):
        await _as_app(db, "UPDATE audit_events SET action = 'x' WHERE id = :id", event_id)
    [event] = [e for e in await events_of(db) if e.id == event_id]
    assert event.action == "agency.created"


async def test_the_app_connection_cannot_delete_an_audit_event(db: Database) -> None:
    event_id = await _an_event_id(db)
    with pytest.raises(DBAPIError, match=REFUSED):
        await _as_app(db, "DELETE FROM audit_events WHERE id = :id", event_id)
    assert any(e.id == event_id for e in await events_of(db))
