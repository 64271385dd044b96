"""``demandly audit verify``: recompute every hash chain and name the first broken link, and
check the anchors kept outside the database; ``demandly audit anchor``: write the heads out."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from demandly.audit.service import (
    Anchor,
    ChainReport,
    check_anchors,
    take_anchors,
    verify_chains,
)
from demandly.audit.tasks import append_anchors

audit_app = typer.Typer(no_args_is_help=True)
console = Console()


@audit_app.callback()
def _audit() -> None:
    """Audit trail tools."""


@audit_app.command()
def verify(
    chain: list[str] = typer.Option(
        None, "--chain", help="Verify only this chain (agency id or 'platform'); repeatable."
    ),
    anchors: Path | None = typer.Option(
        None,
        "--anchors",
        help="Also check the chain heads kept in this file (by `audit anchor` or the hourly job).",
        exists=True,
        dir_okay=False,
    ),
) -> None:
    """Verify the audit hash chains; exits with 1 when any chain is broken."""
    from demandly.app import create_database
    from demandly.config import get_settings

    kept = _read_anchors(anchors) if anchors is not None else []

    async def _run() -> list[ChainReport]:
        db = create_database(get_settings())
        try:
            reports = await verify_chains(db, chain or None)
            if kept:
                wanted = set(chain) if chain else None
                chosen = [a for a in kept if wanted is None or a.chain in wanted]
                reports += [_as_anchor_report(r) for r in await check_anchors(db, chosen)]
            return reports
        finally:
            await db.dispose()

    reports = asyncio.run(_run())
    console.print(_table(reports))
    broken = [r for r in reports if not r.ok]
    if broken:
        console.print(f"[red]{len(broken)} of {len(reports)} chains are broken.[/red]")
        raise typer.Exit(code=1)
    console.print(f"[green]All {len(reports)} chains verified.[/green]")


@audit_app.command()
def anchor(
    append: Path | None = typer.Option(
        None, "--append", help="Append the heads to this file instead of printing them."
    ),
) -> None:
    """Write every chain's head (seq and hash, no personal data) as JSON lines, to keep outside
    the database; `audit verify --anchors FILE` proves later that the chains still hold them."""
    from demandly.app import create_database
    from demandly.config import get_settings

    async def _run() -> list[Anchor]:
        db = create_database(get_settings())
        try:
            return await take_anchors(db)
        finally:
            await db.dispose()

    anchors = asyncio.run(_run())
    if append is None:
        for item in anchors:
            typer.echo(item.to_json())
        return
    append_anchors(append, anchors)
    console.print(f"{len(anchors)} chain heads appended to {append}.")


def _read_anchors(path: Path) -> list[Anchor]:
    anchors = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            anchors.append(Anchor.from_json(line))
        except ValueError as exc:
            console.print(f"[red]{path}:{number}: {exc}[/red]")
            raise typer.Exit(code=2) from None
    return anchors


def _as_anchor_report(report: ChainReport) -> ChainReport:
    return ChainReport(
        f"{report.chain} (anchors)",
        report.events_checked,
        report.ok,
        report.broken_event_id,
        report.reason,
    )


def _table(reports: list[ChainReport]) -> Table:
    table = Table(title="Audit chains")
    for column in ("chain", "events checked", "status", "first broken event", "reason"):
        table.add_column(column, overflow="fold")
    for report in reports:
        table.add_row(
            report.chain,
            str(report.events_checked),
            "[green]ok[/green]" if report.ok else "[red]BROKEN[/red]",
            report.broken_event_id or "",
            report.reason or "",
        )
    return table
