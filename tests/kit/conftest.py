from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from demandly.kit.db import Database


@pytest.fixture
def sent(db: Database) -> Iterator[list[str]]:
    """The statements the application sends through SQLAlchemy's cursor during the test (a
    ``BEGIN`` carrying the settings is not one of them: it goes to asyncpg as one message;
    nor is a Core statement run again on PostgreSQL, ``kit.postgres.run_prepared``)."""
    statements: list[str] = []

    def keep(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", keep)
    yield statements
    event.remove(db.engine.sync_engine, "before_cursor_execute", keep)
