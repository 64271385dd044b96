"""Knowledge bases, their sources and search under /api/v1."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from demandly.auth.dependencies import CurrentAuth, DbSession
from demandly.auth.permissions import Permission
from demandly.kit.errors import BadRequest, PayloadTooLarge
from demandly.kit.pagination import Page, PageParams, page_params, paginate
from demandly.knowledge import schemas as s
from demandly.knowledge import service
from demandly.knowledge.models import KnowledgeBase, KnowledgeSource
from demandly.knowledge.repository import KnowledgeRepository
from demandly.tenancy import service as tenancy
from demandly.tenancy.schemas import ID_PATTERN

router = APIRouter(tags=["knowledge"])
Pages = Annotated[PageParams, Depends(page_params)]
IdPath = Annotated[str, Path(max_length=40, pattern=ID_PATTERN)]
IdQuery = Annotated[str | None, Query(max_length=40, pattern=ID_PATTERN)]

_SOURCE = TypeAdapter(s.SourceCreate)
MAX_FILE_NAME = 300


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """A JSON schema with its local ``$ref``s replaced by their definitions (the request body
    below is documented by hand, outside FastAPI's components)."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inline(copy.deepcopy(defs[schema["$ref"].rsplit("/", 1)[1]]), defs)
        return {k: _inline(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline(item, defs) for item in schema]
    return schema


def _source_body_schema() -> dict[str, Any]:
    schema = _SOURCE.json_schema()
    return _inline(schema, schema.get("$defs", {}))


_SOURCE_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _source_body_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "title": {"type": "string", "maxLength": 300},
                    },
                    "required": ["file"],
                }
            },
        },
    }
}


async def _base(session: DbSession, ctx: CurrentAuth, kb_id: str, write: bool) -> KnowledgeBase:
    """The base if the caller can see it (404 otherwise), and may read or write it (403)."""
    base = await service.get_base(session, kb_id)
    permission = Permission.CONTENT_WRITE if write else Permission.CONTENT_READ
    ctx.require(permission, base.agency_id, base.client_id)
    return base


# --- bases ---------------------------------------------------------------------------------


@router.post("/knowledge-bases", status_code=201, response_model=s.KnowledgeBase)
async def create_base(
    data: s.KnowledgeBaseCreate, ctx: CurrentAuth, session: DbSession
) -> s.KnowledgeBase:
    """A new, empty knowledge base of a client (content:write). Agents answer from it once
    their definition lists it in ``knowledge_base_ids``."""
    client = await tenancy.get_client(session, data.client_id)
    ctx.require(Permission.CONTENT_WRITE, client.agency_id, client.id)
    return s.KnowledgeBase.model_validate(await service.create_base(session, client, data))


@router.get("/knowledge-bases", response_model=Page[s.KnowledgeBase])
async def list_bases(
    ctx: CurrentAuth, session: DbSession, page: Pages, client_id: IdQuery = None
) -> Page[s.KnowledgeBase]:
    """The knowledge bases the caller can see, newest first."""
    if client_id is not None:
        client = await tenancy.get_client(session, client_id)
        ctx.require(Permission.CONTENT_READ, client.agency_id, client.id)
    statement = KnowledgeRepository(session).bases(client_id)
    rows, cursor = await paginate(session, statement, KnowledgeBase.id, page)
    return Page(items=[s.KnowledgeBase.model_validate(r) for r in rows], next_cursor=cursor)


@router.get("/knowledge-bases/{kb_id}", response_model=s.KnowledgeBase)
async def get_base(kb_id: IdPath, ctx: CurrentAuth, session: DbSession) -> s.KnowledgeBase:
    return s.KnowledgeBase.model_validate(await _base(session, ctx, kb_id, write=False))


@router.patch("/knowledge-bases/{kb_id}", response_model=s.KnowledgeBase)
async def update_base(
    kb_id: IdPath, data: s.KnowledgeBaseUpdate, ctx: CurrentAuth, session: DbSession
) -> s.KnowledgeBase:
    base = await _base(session, ctx, kb_id, write=True)
    return s.KnowledgeBase.model_validate(await service.update_base(session, base, data))


@router.delete("/knowledge-bases/{kb_id}", status_code=204)
async def delete_base(kb_id: IdPath, ctx: CurrentAuth, session: DbSession) -> Response:
    """The base with all its sources and passages; agents that list it find nothing in it."""
    await service.delete_base(session, await _base(session, ctx, kb_id, write=True))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- sources -------------------------------------------------------------------------------


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (declared or streamed)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The upload is larger than {limit} bytes.")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise PayloadTooLarge(f"The upload is larger than {limit} bytes.")
    return bytes(body)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _upload(request: Request, body: bytes) -> tuple[str, str | None, bytes, str | None]:
    """(file name, content type, bytes, title) of a multipart upload with one ``file``."""
    try:
        form = await MultiPartParser(
            request.headers, _once(body), max_files=1, max_fields=5
        ).parse()
    except MultiPartException as exc:
        raise BadRequest(f"Unreadable upload: {exc.message}") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise BadRequest("Send the document as the form field 'file'.")
    data = await upload.read()
    if not data:
        raise BadRequest("The uploaded file is empty.")
    name = (upload.filename or "upload").strip()[:MAX_FILE_NAME] or "upload"
    title = form.get("title")
    clean_title = title.strip()[:MAX_FILE_NAME] if isinstance(title, str) else None
    return name, upload.content_type, data, clean_title or None


@router.post(
    "/knowledge-bases/{kb_id}/sources",
    status_code=201,
    response_model=s.Source,
    openapi_extra=_SOURCE_BODY_DOC,
)
async def add_source(
    kb_id: IdPath, request: Request, ctx: CurrentAuth, session: DbSession
) -> s.Source:
    """Add a source, read in the background (``status`` goes queued → running → ready or
    failed). JSON for text, Markdown, Q&A pairs, a page (``url``) or a website crawl; or a
    multipart upload of a PDF, DOCX, HTML, TXT or Markdown file (413 past the upload limit)."""
    base = await _base(session, ctx, kb_id, write=True)
    limit = request.app.state.settings.upload_max_bytes
    body = await _body(request, limit)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        name, content_type, data, title = await _upload(request, body)
        source = await service.add_file(session, base, name, content_type, data, title)
    else:
        try:
            parsed = _SOURCE.validate_json(body)
        except ValidationError as exc:
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            raise RequestValidationError(errors) from None
        source = await service.add_source(session, base, parsed)
    return service.source_view(source)


@router.get("/knowledge-bases/{kb_id}/sources", response_model=Page[s.Source])
async def list_sources(
    kb_id: IdPath, ctx: CurrentAuth, session: DbSession, page: Pages
) -> Page[s.Source]:
    """The base's sources with their progress, newest first."""
    base = await _base(session, ctx, kb_id, write=False)
    statement = KnowledgeRepository(session).sources(base.id)
    rows, cursor = await paginate(session, statement, KnowledgeSource.id, page)
    return Page(items=[service.source_view(r) for r in rows], next_cursor=cursor)


@router.delete("/knowledge-bases/{kb_id}/sources/{source_id}", status_code=204)
async def delete_source(
    kb_id: IdPath, source_id: IdPath, ctx: CurrentAuth, session: DbSession
) -> Response:
    """The source and its passages leave the index at once."""
    base = await _base(session, ctx, kb_id, write=True)
    await service.delete_source(session, await service.get_source(session, base, source_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/knowledge-bases/{kb_id}/sources/{source_id}/refresh", status_code=202, response_model=s.Source
)
async def refresh_source(
    kb_id: IdPath, source_id: IdPath, ctx: CurrentAuth, session: DbSession
) -> s.Source:
    """Read the source again (a website is crawled again). The old passages stay searchable
    until the new ones replace them in one step; 409 while it is being read."""
    base = await _base(session, ctx, kb_id, write=True)
    source = await service.get_source(session, base, source_id)
    return service.source_view(await service.refresh_source(session, source))


# --- search --------------------------------------------------------------------------------


@router.post("/knowledge-bases/{kb_id}/search", response_model=s.SearchResult)
async def search(
    kb_id: IdPath, data: s.SearchRequest, ctx: CurrentAuth, session: DbSession
) -> s.SearchResult:
    """The passages that best answer ``query``, best first, with their sources."""
    base = await _base(session, ctx, kb_id, write=False)
    return service.search_view(await service.retrieve(session, [base.id], data.query, data.k))
