"""knowledge: knowledge bases, sources, chunks, and the full-text index (FTS5 on SQLite,
tsvector + GIN on PostgreSQL)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 09:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import demandly.kit.db
from demandly.kit.migration import enable_tenant_rls

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The chunks' normalised text (see demandly.knowledge.index) with the knowledge base id as a
# second column, so a search restricts to its bases inside the index. The text is folded and
# stemmed before it gets here; unicode61 only splits it.
# Triggers keep the index in step with the chunks, also when a base, client or agency takes
# its chunks with it (ON DELETE CASCADE fires them too): no orphan index rows.
SQLITE_INDEX = (
    "CREATE VIRTUAL TABLE knowledge_fts USING fts5("
    "body, kb, tokenize = \"unicode61 remove_diacritics 2 tokenchars '_'\")",
    "CREATE TRIGGER knowledge_chunks_fts_insert AFTER INSERT ON knowledge_chunks BEGIN "
    "INSERT INTO knowledge_fts (rowid, body, kb) "
    "VALUES (new.index_rowid, new.search_text, new.knowledge_base_id); END",
    "CREATE TRIGGER knowledge_chunks_fts_delete AFTER DELETE ON knowledge_chunks BEGIN "
    "DELETE FROM knowledge_fts WHERE rowid = old.index_rowid; END",
)
POSTGRES_INDEX = (
    "CREATE FUNCTION knowledge_chunks_tsv() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "NEW.tsv := to_tsvector('simple'::regconfig, NEW.search_text); RETURN NEW; END $$",
    "CREATE TRIGGER knowledge_chunks_tsv BEFORE INSERT OR UPDATE OF search_text "
    "ON knowledge_chunks FOR EACH ROW EXECUTE FUNCTION knowledge_chunks_tsv()",
)


def upgrade() -> None:
    op.create_table(
        "knowledge_bases",
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("language", sa.String(length=5), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("agency_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_knowledge_bases_agency_id_agencies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_knowledge_bases_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_bases")),
    )
    with op.batch_alter_table("knowledge_bases", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_knowledge_bases_agency_id"), ["agency_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_knowledge_bases_client_id"), ["client_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_knowledge_bases_created_at"), ["created_at"], unique=False
        )

    op.create_table(
        "knowledge_sources",
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("knowledge_base_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=True),
        sa.Column("url", sa.String(length=2000), nullable=True),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("file_name", sa.String(length=300), nullable=True),
        sa.Column("file_type", sa.String(length=200), nullable=True),
        sa.Column("file_data", sa.LargeBinary(), nullable=True),
        sa.Column("recrawl_every_days", sa.Integer(), nullable=True),
        sa.Column("next_crawl_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("documents_done", sa.Integer(), nullable=False),
        sa.Column("documents_total", sa.Integer(), nullable=True),
        sa.Column("chunks_indexed", sa.Integer(), nullable=False),
        sa.Column("failures", sa.JSON(), nullable=False),
        sa.Column("error", sa.String(length=1000), nullable=True),
        sa.Column("started_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("agency_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_knowledge_sources_agency_id_agencies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_knowledge_sources_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["knowledge_base_id"],
            ["knowledge_bases.id"],
            name=op.f("fk_knowledge_sources_knowledge_base_id_knowledge_bases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_sources")),
    )
    with op.batch_alter_table("knowledge_sources", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_knowledge_sources_agency_id"), ["agency_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_knowledge_sources_client_id"), ["client_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_knowledge_sources_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_knowledge_sources_knowledge_base_id"),
            ["knowledge_base_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_knowledge_sources_next_crawl_at"), ["next_crawl_at"], unique=False
        )

    op.create_table(
        "knowledge_chunks",
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("knowledge_base_id", sa.String(length=40), nullable=False),
        sa.Column("source_id", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("heading", sa.String(length=500), nullable=True),
        sa.Column("url", sa.String(length=2000), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=64), nullable=False),
        sa.Column("index_rowid", sa.Integer(), nullable=True),
        sa.Column(
            "tsv", sa.Text().with_variant(postgresql.TSVECTOR(), "postgresql"), nullable=True
        ),
        sa.Column("embedding", sa.JSON(), nullable=True),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("agency_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_knowledge_chunks_agency_id_agencies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_knowledge_chunks_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["knowledge_base_id"],
            ["knowledge_bases.id"],
            name=op.f("fk_knowledge_chunks_knowledge_base_id_knowledge_bases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["knowledge_sources.id"],
            name=op.f("fk_knowledge_chunks_source_id_knowledge_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_chunks")),
        sa.UniqueConstraint("index_rowid", name=op.f("uq_knowledge_chunks_index_rowid")),
    )
    with op.batch_alter_table("knowledge_chunks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_knowledge_chunks_agency_id"), ["agency_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_knowledge_chunks_client_id"), ["client_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_knowledge_chunks_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            "ix_knowledge_chunks_kb_dedupe", ["knowledge_base_id", "dedupe_key"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_knowledge_chunks_source_id"), ["source_id"], unique=False
        )
        batch_op.create_index(
            "ix_knowledge_chunks_tsv", ["tsv"], unique=False, postgresql_using="gin"
        )

    enable_tenant_rls("knowledge_bases")
    enable_tenant_rls("knowledge_sources")
    enable_tenant_rls("knowledge_chunks")
    statements = SQLITE_INDEX if op.get_bind().dialect.name == "sqlite" else POSTGRES_INDEX
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("knowledge_chunks")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE knowledge_fts")
    else:
        op.execute("DROP FUNCTION knowledge_chunks_tsv()")
    op.drop_table("knowledge_sources")
    op.drop_table("knowledge_bases")
