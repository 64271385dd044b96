"""audit_queue: on PostgreSQL, events are linked to their chain inside the commit

A transaction queues its audit events as it commits; a deferred constraint trigger takes the
chain's head, computes each event's hash, writes it to audit_events and empties the queue, all
inside COMMIT. The head's row lock is then held for no round trip to the application: before,
it was held from the append to the end of COMMIT, across three round trips, and every unit of
work of a busy agency queued on it. SQLite appends as before (it has one writer at a time).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from demandly.config import get_settings
from demandly.kit.db import UTCDateTime
from demandly.kit.migration import allow_platform_rows_insert, enable_tenant_rls, is_postgres

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENT_COLUMNS = (
    "id, chain, agency_id, client_id, actor_kind, actor_id, actor_role, action, entity_type, "
    "entity_id, changed_fields, ip, user_agent, request_id, created_at"
)
NEW_EVENT_COLUMNS = ", ".join(f"NEW.{name.strip()}" for name in EVENT_COLUMNS.split(","))

# The hash is the one chain.event_hash computes: SHA-256 of the canonical JSON, here put
# together from the queued pieces around the previous hash and the sequence number.
CHAIN_QUEUED = f"""
CREATE FUNCTION audit_chain_queued() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    head_seq bigint;
    head_hash text;
    new_hash text;
BEGIN
    SELECT seq, last_hash INTO head_seq, head_hash
        FROM audit_heads WHERE chain = NEW.chain FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO audit_heads (chain, seq, last_hash) VALUES (NEW.chain, 0, repeat('0', 64))
            ON CONFLICT (chain) DO NOTHING;
        SELECT seq, last_hash INTO head_seq, head_hash
            FROM audit_heads WHERE chain = NEW.chain FOR UPDATE;
    END IF;
    head_seq := head_seq + 1;
    new_hash := encode(sha256(convert_to(
        NEW.canonical_head || head_hash || NEW.canonical_middle || head_seq::text
            || NEW.canonical_tail,
        'UTF8')), 'hex');
    INSERT INTO audit_events ({EVENT_COLUMNS}, seq, prev_hash, hash)
        VALUES ({NEW_EVENT_COLUMNS}, head_seq, head_hash, new_hash);
    UPDATE audit_heads SET seq = head_seq, last_hash = new_hash WHERE chain = NEW.chain;
    DELETE FROM audit_queue WHERE id = NEW.id;
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.create_table(
        "audit_queue",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("chain", sa.String(length=40), nullable=False),
        sa.Column("agency_id", sa.String(length=40), nullable=True),
        sa.Column("client_id", sa.String(length=40), nullable=True),
        sa.Column("actor_kind", sa.String(length=20), nullable=False),
        sa.Column("actor_id", sa.String(length=40), nullable=True),
        sa.Column("actor_role", sa.String(length=32), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("entity_type", sa.String(length=64), nullable=True),
        sa.Column("entity_id", sa.String(length=64), nullable=True),
        sa.Column("changed_fields", sa.JSON(), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("canonical_head", sa.Text(), nullable=False),
        sa.Column("canonical_middle", sa.Text(), nullable=False),
        sa.Column("canonical_tail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_queue")),
    )
    if not is_postgres():
        return
    role = get_settings().pg_app_role
    # The application only queues; the trigger (its owner's rights) reads and removes.
    op.execute(f'REVOKE ALL ON audit_queue FROM "{role}"')
    op.execute(f'GRANT INSERT ON audit_queue TO "{role}"')
    enable_tenant_rls("audit_queue")
    allow_platform_rows_insert("audit_queue")
    op.execute(CHAIN_QUEUED)
    op.execute(f'REVOKE ALL ON FUNCTION audit_chain_queued() FROM PUBLIC, "{role}"')
    op.execute(
        "CREATE CONSTRAINT TRIGGER audit_queue_chain AFTER INSERT ON audit_queue "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_chain_queued()"
    )


def downgrade() -> None:
    if is_postgres():
        op.execute("DROP TRIGGER IF EXISTS audit_queue_chain ON audit_queue")
        op.execute("DROP FUNCTION IF EXISTS audit_chain_queued()")
    op.drop_table("audit_queue")
