"""dashboard: password-reset links, uploaded brand assets

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import demandly.kit.db
from demandly.kit.migration import enable_tenant_rls

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _record_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "password_resets",
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        *_record_columns(),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_password_resets_user_id", "password_resets", ["user_id"])
    op.create_index("ix_password_resets_created_at", "password_resets", ["created_at"])
    op.create_table(
        "agency_assets",
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        *_record_columns(),
        sa.Column("agency_id", sa.String(length=40), nullable=False),
        sa.Column("client_id", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(["agency_id"], ["agencies.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_agency_assets_agency_id", "agency_assets", ["agency_id"])
    op.create_index("ix_agency_assets_client_id", "agency_assets", ["client_id"])
    op.create_index("ix_agency_assets_created_at", "agency_assets", ["created_at"])
    enable_tenant_rls("agency_assets")


def downgrade() -> None:
    op.drop_table("agency_assets")
    op.drop_table("password_resets")
