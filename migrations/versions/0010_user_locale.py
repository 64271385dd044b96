"""users.locale may be null: the dashboard then follows the browser's language

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.alter_column("locale", existing_type=sa.String(length=10), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE users SET locale = 'en' WHERE locale IS NULL")
    with op.batch_alter_table("users") as batch_op:
        batch_op.alter_column("locale", existing_type=sa.String(length=10), nullable=False)
