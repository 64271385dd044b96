"""The hash chain: the canonical form of an event, its hash, and appending to a chain.

Each agency has a chain (``chain`` = agency id; events outside any agency go to the
``platform`` chain). An event's hash covers its fields and the previous event's hash, so editing,
removing or reordering an event breaks every link after it. Writers of one chain are serialised
by the chain's ``audit_heads`` row, and take it as late as they can: a session writes its events
as its transaction commits (``audit.service``). On PostgreSQL it queues them (``queue_events``)
and a deferred trigger links them inside ``COMMIT`` (migration 0011), from the pieces of their
canonical form around the two fields only the head knows (``Canonical``), so the head's row
lock is held for no round trip. On SQLite, where every write transaction holds the database's
write lock anyway (``BEGIN IMMEDIATE``), ``append_events`` links them just before the commit.

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

from sqlalchemy import String, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from demandly.audit.models import PLATFORM_CHAIN, AuditEvent, AuditHead, AuditQueued
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

# Built once: every append runs them, and building them cost about as much as running them.
_LOCK_HEAD = (
    select(_heads.c.seq, _heads.c.last_hash)
    .where(_heads.c.chain == bindparam("head"))
    .with_for_update()
)
_INSERT_EVENTS = insert(_events)
_QUEUE_EVENTS = insert(AuditQueued.__table__)
_MOVE_HEAD = (
    update(_heads)
    .where(
        _heads.c.chain == bindparam("head"),
        _heads.c.seq == bindparam("from_seq"),
        _heads.c.last_hash == bindparam("from_hash"),
    )
    .values(seq=bindparam("to_seq"), last_hash=bindparam("to_hash"))
)


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
    document = {name: _canonical_value(name, fields[name]) for name in HASHED_FIELDS}
    return _dumps(document).encode()


def event_hash(fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(fields)).hexdigest()


# An event and who caused it: one transaction's events may have several actors (a session's
# actor can change, as when a login names its user).
Authored = tuple[Actor, PendingEvent]


def append_events(connection: Connection, pending: Sequence[Authored]) -> None:
    """Append ``pending`` to their chains in order, inside the connection's transaction."""
    by_chain: dict[str, list[Authored]] = {}
    for authored in pending:
        by_chain.setdefault(authored[1].chain, []).append(authored)
    # A fixed lock order keeps two transactions that touch the same chains from deadlocking.
    for chain in sorted(by_chain):
        items = by_chain[chain]
        guess = _last_heads.get(chain)
        if guess is None or not _append_after(connection, chain, items, guess):
            head = _lock_head(connection, chain)
            if not _append_after(connection, chain, items, head):
                raise RuntimeError(f"the head of audit chain {chain!r} moved while locked")


# The head each chain had after this process last appended to it: a guess that saves reading
# the head first. It is never trusted: the head moves only if it still is the guess (checked by
# the UPDATE that also takes the head's lock); another process or a rolled-back transaction
# makes it wrong, and then the head is read, locked, as before.
_last_heads: dict[str, tuple[int, str]] = {}


def _append_after(
    connection: Connection, chain: str, items: Sequence[Authored], head: tuple[int, str]
) -> bool:
    """Append ``items`` after ``head`` if that still is the chain's head; tells whether."""
    seq, last_hash = head
    rows = []
    for actor, item in items:
        seq += 1
        row = _row(item, actor, chain, seq, last_hash)
        last_hash = row["hash"]
        rows.append(row)
    moved = connection.execute(
        _MOVE_HEAD,
        {
            "head": chain,
            "from_seq": head[0],
            "from_hash": head[1],
            "to_seq": seq,
            "to_hash": last_hash,
        },
    )
    if moved.rowcount != 1:
        _last_heads.pop(chain, None)
        return False
    connection.execute(_INSERT_EVENTS, rows)
    _last_heads[chain] = (seq, last_hash)
    return True


def _row(item: PendingEvent, actor: Actor, chain: str, seq: int, prev_hash: str) -> dict[str, Any]:
    row = {**_unlinked(item, actor, chain), "seq": seq, "prev_hash": prev_hash}
    row["hash"] = event_hash(row)
    return row


def _unlinked(item: PendingEvent, actor: Actor, chain: str) -> dict[str, Any]:
    """The event's fields but its place in the chain (``seq``, ``prev_hash``, ``hash``)."""
    row: dict[str, Any] = {
        "id": new_id(AuditEvent.__id_prefix__),
        "chain": chain,
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
    }
    for name, limit in _MAX_LENGTHS.items():
        if isinstance(row.get(name), str):
            row[name] = row[name][:limit]
    return row


# --- PostgreSQL: linked inside the commit ---------------------------------------------------


@dataclass(frozen=True)
class Canonical:
    """An event's canonical form with two holes, for the previous hash and the sequence number:
    ``head + prev_hash + middle + str(seq) + tail`` is ``canonical_json`` of the linked event."""

    head: str
    middle: str
    tail: str

    @classmethod
    def of(cls, fields: Mapping[str, Any]) -> Canonical:
        # Written with both fields empty, then cut there. Only a key can hold these markers:
        # every quote inside a value is escaped.
        document = {name: _canonical_value(name, fields.get(name)) for name in HASHED_FIELDS}
        text = _dumps({**document, "prev_hash": "", "seq": 0})
        cut = text.index(_PREV_MARK) + len(_PREV_MARK) - 1
        rest = text[cut:]
        at = rest.index(_SEQ_MARK) + len(_SEQ_MARK) - 1
        return cls(head=text[:cut], middle=rest[:at], tail=rest[at + 1 :])


_PREV_MARK = '"prev_hash":""'
_SEQ_MARK = '"seq":0'


def _canonical_value(name: str, value: Any) -> Any:
    if name == "created_at":
        return canonical_time(value)
    if name == "changed_fields":
        return list(value or [])
    return value


def _dumps(document: Mapping[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def queue_events(connection: Connection, pending: Sequence[Authored]) -> None:
    """Queue ``pending`` for their chains (PostgreSQL), in one statement: a deferred trigger
    links them as the transaction commits, in this order (chains in a fixed order, against
    deadlocks; each chain's events in the order given)."""
    rows = []
    for actor, item in sorted(pending, key=lambda authored: authored[1].chain):
        row = _unlinked(item, actor, item.chain)
        canonical = Canonical.of(row)
        rows.append(
            {
                **row,
                "canonical_head": canonical.head,
                "canonical_middle": canonical.middle,
                "canonical_tail": canonical.tail,
            }
        )
    connection.execute(_QUEUE_EVENTS, rows)


def _lock_head(connection: Connection, chain: str) -> tuple[int, str]:
    locked, head = _LOCK_HEAD, {"head": chain}
    row = connection.execute(locked, head).first()
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
        row = connection.execute(locked, head).one()
    return int(row.seq), str(row.last_hash)
