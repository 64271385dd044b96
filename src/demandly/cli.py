"""The ``demandly`` command."""

from __future__ import annotations

import asyncio
import signal

import typer
import uvicorn
from rich.console import Console

from demandly.audit.cli import audit_app
from demandly.config import Settings, get_settings
from demandly.kit.migrations import upgrade_to_head
from demandly.knowledge.cli import kb_app

app = typer.Typer(help="Demandly: white-label AI chat and phone agents.", no_args_is_help=True)
console = Console()


def _migrate(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_to_head(settings.migration_database_url or settings.effective_database_url)


@app.command()
def migrate() -> None:
    """Apply database migrations."""
    _migrate(get_settings())
    console.print("[green]Database is at the newest migration.[/green]")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8000, help="Port to bind."),
    demo: bool = typer.Option(False, "--demo", help="Seed the demo agency first."),
) -> None:
    """Migrate, optionally seed the demo, and serve the API, dashboard and worker."""
    settings = get_settings()
    _migrate(settings)
    if demo:
        _print_demo(asyncio.run(_seed_demo(settings)), port)
    uvicorn.run(
        "demandly.app:create_app",
        factory=True,
        host=host,
        port=port,
        proxy_headers=True,
        log_level="warning",
        access_log=False,
    )


@app.command()
def demo() -> None:
    """Seed the demo agency (idempotent) and print its logins."""
    settings = get_settings()
    _migrate(settings)
    _print_demo(asyncio.run(_seed_demo(settings)))


@app.command("create-admin")
def create_admin(
    email: str = typer.Option(..., "--email", help="Login e-mail."),
    password: str = typer.Option(..., "--password", help="Password (policy applies)."),
    name: str = typer.Option("Platform admin", "--name"),
) -> None:
    """Create a platform administrator."""
    from demandly.bootstrap import create_platform_admin

    settings = get_settings()
    _migrate(settings)
    try:
        user_id = asyncio.run(create_platform_admin(settings, email, password, name))
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(code=2) from exc
    console.print(f"[green]Platform admin created:[/green] {email} ({user_id})")


@app.command()
def worker() -> None:
    """Run the job worker alone (scale by starting several)."""
    from demandly.app import configure_runtime, create_database
    from demandly.jobs.worker import Worker

    settings = get_settings()
    configure_runtime(settings)

    async def _run() -> None:
        db = create_database(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await Worker(db, poll_seconds=settings.worker_poll_seconds).run(stop)
        finally:
            await db.dispose()

    asyncio.run(_run())


async def _seed_demo(settings: Settings):  # type: ignore[no-untyped-def]
    from demandly.bootstrap import seed_demo

    return await seed_demo(settings)


def _print_demo(logins, port: int = 8000) -> None:  # type: ignore[no-untyped-def]
    from demandly.bootstrap import DEMO_DOMAIN

    console.print("[bold]Demo ready.[/bold] Log in with:")
    for login in logins:
        console.print(f"  {login.role:<16} {login.email:<32} {login.password}")
    console.print(
        f"Dashboard in the demo agency's brand: http://{DEMO_DOMAIN}:{port}/login "
        "(or /login on any host)"
    )


app.add_typer(audit_app, name="audit", help="Audit trail tools.")
app.add_typer(kb_app, name="kb", help="Knowledge base tools: ingest and search.")
