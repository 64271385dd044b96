"""booking: calendars, event types, appointments

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 09:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import demandly.kit.db
from demandly.kit.migration import enable_tenant_rls

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("calendars", "event_types", "appointments")


def _tenant_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("agency_id", sa.String(length=40), nullable=False),
        sa.Column("client_id", sa.String(length=40), nullable=False),
    ]


def _tenant_constraints(table: str) -> list[sa.Constraint]:
    return [
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f(f"fk_{table}_agency_id_agencies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f(f"fk_{table}_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    ]


def _tenant_indexes(table: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        for column in ("agency_id", "client_id", "created_at"):
            batch_op.create_index(batch_op.f(f"ix_{table}_{column}"), [column], unique=False)


def upgrade() -> None:
    op.create_table(
        "calendars",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("slug", sa.String(length=63), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("weekly_hours", sa.JSON(), nullable=False),
        sa.Column("date_overrides", sa.JSON(), nullable=False),
        sa.Column("holiday_region", sa.String(length=10), nullable=True),
        sa.Column("buffer_before_minutes", sa.Integer(), nullable=False),
        sa.Column("buffer_after_minutes", sa.Integer(), nullable=False),
        sa.Column("minimum_notice_minutes", sa.Integer(), nullable=False),
        sa.Column("booking_window_days", sa.Integer(), nullable=False),
        sa.Column("slot_interval_minutes", sa.Integer(), nullable=True),
        sa.Column("max_bookings_per_day", sa.Integer(), nullable=True),
        sa.Column("reminder_offsets_minutes", sa.JSON(), nullable=True),
        sa.Column("feed_version", sa.Integer(), nullable=False),
        *_tenant_columns(),
        *_tenant_constraints("calendars"),
        sa.UniqueConstraint("slug", name=op.f("uq_calendars_slug")),
    )
    _tenant_indexes("calendars")

    op.create_table(
        "event_types",
        sa.Column("calendar_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("location_kind", sa.String(length=20), nullable=False),
        sa.Column("location_text", sa.String(length=500), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        *_tenant_columns(),
        *_tenant_constraints("event_types"),
        sa.ForeignKeyConstraint(
            ["calendar_id"],
            ["calendars.id"],
            name=op.f("fk_event_types_calendar_id_calendars"),
            ondelete="CASCADE",
        ),
    )
    _tenant_indexes("event_types")
    with op.batch_alter_table("event_types", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_event_types_calendar_id"), ["calendar_id"], unique=False
        )

    op.create_table(
        "appointments",
        sa.Column("calendar_id", sa.String(length=40), nullable=False),
        sa.Column("event_type_id", sa.String(length=40), nullable=True),
        sa.Column("start_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("end_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attendee_name", sa.String(length=200), nullable=False),
        sa.Column("attendee_email", sa.String(length=320), nullable=True),
        sa.Column("attendee_phone", sa.String(length=40), nullable=True),
        sa.Column("attendee_timezone", sa.String(length=64), nullable=True),
        sa.Column("contact_id", sa.String(length=40), nullable=True),
        sa.Column("conversation_id", sa.String(length=40), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("uid", sa.String(length=120), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("cancel_reason", sa.String(length=500), nullable=True),
        sa.Column("cancelled_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=True),
        *_tenant_columns(),
        *_tenant_constraints("appointments"),
        sa.ForeignKeyConstraint(
            ["calendar_id"],
            ["calendars.id"],
            name=op.f("fk_appointments_calendar_id_calendars"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_appointments_contact_id_contacts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["event_type_id"],
            ["event_types.id"],
            name=op.f("fk_appointments_event_type_id_event_types"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_appointments_conversation_id_conversations"),
            ondelete="SET NULL",
        ),
        sa.UniqueConstraint(
            "calendar_id",
            "idempotency_key",
            name=op.f("uq_appointments_calendar_id_idempotency_key"),
        ),
        sa.UniqueConstraint("uid", name=op.f("uq_appointments_uid")),
    )
    _tenant_indexes("appointments")
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_appointments_calendar_start", ["calendar_id", "start_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_appointments_status"), ["status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_appointments_contact_id"), ["contact_id"], unique=False
        )

    for table in TABLES:
        enable_tenant_rls(table)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
