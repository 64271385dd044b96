"""The agency home (clients, activity, usage this month), the client switcher, the language
setting, and the small routes every page leans on: brand stylesheet, favicon, deep links."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, Response
from fastapi.responses import RedirectResponse

from demandly.auth.permissions import Permission
from demandly.conversations import service as conversation_service
from demandly.jobs.repository import JobRepository
from demandly.kit.errors import DemandlyError
from demandly.kit.pagination import PageParams
from demandly.kit.time import utcnow
from demandly.tenancy import schemas as tenancy_schemas
from demandly.tenancy import service as tenancy_service
from demandly.tenancy.branding import Brand
from demandly.web.deps import LANG_COOKIE, PageDep, PageRoute, View, ViewDep, get_page, safe_next
from demandly.web.forms import FormInvalid, fields, parse, service_errors
from demandly.web.i18n import LANGUAGES
from demandly.web.repository import DashboardRepository

router = APIRouter(route_class=PageRoute, include_in_schema=False)

# How the activity list reads an event type.
ACTIVITY = {
    "lead.created": "New lead",
    "lead.qualified": "Lead qualified",
    "appointment.booked": "Appointment booked",
    "appointment.rescheduled": "Appointment rescheduled",
    "appointment.cancelled": "Appointment cancelled",
    "handoff.requested": "Handoff requested",
    "conversation.ended": "Conversation ended",
    "call.completed": "Call completed",
    "client.created": "Client created",
    "client.deleted": "Client deleted",
}


def _month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0, tzinfo=UTC)


@router.get("/app")
async def home(page: PageDep) -> Response:
    return await _render_home(page)


async def _render_home(
    page: PageDep, errors: dict[str, str] | None = None, name: str = "", status_code: int = 200
) -> Response:
    if page.agency is None:
        return page.render("home/no_agency.html", title=page.t("Home"), section="home")
    usage = await DashboardRepository(page.session).usage_by_client(
        page.agency.id, _month_start(utcnow())
    )
    within = page.auth.scope_where(Permission.CONTENT_READ)
    events, _ = await JobRepository(page.session).event_page(
        PageParams(limit=15), within=within, agency_id=page.agency.id
    )
    clients = {client.id: client for client in page.clients}
    activity = [
        (event, ACTIVITY.get(event.type, event.type), clients.get(event.client_id or ""))
        for event in events
        if event.type in ACTIVITY
    ]
    totals = {
        key: sum(getattr(u, key) for u in usage.values())
        for key in ("conversations", "messages", "leads", "appointments", "call_minutes")
    }
    return page.render(
        "home/home.html",
        status_code=status_code,
        title=page.t("Home"),
        section="home",
        usage=usage,
        totals=totals,
        activity=activity,
        can_create=page.can(Permission.CLIENTS_CREATE),
        errors=errors or {},
        name=name,
    )


@router.post("/app/clients")
async def create_client(page: PageDep, name: Annotated[str, Form(max_length=300)] = "") -> Response:
    if page.agency is None:
        return page.redirect("/app")
    data = {"agency_id": page.agency.id, **fields(await page.request.form(), "name")}
    try:
        client = await tenancy_service.create_client(
            page.session, parse(tenancy_schemas.ClientCreate, data), actor_ctx=page.auth
        )
    except FormInvalid as invalid:
        return await _render_home(page, invalid.errors, name, status_code=422)
    except DemandlyError as error:
        if error.status_code in (404, 403):
            raise
        return await _render_home(page, service_errors(error), name, status_code=422)
    return page.redirect(f"/app/clients/{client.id}/agents", notice="Saved.")


@router.get("/app/go")
async def go_to_client(page: PageDep, client_id: str = "") -> Response:
    client = await page.client(client_id) if client_id else None
    return page.redirect(f"/app/clients/{client.id}/agents" if client else "/app")


@router.get("/app/clients/{client_id}")
async def client_home(page: PageDep, client_id: str) -> Response:
    client = await page.client(client_id)
    return page.redirect(f"/app/clients/{client.id}/inbox")


@router.get("/app/conversations/{conversation_id}")
async def conversation_link(page: PageDep, conversation_id: str) -> Response:
    """The link in lead e-mails: straight to the transcript in the inbox."""
    conversation = await conversation_service.get(page.session, conversation_id[:64])
    client = await page.client(conversation.client_id)
    return page.redirect(f"/app/clients/{client.id}/inbox/{conversation.id}")


@router.post("/app/language")
async def set_language(
    page: PageDep,
    lang: Annotated[str, Form(max_length=5)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/app",
) -> Response:
    if lang in LANGUAGES and page.ctx is not None and page.ctx.user is not None:
        tenancy_service.set_user_locale(page.ctx.user, lang)
        page.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400)
    return page.redirect(safe_next(next))


async def _brand(view: View) -> Brand:
    """The brand of the host's agency, or, signed in on the platform's host, the user's."""
    if view.ctx is not None and view.host_agency is None:
        return (await get_page(view.request, view)).brand
    return view.brand


@router.get("/app/brand.css")
async def brand_css(view: ViewDep) -> Response:
    brand = await _brand(view)
    return Response(
        brand.css_variables(),
        media_type="text/css",
        headers={"Cache-Control": "private, max-age=60"},
    )


@router.get("/app/favicon.ico")
async def favicon(view: ViewDep) -> Response:
    brand = await _brand(view)
    cache = {"Cache-Control": "private, max-age=300"}
    if brand.favicon_url:
        return RedirectResponse(brand.favicon_url, status_code=302, headers=cache)
    # No favicon uploaded: an empty answer, so browsers do not show the platform's.
    return Response(status_code=204, headers=cache)
