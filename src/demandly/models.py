"""Every model, imported once so the metadata (and Alembic) knows all tables."""

import re

# Importing the audit service registers its session hooks: any entry point that knows the
# models (server, worker, CLI) records audit events.
from demandly.agents.models import Agent, AgentVersion, ProviderConnection
from demandly.audit import service as _audit_hooks  # noqa: F401
from demandly.audit.models import AuditEvent, AuditHead
from demandly.auth.models import ApiKey, LoginSession, LoginThrottle, RecoveryCode
from demandly.booking import models as _booking_models  # noqa: F401
from demandly.channels.phone import models as _phone_models  # noqa: F401
from demandly.conversations.models import Conversation, Message
from demandly.jobs.models import DomainEvent, Job
from demandly.kit.db import Base
from demandly.knowledge import models as _knowledge_models  # noqa: F401
from demandly.leads import models as _leads_models  # noqa: F401
from demandly.tenancy.models import (
    Agency,
    AgencyDomain,
    Client,
    Invitation,
    Membership,
    MembershipClient,
    User,
)

# Tables the migrations create outside the models: SQLite's FTS5 index of the knowledge
# chunks (a virtual table and the shadow tables SQLite keeps for it).
_UNMODELLED = re.compile(r"^knowledge_fts(_(data|idx|content|docsize|config))?$")


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """For Alembic's comparisons of models and database: leave out what no model describes."""
    return not (type_ == "table" and name is not None and _UNMODELLED.match(name))


__all__ = [
    "Agency",
    "AgencyDomain",
    "Agent",
    "AgentVersion",
    "ApiKey",
    "AuditEvent",
    "AuditHead",
    "Base",
    "Client",
    "Conversation",
    "DomainEvent",
    "Invitation",
    "Job",
    "LoginSession",
    "LoginThrottle",
    "Membership",
    "MembershipClient",
    "Message",
    "ProviderConnection",
    "RecoveryCode",
    "User",
]
