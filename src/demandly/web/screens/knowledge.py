"""Dashboard screen: knowledge. A client's knowledge bases; per base its sources with live
progress, the forms that add them (text, Markdown, Q&A, a page, a website crawl, a file) and a
search tester. Same services, schemas and permissions as ``knowledge/api.py``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import FormData, UploadFile

from demandly.auth.permissions import Permission
from demandly.kit.errors import DemandlyError, NotFound
from demandly.kit.pagination import PageParams, paginate
from demandly.knowledge import schemas as s
from demandly.knowledge import service
from demandly.knowledge.models import KnowledgeBase, KnowledgeSource, SourceStatus
from demandly.knowledge.repository import KnowledgeRepository
from demandly.tenancy.models import Client
from demandly.web.deps import Page, PageDep, PageRoute
from demandly.web.forms import (
    FORM_ERROR,
    FormInvalid,
    fields,
    localized,
    message_of,
    parse,
    service_errors,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

BASE = "/app/clients/{client_id}/knowledge"
PAGE_SIZE = 50
SEARCH_RESULTS = 5
MAX_FILE_NAME = 300
QA_ROWS = 3
LANGUAGES = (("de", "Deutsch"), ("en", "English"))  # each in its own language
BUSY = (SourceStatus.QUEUED, SourceStatus.RUNNING)
STATUS = {
    "queued": ("Queued", "warn"),
    "running": ("Reading", "warn"),
    "ready": ("Ready", "ok"),
    "failed": ("Failed", "danger"),
}
KINDS = {
    "text": "Text",
    "markdown": "Markdown",
    "qa": "Q&A",
    "url": "Web page",
    "website": "Website",
    "file": "File",
}
# Which form field a schema error belongs to (the schema's path without the kind).
FIELD_OF = {"limits.max_pages": "max_pages", "limits.max_depth": "max_depth"}

_SOURCE = TypeAdapter(s.SourceCreate)


def _base_url(client_id: str) -> str:
    return BASE.format(client_id=client_id)


async def _base_of(page: Page, client: Client, kb_id: str) -> KnowledgeBase:
    """The client's knowledge base; another client's (or agency's) is not found."""
    base = await service.get_base(page.session, kb_id[:64])
    if base.client_id != client.id:
        raise NotFound()
    return base


# --- knowledge bases -----------------------------------------------------------------------


@router.get("/app/clients/{client_id}/knowledge")
async def bases(page: PageDep, client_id: str, cursor: str = "") -> Response:
    client = await page.client(client_id, Permission.CONTENT_READ)
    return await _render_bases(page, client, cursor)


async def _render_bases(
    page: Page,
    client: Client,
    cursor: str = "",
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    statement = KnowledgeRepository(page.session).bases(client.id)
    params = PageParams(limit=PAGE_SIZE, cursor=cursor[:64] or None)
    rows, next_cursor = await paginate(page.session, statement, KnowledgeBase.id, params)
    base = _base_url(client.id)
    return page.render(
        "knowledge/bases.html",
        status_code=status_code,
        title=page.t("Knowledge"),
        section="knowledge",
        client=client,
        base=base,
        bases=rows,
        next_url=f"{base}?cursor={next_cursor}" if next_cursor else None,
        languages=LANGUAGES,
        can_write=page.can(Permission.CONTENT_WRITE, client.id),
        errors=errors or {},
        values=values or {},
    )


@router.post("/app/clients/{client_id}/knowledge")
async def create_base(page: PageDep, client_id: str) -> Response:
    client = await page.client(client_id, Permission.CONTENT_WRITE)
    values = fields(await page.request.form(), "name", "language")
    try:
        data = parse(s.KnowledgeBaseCreate, {"client_id": client.id, **values})
        created = await service.create_base(page.session, client, data)
    except FormInvalid as invalid:
        errors = invalid.errors
        return await _render_bases(page, client, errors=errors, values=values, status_code=422)
    return page.redirect(f"{_base_url(client.id)}/{created.id}", notice="Knowledge base created.")


@router.post("/app/clients/{client_id}/knowledge/{kb_id}/delete")
async def delete_base(page: PageDep, client_id: str, kb_id: str) -> Response:
    client = await page.client(client_id, Permission.CONTENT_WRITE)
    await service.delete_base(page.session, await _base_of(page, client, kb_id))
    return page.redirect(_base_url(client.id), notice="Knowledge base deleted.")


# --- one base: sources, progress, search ---------------------------------------------------


def _source_row(source: KnowledgeSource) -> dict[str, Any]:
    view = service.source_view(source)
    label, badge = STATUS.get(view.status, (view.status, ""))
    return {
        "id": view.id,
        "kind": KINDS.get(view.kind, view.kind),
        "title": view.title or view.file_name or view.url or view.id,
        "url": view.url,
        "file_name": view.file_name,
        "status": view.status,
        "status_label": label,
        "badge": badge,
        "busy": view.status in BUSY,
        "done": view.documents_done,
        "total": view.documents_total,
        "chunks": view.chunks_indexed,
        "failures": view.failures[:50],
        "failure_count": len(view.failures),
        "error": view.error,
        "finished_at": view.finished_at,
    }


async def _sources_context(
    page: Page, client: Client, base: KnowledgeBase, cursor: str
) -> dict[str, Any]:
    statement = KnowledgeRepository(page.session).sources(base.id)
    params = PageParams(limit=PAGE_SIZE, cursor=cursor[:64] or None)
    rows, next_cursor = await paginate(page.session, statement, KnowledgeSource.id, params)
    sources = [_source_row(row) for row in rows]
    kb_url = f"{_base_url(client.id)}/{base.id}"
    suffix = f"?cursor={cursor[:64]}" if cursor else ""
    return {
        "kb": base,
        "kb_url": kb_url,
        "sources": sources,
        "busy": any(row["busy"] for row in sources),
        "fragment_url": f"{kb_url}/sources{suffix}",
        "page_url": f"{kb_url}{suffix}",
        "next_url": f"{kb_url}?cursor={next_cursor}" if next_cursor else None,
        "can_write": page.can(Permission.CONTENT_WRITE, client.id),
    }


async def _search(page: Page, base: KnowledgeBase, query: str) -> tuple[Any, dict[str, str]]:
    if not query.strip():
        return None, {}
    try:
        request = parse(s.SearchRequest, {"query": query, "k": SEARCH_RESULTS})
    except FormInvalid as invalid:
        return None, localized(invalid.errors, page.t)
    passages = await service.retrieve(page.session, [base.id], request.query, request.k)
    return service.search_view(passages), {}


async def _render_base(
    page: Page,
    client: Client,
    base: KnowledgeBase,
    *,
    cursor: str = "",
    query: str = "",
    form: str = "",
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    result, search_errors = await _search(page, base, query)
    limit = page.settings.upload_max_bytes
    return page.render(
        "knowledge/base.html",
        status_code=status_code,
        title=base.name,
        section="knowledge",
        client=client,
        base=_base_url(client.id),
        query=query,
        result=result,
        search_errors=search_errors,
        form=form,
        values=values or {},
        errors=errors or {},
        qa_rows=QA_ROWS,
        upload_limit=limit,
        upload_limit_mb=f"{limit / 1_000_000:g}",
        **await _sources_context(page, client, base, cursor),
    )


@router.get("/app/clients/{client_id}/knowledge/{kb_id}")
async def base_page(
    page: PageDep, client_id: str, kb_id: str, cursor: str = "", q: str = ""
) -> Response:
    client = await page.client(client_id, Permission.CONTENT_READ)
    base = await _base_of(page, client, kb_id)
    return await _render_base(page, client, base, cursor=cursor, query=q[:1000])


@router.get("/app/clients/{client_id}/knowledge/{kb_id}/sources")
async def sources_fragment(page: PageDep, client_id: str, kb_id: str, cursor: str = "") -> Response:
    """The sources table alone: htmx polls it while something is being read."""
    client = await page.client(client_id, Permission.CONTENT_READ)
    base = await _base_of(page, client, kb_id)
    context = await _sources_context(page, client, base, cursor)
    return page.render("knowledge/_sources.html", **context)


def _posted_source(form: FormData) -> dict[str, Any]:
    """The source the form describes, shaped as the API's JSON body."""
    kind = str(form.get("kind") or "")
    data: dict[str, Any] = {"kind": kind, **fields(form, "title")}
    if kind in ("text", "markdown"):
        data["text"] = str(form.get("text") or "")
    elif kind == "qa":
        pairs = zip(form.getlist("question"), form.getlist("answer"), strict=False)
        data["pairs"] = [
            {"question": str(q).strip(), "answer": str(a).strip()}
            for q, a in pairs
            if str(q).strip() or str(a).strip()
        ]
    elif kind in ("url", "website"):
        data.update(fields(form, "url"))
        data.setdefault("url", "")
    if kind == "website":
        data["limits"] = fields(form, "max_pages", "max_depth")
        data.update(fields(form, "recrawl_every_days"))
    return data


def _source_errors(error: ValidationError, kind: str) -> dict[str, str]:
    errors: dict[str, str] = {}
    for item in error.errors():
        parts = [str(p) for p in item["loc"] if not isinstance(p, int)]
        if parts and parts[0] == kind:
            parts = parts[1:]  # the discriminated union names the kind first
        name = ".".join(parts) or FORM_ERROR
        name = FIELD_OF.get(name, name.split(".")[0])
        errors.setdefault(name, message_of(item))
    return errors


def _form_values(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {
        key: str(form.get(key) or "")
        for key in ("kind", "title", "text", "url", "max_pages", "max_depth", "recrawl_every_days")
    }
    values["pairs"] = list(
        zip(
            [str(q) for q in form.getlist("question")],
            [str(a) for a in form.getlist("answer")],
            strict=False,
        )
    )
    return values


@router.post("/app/clients/{client_id}/knowledge/{kb_id}/sources")
async def add_source(page: PageDep, client_id: str, kb_id: str) -> Response:
    client = await page.client(client_id, Permission.CONTENT_WRITE)
    base = await _base_of(page, client, kb_id)
    form = await page.request.form()
    data = _posted_source(form)
    kind = data["kind"]
    form_name = "text" if kind in ("text", "markdown") else kind
    try:
        parsed = _SOURCE.validate_python(data)
    except ValidationError as error:
        errors = _source_errors(error, kind)
        return await _render_base(
            page, client, base, form=form_name, values=_form_values(form), errors=errors,
            status_code=422,
        )  # fmt: skip
    await service.add_source(page.session, base, parsed)
    return page.redirect(f"{_base_url(client.id)}/{base.id}", notice="Source added.")


def _upload_error(page: Page, form: FormData) -> str | None:
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return page.t("Choose a file.")
    limit = page.settings.upload_max_bytes
    if upload.size is not None and upload.size > limit:
        return page.t("The file is larger than {mb} MB.", mb=f"{limit / 1_000_000:g}")
    if upload.size == 0:
        return page.t("The file is empty.")
    return None


@router.post("/app/clients/{client_id}/knowledge/{kb_id}/upload")
async def upload_file(page: PageDep, client_id: str, kb_id: str) -> Response:
    """A file as the API takes it (multipart ``file`` and ``title``); too large or empty
    files come back as a message on the form, not as an error page."""
    client = await page.client(client_id, Permission.CONTENT_WRITE)
    base = await _base_of(page, client, kb_id)
    form = await page.request.form()
    problem = _upload_error(page, form)
    title = str(form.get("title") or "").strip()[:MAX_FILE_NAME]
    if problem is not None:
        return await _render_base(
            page, client, base, form="file", values={"title": title}, errors={"file": problem},
            status_code=422,
        )  # fmt: skip
    upload = form["file"]
    assert isinstance(upload, UploadFile)
    data = await upload.read()
    name = (upload.filename or "upload").strip()[:MAX_FILE_NAME] or "upload"
    await service.add_file(page.session, base, name, upload.content_type, data, title or None)
    return page.redirect(f"{_base_url(client.id)}/{base.id}", notice="Source added.")


async def _source_of(
    page: Page, client_id: str, kb_id: str, source_id: str
) -> tuple[Client, KnowledgeBase, KnowledgeSource]:
    client = await page.client(client_id, Permission.CONTENT_WRITE)
    base = await _base_of(page, client, kb_id)
    return client, base, await service.get_source(page.session, base, source_id[:64])


@router.post("/app/clients/{client_id}/knowledge/{kb_id}/sources/{source_id}/refresh")
async def refresh_source(page: PageDep, client_id: str, kb_id: str, source_id: str) -> Response:
    client, base, source = await _source_of(page, client_id, kb_id, source_id)
    try:
        await service.refresh_source(page.session, source)
    except DemandlyError as error:
        if error.status_code != 409:
            raise
        errors = service_errors(error)
        return await _render_base(page, client, base, errors=errors, status_code=409)
    return page.redirect(f"{_base_url(client.id)}/{base.id}", notice="The source is read again.")


@router.post("/app/clients/{client_id}/knowledge/{kb_id}/sources/{source_id}/delete")
async def delete_source(page: PageDep, client_id: str, kb_id: str, source_id: str) -> Response:
    client, base, source = await _source_of(page, client_id, kb_id, source_id)
    await service.delete_source(page.session, source)
    return page.redirect(f"{_base_url(client.id)}/{base.id}", notice="Source deleted.")
