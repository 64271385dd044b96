"""``demandly kb ingest`` and ``demandly kb search``: fill and try a knowledge base from the
shell, in-process under the system scope (an operator's tool)."""

from __future__ import annotations

import asyncio
import mimetypes
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from demandly.kit.errors import NotFound

kb_app = typer.Typer(no_args_is_help=True)
console = Console()


@kb_app.callback()
def _kb() -> None:
    """Knowledge base tools."""


@kb_app.command()
def ingest(
    path_or_url: str = typer.Argument(..., help="A file (PDF, DOCX, HTML, TXT, MD) or a URL."),
    kb: str = typer.Option(..., "--kb", help="The knowledge base id."),
    crawl: bool = typer.Option(False, "--crawl", help="Crawl the URL's website, not one page."),
    max_pages: int = typer.Option(50, "--max-pages", min=1, max=1000),
) -> None:
    """Read a file or a web page (or site) into a knowledge base, with a progress bar."""
    from demandly.app import configure_runtime, create_database
    from demandly.config import get_settings
    from demandly.kit.context import Scope
    from demandly.knowledge import schemas, service
    from demandly.knowledge.tasks import IngestResult
    from demandly.knowledge.tasks import ingest as run_ingest

    settings = get_settings()
    configure_runtime(settings)
    is_url = path_or_url.startswith(("http://", "https://"))
    if not is_url and not Path(path_or_url).is_file():
        console.print(f"[red]No such file: {path_or_url}[/red]")
        raise typer.Exit(code=2)
    upload = None if is_url else Path(path_or_url)
    content = upload.read_bytes() if upload else b""

    async def _run(progress: Progress) -> IngestResult | None:
        db = create_database(settings)
        scope = Scope.for_system()
        try:
            async with db.session(scope) as session:
                base = await service.get_base(session, kb)
                if is_url and crawl:
                    data = schemas.WebsiteSourceCreate(
                        kind="website",
                        url=path_or_url,
                        limits=schemas.CrawlLimits(max_pages=max_pages),
                    )
                    source = await service.add_source(session, base, data, queue=False)
                elif is_url:
                    data = schemas.UrlSourceCreate(kind="url", url=path_or_url)
                    source = await service.add_source(session, base, data, queue=False)
                else:
                    name = upload.name if upload else "upload"
                    source = await service.add_file(
                        session,
                        base,
                        name,
                        mimetypes.guess_type(name)[0],
                        content,
                        queue=False,
                    )
                await session.commit()
            task = progress.add_task("Reading", total=max_pages if crawl else 1)

            def report(done: int, chunks: int | None) -> None:
                progress.update(task, completed=done, description=f"{chunks or 0} chunks")

            return await run_ingest(db, scope, source.id, settings=settings, on_progress=report)
        finally:
            await db.dispose()

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), console=console
    ) as progress:
        try:
            result = asyncio.run(_run(progress))
        except NotFound:
            console.print(f"[red]Knowledge base {kb} not found.[/red]")
            raise typer.Exit(code=2) from None
    if result is None or result.status != "ready":
        console.print(f"[red]Failed: {result.error if result else 'source vanished'}[/red]")
        raise typer.Exit(code=1)
    console.print(
        f"[green]{result.chunks} chunks indexed[/green] from {result.documents} document(s); "
        f"{len(result.failures)} skipped."
    )


@kb_app.command()
def search(
    query: str = typer.Argument(..., help="The question."),
    kb: str = typer.Option(..., "--kb", help="The knowledge base id."),
    k: int = typer.Option(5, "-k", min=1, max=50),
) -> None:
    """Show the passages a question finds, with scores and sources."""
    from demandly.app import configure_runtime, create_database
    from demandly.config import get_settings
    from demandly.kit.context import Scope
    from demandly.knowledge import index, service

    settings = get_settings()
    configure_runtime(settings)

    async def _run() -> list[service.Passage]:
        db = create_database(settings)
        try:
            async with db.session(Scope.for_system()) as session:
                return await service.retrieve(session, [kb], query, k)
        finally:
            await db.dispose()

    table = Table(title=f"{query!r} (answers from {index.NOT_KNOWN_BELOW:.2f})")
    for column in ("score", "title / heading", "text", "source"):
        table.add_column(column)
    for passage in asyncio.run(_run()):
        heading = f"{passage.title}\n{passage.heading or ''}".strip()
        text = passage.text if len(passage.text) <= 300 else passage.text[:297] + "..."
        table.add_row(f"{passage.score:.2f}", heading, text, passage.url or passage.source_id)
    console.print(table)
