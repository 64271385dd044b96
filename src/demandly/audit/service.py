"""The audit trail (AVV Anlage 2, Eingabekontrolle): who created, changed or deleted what, when.

Importing this module registers a session hook: every flush that inserts, updates or deletes a
model with ``__audited__ = True`` appends one audit event per row, in the same transaction, to
the hash chain of the row's agency (``platform`` for rows outside any agency, such as users).
Updates record the *names* of the changed columns, never their values. A model may name itself
with ``__audit_name__`` and list columns whose changes alone are not worth an event in
``__audit_ignore__`` (``updated_at`` is always ignored).

``record()`` writes events for actions that are not row changes (login, 2FA enabled, …), and
``verify_chains()`` recomputes every chain and reports the first broken link.

A chain checks itself, but whoever can rewrite the database can also rewrite a chain's tail and
its head consistently. ``take_anchors()`` copies each chain's head (seq and hash, no personal
data) out of the database — into the log every hour and, if set, a file the operator keeps
elsewhere — and ``check_anchors()`` proves later that every anchored link is still there,
unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction, attributes

from demandly.audit.chain import (
    GENESIS_HASH,
    PendingEvent,
    append_events,
    event_hash,
    queue_events,
)
from demandly.audit.models import AuditEvent, AuditHead
from demandly.audit.repository import AuditRepository
from demandly.kit.context import Actor, Scope
from demandly.kit.db import Database, session_actor, session_scope
from demandly.kit.errors import NotFound, UnscopedQuery
from demandly.kit.time import utcnow

ALWAYS_IGNORED = frozenset({"updated_at"})
VERIFY_BATCH = 1000


# --- automatic recording -------------------------------------------------------------------


def entity_type_of(obj: Any) -> str:
    name = getattr(type(obj), "__audit_name__", None)
    return name or singular(obj.__tablename__)


def singular(table: str) -> str:
    if table.endswith("ies"):
        return table[:-3] + "y"
    if table.endswith(("sses", "shes", "ches", "xes")):
        return table[:-2]
    if table.endswith("s") and not table.endswith("ss"):
        return table[:-1]
    return table


def _owner(obj: Any) -> tuple[str | None, str | None]:
    if getattr(obj, "__tenant__", False):
        return obj.tenant_owner()  # type: ignore[no-any-return]
    return None, None


def _changed_columns(obj: Any) -> list[str]:
    """The names of the columns this flush changed, in the model's order. Only attributes set
    since the row was loaded (``committed_state``) can have changed: their history alone is
    read, since building every column's history costs more than the rest of the event."""
    state = inspect(obj)
    touched = state.committed_state
    if not touched:
        return []
    ignored = ALWAYS_IGNORED | frozenset(getattr(type(obj), "__audit_ignore__", ()))
    return [
        attr.key
        for attr in state.mapper.column_attrs
        if attr.key in touched
        and attr.key not in ignored
        and attributes.get_history(obj, attr.key).has_changes()
    ]


def _entity_id(obj: Any) -> str:
    identity = inspect(obj).identity
    return ":".join(str(part) for part in identity) if identity else str(obj.id)


def _pending(obj: Any, verb: str, changed: Iterable[str] = ()) -> PendingEvent:
    entity_type = entity_type_of(obj)
    agency_id, client_id = _owner(obj)
    return PendingEvent(
        action=f"{entity_type}.{verb}",
        entity_type=entity_type,
        entity_id=_entity_id(obj),
        agency_id=agency_id,
        client_id=client_id,
        changed_fields=tuple(changed),
    )


def changes_in_flush(session: Session) -> list[PendingEvent]:
    """The audit events for what this flush writes. Called after the flush has written the
    rows; ``new``/``dirty``/``deleted`` and attribute history still show the flushed changes."""
    pending: list[PendingEvent] = []
    for obj in session.new:
        if getattr(obj, "__audited__", False):
            pending.append(_pending(obj, "created"))
    for obj in session.dirty:
        if getattr(obj, "__audited__", False) and obj not in session.deleted:
            changed = _changed_columns(obj)
            if changed:
                pending.append(_pending(obj, "updated", changed))
    for obj in session.deleted:
        if getattr(obj, "__audited__", False):
            pending.append(_pending(obj, "deleted"))
    return pending


@event.listens_for(Session, "after_flush")
def _record_flushed_changes(session: Session, flush_context: Any) -> None:
    pending = changes_in_flush(session)
    if pending:
        _keep(session, pending)


# --- appending at commit -------------------------------------------------------------------
#
# Events wait on the session and reach their chains as the transaction commits. Appending
# locks the chain's head (one row per agency) until the commit: taken at the first event, it
# serialised every unit of work of the agency for the rest of its transaction, so on
# PostgreSQL fifty conversations queued behind one another's round trips. There the events are
# queued, and a trigger links them inside the commit: the lock is held for no round trip.

_PENDING = "audit_pending"


@dataclass(frozen=True)
class _Waiting:
    # The savepoint the events were recorded in (None: the transaction itself), so that
    # rolling the savepoint back drops them with the rows they describe.
    savepoint: SessionTransaction | None
    actor: Actor
    events: list[PendingEvent]


def _keep(session: Session, events: list[PendingEvent]) -> None:
    waiting = _Waiting(session.get_nested_transaction(), session_actor(session), events)
    session.info.setdefault(_PENDING, []).append(waiting)


@event.listens_for(Session, "before_commit")
def _append_waiting_events(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint's release: its events wait for the transaction's commit
    session.flush()
    waiting: list[_Waiting] = session.info.pop(_PENDING, [])
    if not waiting:
        return
    connection = session.connection()
    # PostgreSQL links the queued events inside the commit itself (migration 0011).
    write = queue_events if connection.dialect.name == "postgresql" else append_events
    write(connection, [(item.actor, event) for item in waiting for event in item.events])


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back_events(session: Session, previous: SessionTransaction) -> None:
    # (The transaction's own rollback ends it: ``_forget_events_of_ended_transaction``.)
    waiting: list[_Waiting] | None = session.info.get(_PENDING)
    if waiting and previous.nested:
        waiting[:] = [item for item in waiting if not _inside(item.savepoint, previous)]


@event.listens_for(Session, "after_transaction_end")
def _forget_events_of_ended_transaction(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


def _inside(savepoint: SessionTransaction | None, rolled_back: SessionTransaction) -> bool:
    while savepoint is not None:
        if savepoint is rolled_back:
            return True
        savepoint = savepoint.parent
    return False


# --- explicit recording --------------------------------------------------------------------


async def record(
    session: AsyncSession,
    *,
    action: str,
    entity_type: str | None = None,
    entity_id: str | None = None,
    agency_id: str | None = None,
    client_id: str | None = None,
    changed_fields: list[str] | None = None,
) -> None:
    """Record an action that is not a row change (``user.logged_in``, ``api_key.revoked`` …)
    in the caller's transaction, with the session's actor."""
    await _record(
        session,
        PendingEvent(
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            agency_id=agency_id,
            client_id=client_id,
            changed_fields=tuple(changed_fields or ()),
        ),
    )


async def record_change(
    session: AsyncSession, obj: Any, verb: str, changed: Iterable[str] = ()
) -> None:
    """The event the flush hook writes for ``obj`` (``created``, ``updated`` with the names of
    the changed columns, ``deleted``), for a row a Core statement wrote, which no flush sees."""
    await _record(session, _pending(obj, verb, changed))


async def _record(session: AsyncSession, item: PendingEvent) -> None:
    if item.client_id is not None and item.agency_id is None:
        raise ValueError("an audit event of a client needs its agency_id")
    if item.agency_id is not None:
        scope = session_scope(session.sync_session)
        if scope is None:
            raise UnscopedQuery(f"audit event {item.action!r} for an agency without a tenant scope")
        if not scope.allows(item.agency_id, item.client_id):
            raise NotFound()
    # Changes made so far in this unit of work are recorded before the action that follows
    # them.
    if session.new or session.dirty or session.deleted:
        await session.flush()
    _keep(session.sync_session, [item])


# --- verification --------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainReport:
    chain: str
    events_checked: int
    ok: bool
    broken_event_id: str | None = None
    reason: str | None = None


def _fields(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "chain": event.chain,
        "seq": event.seq,
        "agency_id": event.agency_id,
        "client_id": event.client_id,
        "actor_kind": event.actor_kind,
        "actor_id": event.actor_id,
        "actor_role": event.actor_role,
        "action": event.action,
        "entity_type": event.entity_type,
        "entity_id": event.entity_id,
        "changed_fields": event.changed_fields,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "request_id": event.request_id,
        "created_at": event.created_at,
        "prev_hash": event.prev_hash,
    }


def check_link(event: AuditEvent, expected_seq: int, prev_hash: str) -> str | None:
    """Why ``event`` does not continue a chain at ``expected_seq``/``prev_hash``, or None."""
    if event.seq != expected_seq:
        return f"sequence gap: expected seq {expected_seq}, found {event.seq} (events missing)"
    if event.prev_hash != prev_hash:
        return "prev_hash does not match the previous event's hash"
    if event_hash(_fields(event)) != event.hash:
        return "hash does not match the event's contents (event altered)"
    return None


async def _verify_chain(session: AsyncSession, chain: str, head: AuditHead | None) -> ChainReport:
    expected_seq, prev_hash, checked, last_seq = 1, GENESIS_HASH, 0, 0
    statement = select(AuditEvent).where(AuditEvent.chain == chain)
    if head is not None:
        # Events appended while we verify are newer than the head we read: not ours to judge.
        statement = statement.where(AuditEvent.seq <= head.seq)
    while True:
        batch = list(
            (
                await session.execute(
                    statement.where(AuditEvent.seq > last_seq)
                    .order_by(AuditEvent.seq)
                    .limit(VERIFY_BATCH)
                )
            ).scalars()
        )
        for item in batch:
            checked += 1
            reason = check_link(item, expected_seq, prev_hash)
            if reason is not None:
                return ChainReport(chain, checked, False, item.id, reason)
            expected_seq, prev_hash = expected_seq + 1, item.hash
        session.expunge_all()
        if len(batch) < VERIFY_BATCH:
            break
        last_seq = batch[-1].seq
    last = expected_seq - 1
    if head is None:
        return ChainReport(chain, checked, False, None, "the chain's head record is missing")
    if head.seq != last or head.last_hash != prev_hash:
        return ChainReport(
            chain,
            checked,
            False,
            None,
            f"the head records seq {head.seq} but the chain ends at seq {last} "
            "(events at the end were removed or altered)",
        )
    return ChainReport(chain, checked, True)


async def verify_chains(db: Database, chains: Iterable[str] | None = None) -> list[ChainReport]:
    """Recompute every chain (or the given ones) under the system scope."""
    async with db.session(Scope.for_system()) as session:
        heads = {h.chain: h for h in (await session.execute(select(AuditHead))).scalars()}
        if chains is None:
            in_events = (await session.execute(select(AuditEvent.chain).distinct())).scalars()
            wanted = sorted(set(heads) | set(in_events))
        else:
            wanted = list(chains)
        return [await _verify_chain(session, chain, heads.get(chain)) for chain in wanted]


# --- anchors: chain heads kept outside the database -----------------------------------------


@dataclass(frozen=True)
class Anchor:
    """A chain's head at one moment: the event at ``seq`` had ``hash``."""

    chain: str
    seq: int
    hash: str
    taken_at: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Anchor:
        """One line of an anchor file; ValueError naming what is wrong."""
        try:
            data = json.loads(line)
            anchor = cls(
                str(data["chain"]), int(data["seq"]), str(data["hash"]), str(data["taken_at"])
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an audit anchor: {exc}") from None
        if anchor.seq < 0 or len(anchor.hash) != len(GENESIS_HASH):
            raise ValueError("not an audit anchor: bad seq or hash")
        return anchor


async def take_anchors(db: Database, now: datetime | None = None) -> list[Anchor]:
    """Every chain's head, to be kept where the database's owner cannot change it."""
    taken_at = (now or utcnow()).isoformat()
    async with db.session(Scope.for_system()) as session:
        heads = await AuditRepository(session).heads()
    return [Anchor(h.chain, h.seq, h.last_hash, taken_at) for h in heads if h.seq > 0]


async def check_anchors(db: Database, anchors: Iterable[Anchor]) -> list[ChainReport]:
    """One report per anchored chain: broken when an anchored event is gone or differs."""
    by_chain: dict[str, list[Anchor]] = {}
    for anchor in anchors:
        by_chain.setdefault(anchor.chain, []).append(anchor)
    reports = []
    async with db.session(Scope.for_system()) as session:
        repo = AuditRepository(session)
        for chain, kept in sorted(by_chain.items()):
            stored = await repo.hashes_at(chain, sorted({a.seq for a in kept}))
            reports.append(_compare(chain, sorted(kept, key=lambda a: a.seq), stored))
    return reports


def _compare(chain: str, anchors: list[Anchor], stored: dict[int, str]) -> ChainReport:
    for checked, anchor in enumerate(anchors, start=1):
        found = stored.get(anchor.seq)
        if found is None:
            reason = (
                f"the event at seq {anchor.seq}, anchored at {anchor.taken_at}, is gone "
                "(the chain was cut back or rebuilt)"
            )
        elif found != anchor.hash:
            reason = (
                f"the event at seq {anchor.seq} differs from its anchor taken at "
                f"{anchor.taken_at} (the chain was rewritten from there on)"
            )
        else:
            continue
        return ChainReport(chain, checked, False, None, reason)
    return ChainReport(chain, len(anchors), True)
