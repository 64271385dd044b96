"""Reading the audit trail straight from the database (system scope) in tests."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from sqlalchemy import select

from demandly.audit.models import AuditEvent
from demandly.config import Settings
from demandly.kit.context import Actor, Scope
from demandly.kit.db import Database

ALICE = Actor(
    kind="user",
    id="usr_alice",
    role="agency_admin",
    ip="203.0.113.7",
    user_agent="pytest-agent/1.0",
    request_id="req-audit-1",
)


def fields_of(event: AuditEvent) -> dict[str, object]:
    return {column.name: getattr(event, column.name) for column in AuditEvent.__table__.columns}


async def events_of(db: Database, *, chain: str | None = None, **where: str) -> list[AuditEvent]:
    """Events in chain order (or creation order across chains)."""
    statement = select(AuditEvent)
    if chain is not None:
        statement = statement.where(AuditEvent.chain == chain)
    for column, value in where.items():
        statement = statement.where(getattr(AuditEvent, column) == value)
    statement = statement.order_by(AuditEvent.chain, AuditEvent.seq)
    async with db.session(Scope.for_system()) as session:
        return list((await session.execute(statement)).scalars())


async def platform_admin_headers(db: Database, user_id: str) -> dict[str, str]:
    """A logged-in dashboard session of ``user_id``: cookie plus CSRF header."""
    from datetime import timedelta

    from demandly.auth.dependencies import CSRF_HEADER, SESSION_COOKIE
    from demandly.auth.models import LoginSession
    from demandly.auth.service import csrf_token_for
    from demandly.kit.crypto import hash_token
    from demandly.kit.ids import random_token
    from demandly.kit.time import utcnow

    token = random_token()
    async with db.session(Scope.for_system()) as session:
        session.add(
            LoginSession(
                user_id=user_id,
                token_hash=hash_token(token),
                expires_at=utcnow() + timedelta(hours=1),
            )
        )
        await session.commit()
    return {"Cookie": f"{SESSION_COOKIE}={token}", CSRF_HEADER: csrf_token_for(token)}


async def run_audit_cli(settings: Settings, *args: str) -> tuple[int, str]:
    """``demandly audit <args>`` in a process of its own, on the test's database."""
    env = {
        **os.environ,
        "DEMANDLY_DATABASE_URL": settings.effective_database_url,
        "DEMANDLY_DATA_DIR": str(settings.data_dir),
        "DEMANDLY_SECRET_KEY": settings.secret_key or "",
        "DEMANDLY_LOG_LEVEL": "WARNING",
        "COLUMNS": "250",
    }
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("demandly")),
        "audit",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()
