"""Anchors: chain heads kept outside the database catch what the chain alone cannot — a tail
rewritten together with its head by someone who owns the database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from demandly.audit import tasks as audit_tasks
from demandly.audit.chain import event_hash
from demandly.audit.service import Anchor, check_anchors, take_anchors, verify_chains
from demandly.config import Settings, reset_settings_cache
from demandly.jobs.worker import Worker
from demandly.kit.db import Database
from tests.audit.helpers import events_of, fields_of, run_audit_cli
from tests.audit.test_verify import agency_with_history, as_owner


async def _cut_tail(settings: Settings, db: Database, chain: str, keep: int) -> None:
    """Delete the newest events and move the head back: the chain verifies again."""
    events = await events_of(db, chain=chain)
    for event in events[keep:]:
        await as_owner(settings, "DELETE FROM audit_events WHERE id = :id", id=event.id)
    last = events[keep - 1]
    await as_owner(
        settings,
        "UPDATE audit_heads SET seq = :seq, last_hash = :h WHERE chain = :chain",
        seq=last.seq,
        h=last.hash,
        chain=chain,
    )


async def test_anchors_still_hold_after_the_chain_grows(
    fresh_db: tuple[Database, Settings],
) -> None:
    db, _ = fresh_db
    agency_id = await agency_with_history(db)
    early = await take_anchors(db)
    assert [a.chain for a in early] == [agency_id]
    assert early[0].seq == len(await events_of(db, chain=agency_id))
    await agency_with_history(db)  # another chain, and more events later
    later = await take_anchors(db)
    reports = await check_anchors(db, early + later)
    assert len(reports) == 2 and all(r.ok for r in reports), reports


async def test_a_cut_tail_with_a_rebuilt_head_passes_the_chain_but_not_the_anchors(
    fresh_db: tuple[Database, Settings],
) -> None:
    db, settings = fresh_db
    agency_id = await agency_with_history(db)
    anchors = await take_anchors(db)
    await _cut_tail(settings, db, agency_id, keep=3)

    [chain_report] = await verify_chains(db, [agency_id])
    assert chain_report.ok  # the gap anchors close: consistent, so the chain alone cannot tell
    [report] = await check_anchors(db, anchors)
    assert not report.ok
    assert f"seq {anchors[0].seq}" in (report.reason or "") and "gone" in (report.reason or "")


async def test_a_rewritten_anchored_event_is_detected(fresh_db: tuple[Database, Settings]) -> None:
    db, settings = fresh_db
    agency_id = await agency_with_history(db)
    anchors = await take_anchors(db)
    newest = (await events_of(db, chain=agency_id))[-1]
    fields = fields_of(newest)
    fields["action"] = "client.viewed"
    rewritten = event_hash(fields)
    await as_owner(
        settings,
        "UPDATE audit_events SET action = 'client.viewed', hash = :h WHERE id = :id",
        h=rewritten,
        id=newest.id,
    )
    await as_owner(
        settings, "UPDATE audit_heads SET last_hash = :h WHERE chain = :c", h=rewritten, c=agency_id
    )
    assert (await verify_chains(db, [agency_id]))[0].ok
    [report] = await check_anchors(db, anchors)
    assert not report.ok and "rewritten" in (report.reason or "")


def test_an_anchor_line_is_checked_before_it_is_believed() -> None:
    good = Anchor("agency-1", 4, "a" * 64, "2026-12-02T10:00:00+00:00")
    assert Anchor.from_json(good.to_json()) == good
    for bad in ("", "{}", '{"chain":"x","seq":"four","hash":"a","taken_at":"t"}', "[1,2]"):
        with pytest.raises(ValueError, match="not an audit anchor"):
            Anchor.from_json(bad)
    short_hash = json.dumps({"chain": "x", "seq": 1, "hash": "abc", "taken_at": "t"})
    with pytest.raises(ValueError):
        Anchor.from_json(short_hash)


async def test_the_hourly_job_logs_and_appends_the_heads(
    fresh_db: tuple[Database, Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db, _ = fresh_db
    agency_id = await agency_with_history(db)
    anchor_file = tmp_path / "kept-elsewhere" / "anchors.jsonl"
    recorder = _Recorder()
    monkeypatch.setattr(audit_tasks, "log", recorder)
    logged = recorder.entries
    monkeypatch.setenv("DEMANDLY_AUDIT_ANCHOR_FILE", str(anchor_file))
    reset_settings_cache()
    try:
        worker = Worker(db)
        await worker.schedule_periodic(force=True)
        await worker.run_until_idle()
    finally:
        monkeypatch.delenv("DEMANDLY_AUDIT_ANCHOR_FILE")
        reset_settings_cache()
    kept = [Anchor.from_json(line) for line in anchor_file.read_text().splitlines()]
    assert [a.chain for a in kept] == [agency_id]
    assert kept[0].hash == (await events_of(db, chain=agency_id))[-1].hash
    anchors_logged = [e for e in logged if e["event"] == "audit.anchor"]
    assert [(e["chain"], e["hash"]) for e in anchors_logged] == [(agency_id, kept[0].hash)]


class _Recorder:
    """Stands in for the task module's logger (structlog caches bound loggers, so capturing
    by reconfiguring would miss a logger bound by an earlier test)."""

    def __init__(self) -> None:
        self.entries: list[dict[str, object]] = []

    def info(self, event: str, **fields: object) -> None:
        self.entries.append({"event": event, **fields})


async def test_the_cli_writes_anchors_and_verifies_against_them(
    fresh_db: tuple[Database, Settings], tmp_path: Path
) -> None:
    db, settings = fresh_db
    agency_id = await agency_with_history(db)
    kept = tmp_path / "anchors.jsonl"
    code, output = await run_audit_cli(settings, "anchor", "--append", str(kept))
    assert code == 0, output
    code, output = await run_audit_cli(settings, "verify", "--anchors", str(kept))
    assert code == 0, output
    assert f"{agency_id} (anchors)" in output and "BROKEN" not in output

    await _cut_tail(settings, db, agency_id, keep=2)
    code, output = await run_audit_cli(settings, "verify", "--anchors", str(kept))
    assert code == 1, output
    assert "BROKEN" in output and "gone" in output

    kept.write_text(kept.read_text() + "not json\n")
    code, output = await run_audit_cli(settings, "verify", "--anchors", str(kept))
    assert code == 2 and "anchors.jsonl:2" in output.replace("\n", ""), output
