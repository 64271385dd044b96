"""The hash chain: the canonical form of an event, its hash, and appending to a chain.

Each agency has a chain (``chain`` = agency id; events outside any agency go to the
``platform`` chain). An event's hash covers its fields and the previous event's hash, so editing,
removing or reordering an event breaks every link after it. Writers of one chain are serialised
by the chain's ``audit_heads`` row: locked with ``SELECT … FOR UPDATE`` on PostgreSQL; on SQLite
every write transaction already holds the database's write lock (``BEGIN IMMEDIATE``).

This module works on a plain (sync) ``Connection`` so that it runs inside a flush, where the
ORM may not be re-entered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from demandly.audit.models import PLATFORM_CHAIN, AuditEvent, AuditHead
from demandly.kit.context import Actor
from demandly.kit.ids import new_id
from demandly.kit.time import utcnow

GENESIS_HASH = "0" * 64

# The fields an event's hash covers, besides ``prev_hash`` (also covered) and ``hash`` itself.
HASHED_FIELDS = (
    "id",
    "chain",
    "seq",
    "agency_id",
    "client_id",
    "actor_kind",
    "actor_id",
    "actor_role",
    "action",
    "entity_type",
    "entity_id",
    "changed_fields",
    "ip",
    "user_agent",
    "request_id",
    "created_at",
    "prev_hash",
)

_events = AuditEvent.__table__
_heads = AuditHead.__table__
_MAX_LENGTHS = {
    column.name: column.type.length
    for column in _events.columns
    if isinstance(column.type, String) and column.type.length
}


@dataclass(frozen=True)
class PendingEvent:
    """An event to append; the actor, sequence number and hashes are added when written."""

    action: str
    entity_type: str | None = None
    entity_id: str | None = None
    agency_id: str | None = None
    client_id: str | None = None
    changed_fields: tuple[str, ...] = ()

    @property
    def chain(self) -> str:
        return self.agency_id or PLATFORM_CHAIN


def canonical_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def canonical_json(fields: Mapping[str, Any]) -> bytes:
    """Sorted keys, no whitespace, UTC ISO timestamps with microseconds."""
    document = {name: fields[name] for name in HASHED_FIELDS}
    document["created_at"] = canonical_time(document["created_at"])
    document["changed_fields"] = list(document["changed_fields"] or [])
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(fields)).hexdigest()


def append_events(connection: Connection, actor: Actor, pending: Sequence[PendingEvent]) -> None:
    """Append ``pending`` to their chains in order, inside the connection's transaction."""
    by_chain: dict[str, list[PendingEvent]] = {}
    for item in pending:
        by_chain.setdefault(item.chain, []).append(item)
    # A fixed lock order keeps two transactions that touch the same chains from deadlocking.
    for chain in sorted(by_chain):
        seq, last_hash = _lock_head(connection, chain)
        rows = []
        for item in by_chain[chain]:
            seq += 1
            row = _row(item, actor, chain, seq, last_hash)
            last_hash = row["hash"]
            rows.append(row)
        connection.execute(insert(_events), rows)
        connection.execute(
            update(_heads).where(_heads.c.chain == chain).values(seq=seq, last_hash=last_hash)
        )


def _row(item: PendingEvent, actor: Actor, chain: str, seq: int, prev_hash: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": new_id(AuditEvent.__id_prefix__),
        "chain": chain,
        "seq": seq,
        "agency_id": item.agency_id,
        "client_id": item.client_id,
        "actor_kind": actor.kind,
        "actor_id": actor.id,
        "actor_role": actor.role,
        "action": item.action,
        "entity_type": item.entity_type,
        "entity_id": item.entity_id,
        "changed_fields": sorted(item.changed_fields),
        "ip": actor.ip,
        "user_agent": actor.user_agent,
        "request_id": actor.request_id,
        "created_at": utcnow(),
        "prev_hash": prev_hash,
    }
    for name, limit in _MAX_LENGTHS.items():
        if isinstance(row.get(name), str):
            row[name] = row[name][:limit]
    row["hash"] = event_hash(row)
    return row


def _lock_head(connection: Connection, chain: str) -> tuple[int, str]:
    locked = select(_heads.c.seq, _heads.c.last_hash).where(_heads.c.chain == chain)
    locked = locked.with_for_update()
    row = connection.execute(locked).first()
    if row is None:
        # Two first writers of a chain: one insert wins, the other waits for it and then
        # finds (and locks) the winner's row.
        dialect_insert = (
            postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
        )
        connection.execute(
            dialect_insert(_heads)
            .values(chain=chain, seq=0, last_hash=GENESIS_HASH)
            .on_conflict_do_nothing(index_elements=["chain"])
        )
        row = connection.execute(locked).one()
    return int(row.seq), str(row.last_hash)
