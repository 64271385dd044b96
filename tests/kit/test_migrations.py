"""Migrations run forward cleanly on both databases, and match the models exactly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from demandly.kit.db import Database
from demandly.kit.migrations import head_revisions, is_at_head
from demandly.models import Base, include_name


async def test_fresh_database_migrates_to_head(fresh_db: tuple[Database, object]) -> None:
    db, _ = fresh_db
    assert await is_at_head(db.engine)
    assert head_revisions()


async def test_models_and_migrations_agree(db: Database) -> None:
    def _diff(sync_connection):  # type: ignore[no-untyped-def]
        context = MigrationContext.configure(
            sync_connection, opts={"compare_type": False, "include_name": include_name}
        )
        return compare_metadata(context, Base.metadata)

    async with db.engine.connect() as connection:
        diff = await connection.run_sync(_diff)
    assert diff == []
