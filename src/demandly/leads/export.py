"""CSV export of leads: streamed page by page, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

from demandly.auth.context import AuthContext
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.leads.models import Contact, Lead
from demandly.leads.repository import LeadFilters, LeadRepository

BATCH = 500
COLUMNS = (
    "id",
    "created_at",
    "status",
    "score",
    "name",
    "email",
    "phone",
    "company",
    "answers",
    "tags",
    "agent_id",
    "conversation_id",
    "owner_id",
    "qualified_at",
)
# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula gets a leading quote (OWASP)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _line(values: list[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([safe_cell(v) for v in values])
    return buffer.getvalue()


def _answers(answers: dict[str, Any]) -> str:
    return "; ".join(f"{key}: {value}" for key, value in answers.items() if value is not None)


def _row(lead: Lead, contact: Contact | None) -> list[Any]:
    return [
        lead.id,
        lead.created_at.isoformat(),
        lead.status,
        lead.score,
        contact.name if contact else None,
        contact.email if contact else None,
        contact.phone if contact else None,
        contact.company if contact else None,
        _answers(lead.answers),
        ", ".join(lead.tags),
        lead.agent_id,
        lead.conversation_id,
        lead.owner_id,
        lead.qualified_at.isoformat() if lead.qualified_at else None,
    ]


async def csv_lines(
    db: Database, ctx: AuthContext, filters: LeadFilters, within: Scope | None
) -> AsyncIterator[str]:
    """The header, then a line per lead, newest first. Each batch is read in a short
    transaction of its own (the request's has ended when the body streams)."""
    async for line in csv_lines_matching(db, ctx, filters, within, None):
        yield line


async def csv_lines_matching(
    db: Database, ctx: AuthContext, filters: LeadFilters, within: Scope | None, q: str | None
) -> AsyncIterator[str]:
    """``csv_lines`` of the leads whose contact matches ``q`` (the dashboard's search)."""
    yield _line(list(COLUMNS))
    after: str | None = None
    while True:
        async with db.session(ctx.scope, ctx.actor) as session:
            rows = await LeadRepository(session).export_page_matching(
                filters, q, within, after, BATCH
            )
        for lead, contact in rows:
            yield _line(_row(lead, contact))
        if len(rows) < BATCH:
            return
        after = rows[-1][0].id
