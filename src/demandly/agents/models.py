"""Agent definitions (an editable draft), their published versions and the agencies' LLM
provider connections.

An agent's ``definition`` is the draft: editing it never touches a version. Publishing
snapshots the draft into an ``AgentVersion`` (immutable) and points ``current_version_id`` at
it; conversations run on, and record, a version.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from demandly.kit.crypto import EncryptedString
from demandly.kit.db import RecordModel, TenantMixin


class AgentKind(StrEnum):
    CHAT = "chat"
    PHONE = "phone"


class AgentStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    # Soft-deleted: gone from the API and the widget; kept for the conversations that ran on it.
    DELETED = "deleted"


class Region(StrEnum):
    EU = "eu"
    US = "us"
    SELF_HOSTED = "self-hosted"


class Agent(RecordModel, TenantMixin):
    __tablename__ = "agents"
    __id_prefix__ = "agt"

    # Always a client's (the mixin allows agency-level rows).
    client_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )

    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20), default=AgentStatus.DRAFT)
    # What the embed snippet carries: the only thing a widget knows of its agent.
    public_key: Mapped[str] = mapped_column(String(64), unique=True)
    definition: Mapped[dict[str, Any]]
    # No foreign key: agents and versions point at each other; a version only ever goes away
    # with its agent (cascade).
    current_version_id: Mapped[str | None] = mapped_column(String(40), default=None)
    published_at: Mapped[datetime | None] = mapped_column(default=None)

    current_version: Mapped[AgentVersion | None] = relationship(
        primaryjoin="foreign(Agent.current_version_id) == AgentVersion.id",
        lazy="raise",
        viewonly=True,
    )


class AgentVersion(RecordModel, TenantMixin):
    """A published snapshot of an agent's definition (name and kind included). Never updated."""

    __tablename__ = "agent_versions"
    __id_prefix__ = "agv"
    __table_args__ = (UniqueConstraint("agent_id", "number"),)

    client_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )

    agent_id: Mapped[str] = mapped_column(String(40), ForeignKey("agents.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]]
    # The user or API key id that published it.
    created_by: Mapped[str | None] = mapped_column(String(40), default=None)


@event.listens_for(AgentVersion, "before_update")
def _versions_are_immutable(mapper: Any, connection: Any, target: AgentVersion) -> None:
    raise RuntimeError("agent versions are immutable; publish a new version instead")


class ProviderConnection(RecordModel, TenantMixin):
    """An agency's OpenAI-compatible endpoint (agency-level: ``client_id`` is null)."""

    __tablename__ = "provider_connections"
    __id_prefix__ = "llm"

    name: Mapped[str] = mapped_column(String(200))
    base_url: Mapped[str] = mapped_column(String(500))
    api_key: Mapped[str | None] = mapped_column(EncryptedString(1024), default=None)
    # Shown in place of the key, which is never returned.
    api_key_last4: Mapped[str | None] = mapped_column(String(4), default=None)
    default_model: Mapped[str] = mapped_column(String(100))
    region: Mapped[str] = mapped_column(String(20))
