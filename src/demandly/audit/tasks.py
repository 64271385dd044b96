"""Hourly: each audit chain's head leaves the database (the log, and the anchor file if set)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from demandly.audit.service import Anchor, take_anchors
from demandly.config import get_settings
from demandly.jobs.registry import JobContext, periodic
from demandly.kit.logging import get_logger

log = get_logger(__name__)


@periodic("audit.anchor_heads", every=timedelta(hours=1))
async def anchor_heads(ctx: JobContext, payload: dict[str, Any]) -> None:
    anchors = await take_anchors(ctx.db)
    for anchor in anchors:
        log.info("audit.anchor", chain=anchor.chain, seq=anchor.seq, hash=anchor.hash)
    target = get_settings().audit_anchor_file
    if target is not None and anchors:
        append_anchors(target, anchors)


def append_anchors(path: Path, anchors: list[Anchor]) -> None:
    """Append one JSON line per anchor (the file only grows; older anchors stay checkable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.writelines(anchor.to_json() + "\n" for anchor in anchors)
