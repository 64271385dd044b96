"""``demandly audit verify``: recompute every hash chain and name the first broken link."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.table import Table

from demandly.audit.service import ChainReport, verify_chains

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
) -> None:
    """Verify the audit hash chains; exits with 1 when any chain is broken."""
    from demandly.app import create_database
    from demandly.config import get_settings

    async def _run() -> list[ChainReport]:
        db = create_database(get_settings())
        try:
            return await verify_chains(db, chain or None)
        finally:
            await db.dispose()

    reports = asyncio.run(_run())
    console.print(_table(reports))
    broken = [r for r in reports if not r.ok]
    if broken:
        console.print(f"[red]{len(broken)} of {len(reports)} chains are broken.[/red]")
        raise typer.Exit(code=1)
    console.print(f"[green]All {len(reports)} chains verified.[/green]")


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
