"""Helpers for migrations: row-level security and grants on PostgreSQL (no-ops on SQLite)."""

from __future__ import annotations

from alembic import op

AGENCY_SETTING = "current_setting('app.agency_id', true)"
SYSTEM_SETTING = "current_setting('app.system', true)"


def is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def enable_tenant_rls(table: str, column: str = "agency_id") -> None:
    """Rows of ``table`` are visible only to transactions whose ``app.agency_id`` names their
    agency (a comma-separated list), or that run with ``app.system = on``."""
    if not is_postgres():
        return
    condition = (
        f"({SYSTEM_SETTING} = 'on' OR "
        f"{column} = ANY (string_to_array(coalesce({AGENCY_SETTING}, ''), ',')))"
    )
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} USING {condition} WITH CHECK {condition}"
    )


def allow_platform_rows_insert(table: str) -> None:
    """Rows of ``table`` without an agency (a login's audit event, a change to a user) belong to
    the platform: any unit of work may insert one, only the system scope reads them."""
    if not is_postgres():
        return
    op.execute(f"DROP POLICY IF EXISTS platform_rows_insert ON {table}")
    op.execute(
        f"CREATE POLICY platform_rows_insert ON {table} FOR INSERT WITH CHECK (agency_id IS NULL)"
    )


def ensure_app_role(role: str) -> None:
    """The run-time role: no BYPASSRLS, data rights only; the migrating owner may assume it."""
    if not is_postgres():
        return
    op.execute(
        f"""DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                CREATE ROLE "{role}" NOLOGIN NOBYPASSRLS;
            END IF;
        END $$"""
    )
    op.execute(f'GRANT "{role}" TO CURRENT_USER')
    op.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE "
        f'ON TABLES TO "{role}"'
    )
    op.execute(f'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE ON SEQUENCES TO "{role}"')


def grant_app_role(role: str, append_only: tuple[str, ...] = ()) -> None:
    if not is_postgres():
        return
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"')
    op.execute(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
    for table in append_only:
        op.execute(f'REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM "{role}"')
