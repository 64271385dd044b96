"""phone: Twilio connections, phone numbers, calls, campaigns

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import demandly.kit.crypto
import demandly.kit.db
from demandly.kit.migration import enable_tenant_rls

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("twilio_connections", "phone_numbers", "campaigns", "campaign_targets", "calls")


def upgrade() -> None:
    op.create_table(
        "twilio_connections",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("account_sid", sa.String(length=34), nullable=False),
        sa.Column("auth_token", demandly.kit.crypto.EncryptedString(length=512), nullable=True),
        sa.Column("api_key_sid", sa.String(length=34), nullable=True),
        sa.Column("api_key_secret", demandly.kit.crypto.EncryptedString(length=512), nullable=True),
        sa.Column("friendly_name", sa.String(length=200), nullable=True),
        sa.Column("verified_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("agency_id", sa.String(length=40), nullable=False),
        sa.Column("client_id", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_twilio_connections_agency_id_agencies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_twilio_connections_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_twilio_connections")),
    )
    with op.batch_alter_table("twilio_connections", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_twilio_connections_account_sid"), ["account_sid"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_twilio_connections_agency_id"), ["agency_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_twilio_connections_client_id"), ["client_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_twilio_connections_created_at"), ["created_at"], unique=False
        )

    op.create_table(
        "campaigns",
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("agent_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("window_start", sa.String(length=5), nullable=False),
        sa.Column("window_end", sa.String(length=5), nullable=False),
        sa.Column("weekdays", sa.JSON(), nullable=False),
        sa.Column("max_concurrent", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("retry_minutes", sa.Integer(), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("agency_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_campaigns_agency_id_agencies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_campaigns_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_campaigns_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_campaigns_agency_id"), ["agency_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_campaigns_agent_id"), ["agent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_campaigns_client_id"), ["client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_campaigns_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_campaigns_status"), ["status"], unique=False)

    op.create_table(
        "phone_numbers",
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("twilio_sid", sa.String(length=34), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("friendly_name", sa.String(length=200), nullable=True),
        sa.Column("agent_id", sa.String(length=40), nullable=True),
        sa.Column("capabilities", sa.JSON(), nullable=False),
        sa.Column("voice_url", sa.String(length=500), nullable=True),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("agency_id", sa.String(length=40), nullable=False),
        sa.Column("client_id", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_phone_numbers_agency_id_agencies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_phone_numbers_agent_id_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_phone_numbers_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["twilio_connections.id"],
            name=op.f("fk_phone_numbers_connection_id_twilio_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phone_numbers")),
        sa.UniqueConstraint("twilio_sid", name=op.f("uq_phone_numbers_twilio_sid")),
    )
    with op.batch_alter_table("phone_numbers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_phone_numbers_agency_id"), ["agency_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_phone_numbers_agent_id"), ["agent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_phone_numbers_client_id"), ["client_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_phone_numbers_connection_id"), ["connection_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_phone_numbers_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_phone_numbers_number"), ["number"], unique=False)

    op.create_table(
        "campaign_targets",
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("campaign_id", sa.String(length=40), nullable=False),
        sa.Column("contact_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_call_id", sa.String(length=40), nullable=True),
        sa.Column("last_result", sa.String(length=30), nullable=True),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("agency_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_campaign_targets_agency_id_agencies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_targets_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_campaign_targets_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_campaign_targets_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_targets")),
    )
    with op.batch_alter_table("campaign_targets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_campaign_targets_agency_id"), ["agency_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_campaign_targets_campaign_id"), ["campaign_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_campaign_targets_client_id"), ["client_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_campaign_targets_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_campaign_targets_status"), ["status"], unique=False)

    op.create_table(
        "calls",
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("agent_id", sa.String(length=40), nullable=False),
        sa.Column("agent_version_id", sa.String(length=40), nullable=False),
        sa.Column("conversation_id", sa.String(length=40), nullable=True),
        sa.Column("connection_id", sa.String(length=40), nullable=True),
        sa.Column("phone_number_id", sa.String(length=40), nullable=True),
        sa.Column("twilio_call_sid", sa.String(length=34), nullable=True),
        sa.Column("direction", sa.String(length=10), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.Column("from_number", sa.String(length=20), nullable=True),
        sa.Column("to_number", sa.String(length=20), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("status_sequence", sa.Integer(), nullable=False),
        sa.Column("answered_by", sa.String(length=30), nullable=True),
        sa.Column("started_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("answered_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("end_reason", sa.String(length=40), nullable=True),
        sa.Column("recording_consent", sa.Boolean(), nullable=True),
        sa.Column(
            "recording_consent_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("recording_sid", sa.String(length=34), nullable=True),
        sa.Column("recording_url", sa.String(length=500), nullable=True),
        sa.Column("recording_status", sa.String(length=20), nullable=True),
        sa.Column("recording_duration_seconds", sa.Integer(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("gather_seq", sa.Integer(), nullable=False),
        sa.Column("silence_count", sa.Integer(), nullable=False),
        sa.Column("last_twiml", sa.Text(), nullable=True),
        sa.Column("transfer_requested", sa.Boolean(), nullable=False),
        sa.Column("transferred_to", sa.String(length=20), nullable=True),
        sa.Column("campaign_id", sa.String(length=40), nullable=True),
        sa.Column("campaign_target_id", sa.String(length=40), nullable=True),
        sa.Column("contact_id", sa.String(length=40), nullable=True),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", demandly.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("agency_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agencies.id"],
            name=op.f("fk_calls_agency_id_agencies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_calls_agent_id_agents"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["agent_version_id"],
            ["agent_versions.id"],
            name=op.f("fk_calls_agent_version_id_agent_versions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_calls_campaign_id_campaigns"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_calls_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["twilio_connections.id"],
            name=op.f("fk_calls_connection_id_twilio_connections"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_calls_conversation_id_conversations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["phone_number_id"],
            ["phone_numbers.id"],
            name=op.f("fk_calls_phone_number_id_phone_numbers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_calls_contact_id_contacts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
        sa.UniqueConstraint("twilio_call_sid", name=op.f("uq_calls_twilio_call_sid")),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_calls_agency_id"), ["agency_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_calls_agent_id"), ["agent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_calls_campaign_id"), ["campaign_id"], unique=False)
        batch_op.create_index("ix_calls_client_created", ["client_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_calls_client_id"), ["client_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_calls_conversation_id"), ["conversation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_calls_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_calls_status"), ["status"], unique=False)
    for table in TABLES:
        enable_tenant_rls(table)


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calls_status"))
        batch_op.drop_index(batch_op.f("ix_calls_created_at"))
        batch_op.drop_index(batch_op.f("ix_calls_conversation_id"))
        batch_op.drop_index(batch_op.f("ix_calls_client_id"))
        batch_op.drop_index("ix_calls_client_created")
        batch_op.drop_index(batch_op.f("ix_calls_campaign_id"))
        batch_op.drop_index(batch_op.f("ix_calls_agent_id"))
        batch_op.drop_index(batch_op.f("ix_calls_agency_id"))

    op.drop_table("calls")
    with op.batch_alter_table("campaign_targets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaign_targets_status"))
        batch_op.drop_index(batch_op.f("ix_campaign_targets_created_at"))
        batch_op.drop_index(batch_op.f("ix_campaign_targets_client_id"))
        batch_op.drop_index(batch_op.f("ix_campaign_targets_campaign_id"))
        batch_op.drop_index(batch_op.f("ix_campaign_targets_agency_id"))

    op.drop_table("campaign_targets")
    with op.batch_alter_table("phone_numbers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_phone_numbers_number"))
        batch_op.drop_index(batch_op.f("ix_phone_numbers_created_at"))
        batch_op.drop_index(batch_op.f("ix_phone_numbers_connection_id"))
        batch_op.drop_index(batch_op.f("ix_phone_numbers_client_id"))
        batch_op.drop_index(batch_op.f("ix_phone_numbers_agent_id"))
        batch_op.drop_index(batch_op.f("ix_phone_numbers_agency_id"))

    op.drop_table("phone_numbers")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaigns_status"))
        batch_op.drop_index(batch_op.f("ix_campaigns_created_at"))
        batch_op.drop_index(batch_op.f("ix_campaigns_client_id"))
        batch_op.drop_index(batch_op.f("ix_campaigns_agent_id"))
        batch_op.drop_index(batch_op.f("ix_campaigns_agency_id"))

    op.drop_table("campaigns")
    with op.batch_alter_table("twilio_connections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_twilio_connections_created_at"))
        batch_op.drop_index(batch_op.f("ix_twilio_connections_client_id"))
        batch_op.drop_index(batch_op.f("ix_twilio_connections_agency_id"))
        batch_op.drop_index(batch_op.f("ix_twilio_connections_account_sid"))

    op.drop_table("twilio_connections")
