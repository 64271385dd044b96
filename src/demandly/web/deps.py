"""What every dashboard page starts from: the brand (from the Host header), the language, the
signed-in user and the CSRF check. Screens take ``ViewDep`` (anyone) or ``PageDep`` (signed in).

Pages call the same services and the same ``AuthContext.require`` as the API; this module
only turns the session cookie into that context and errors into pages (see ``PageRoute``)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote, unquote

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.auth import service as auth_service
from demandly.auth.context import AuthContext
from demandly.auth.dependencies import (
    CSRF_HEADER,
    SAFE_METHODS,
    SESSION_COOKIE,
    DbSession,
    request_actor,
)
from demandly.auth.permissions import Permission, allows
from demandly.config import Settings
from demandly.kit.context import Scope
from demandly.kit.db import set_scope
from demandly.kit.errors import DemandlyError, Forbidden, NotFound
from demandly.tenancy import service as tenancy_service
from demandly.tenancy.branding import Brand, brand_of, platform_brand
from demandly.tenancy.models import Agency, Client
from demandly.tenancy.repository import TenancyRepository
from demandly.web.forms import localized
from demandly.web.i18n import pick_language, translate
from demandly.web.templating import render_template

LANG_COOKIE = "dmd_lang"
AGENCY_COOKIE = "dmd_agency"
FLASH_COOKIE = "dmd_flash"
CSRF_FIELD = "csrf_token"


class LoginRequired(Exception):
    """Raised by ``PageDep`` without a usable session: the route answers with a redirect."""


@dataclass
class View:
    """A dashboard request: brand, language and (when signed in) who is asking."""

    request: Request
    session: AsyncSession
    settings: Settings
    brand: Brand
    lang: str
    host_agency: Agency | None
    ctx: AuthContext | None
    csrf_token: str | None
    flash: str | None = None
    cookies: list[tuple[str, str, int | None]] = field(default_factory=list)

    def t(self, text: str, **values: object) -> str:
        return translate(self.lang, text, **values)

    def can(self, permission: Permission, client_id: str | None = None) -> bool:
        return False  # only a signed-in Page knows the agency a permission would apply to

    def can_any(self, permission: Permission) -> bool:
        return False

    @property
    def public_url(self) -> str:
        """Where links this page hands out point (embed snippet, booking page, invitations):
        the agency's own domain when the page is on it, so the brand stays; else the
        platform's public URL."""
        if self.host_agency is not None:
            scheme = "https" if _is_https(self.request) else self.request.url.scheme
            return f"{scheme}://{self.request.headers.get('host', '')}"
        return self.settings.base_url.rstrip("/")

    @property
    def is_htmx(self) -> bool:
        return self.request.headers.get("hx-request") == "true"

    def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        if "errors" in context:
            context["errors"] = localized(context["errors"], self.t)
        response = HTMLResponse(
            render_template(template, view=self, t=self.t, brand=self.brand, **context),
            status_code=status_code,
            headers={"Cache-Control": "no-store"},
        )
        self._apply_cookies(response)
        return response

    def redirect(self, url: str, notice: str | None = None) -> RedirectResponse:
        """303 to ``url`` (a local path); ``notice`` (English source text) shows there once."""
        response = RedirectResponse(safe_next(url), status_code=303)
        if notice:
            self.set_cookie(FLASH_COOKIE, quote(notice), max_age=60)
        self._apply_cookies(response)
        return response

    def set_cookie(self, name: str, value: str, max_age: int | None = None) -> None:
        self.cookies.append((name, value, max_age))

    def _apply_cookies(self, response: Response) -> None:
        secure = _is_https(self.request)
        if self.flash is not None:
            response.delete_cookie(FLASH_COOKIE, path="/")
        for name, value, max_age in self.cookies:
            response.set_cookie(
                name, value, max_age=max_age, path="/", secure=secure, httponly=True,
                samesite="lax",
            )  # fmt: skip


@dataclass
class Page(View):
    """A signed-in dashboard request, with the agency it is about and the clients the user
    may see there."""

    agency: Agency | None = None
    clients: list[Client] = field(default_factory=list)

    @property
    def auth(self) -> AuthContext:
        assert self.ctx is not None
        return self.ctx

    def can(self, permission: Permission, client_id: str | None = None) -> bool:
        if self.agency is None:
            return False
        role = self.auth.role_at(self.agency.id, client_id)
        return role is not None and allows(role, permission)

    def require(self, permission: Permission, client_id: str | None = None) -> None:
        """The API's rule: 404 when the place is out of reach, 403 when the role is too low."""
        if self.agency is None:
            raise NotFound()
        self.auth.require(permission, self.agency.id, client_id)

    async def client(
        self, client_id: str, permission: Permission = Permission.CONTENT_READ
    ) -> Client:
        """The client of this agency the user may act on with ``permission``; else 404/403."""
        for client in self.clients:
            if client.id == client_id:
                self.require(permission, client.id)
                return client
        raise NotFound()

    def can_any(self, permission: Permission) -> bool:
        return self.can(permission) or any(self.can(permission, c.id) for c in self.clients)


def _is_https(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def safe_next(url: str | None, default: str = "/app") -> str:
    """A local path only (no scheme, no host, no ``//``): nothing can redirect off-site."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return default
    return url


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def _authenticate(request: Request, session: AsyncSession) -> AuthContext | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    return await auth_service.authenticate_session(session, cookie, request_actor(request))


async def _check_csrf(request: Request) -> None:
    """Forms send the token as a field, htmx as a header; both are HMAC-bound to the session."""
    cookie = request.cookies.get(SESSION_COOKIE, "")
    sent = request.headers.get(CSRF_HEADER)
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent or not auth_service.csrf_token_matches(cookie, sent):
        raise Forbidden("The form has expired. Please try again.", code="csrf_failed")


async def _current_agency(
    session: AsyncSession, request: Request, ctx: AuthContext, host_agency: Agency | None
) -> Agency | None:
    if host_agency is not None:
        return host_agency
    agency_ids = sorted({grant.agency_id for grant in ctx.grants})
    chosen = request.cookies.get(AGENCY_COOKIE)
    repo = TenancyRepository(session)
    if chosen and (chosen in agency_ids or ctx.is_platform_admin):
        agency = await repo.agency(chosen)
        if agency is not None:
            return agency
    if agency_ids:
        return await repo.agency(agency_ids[0])
    return None


async def get_view(request: Request, session: DbSession) -> View:
    settings = _settings(request)
    actor = request_actor(request)
    await set_scope(session, Scope.for_system(), actor)
    host_agency = await tenancy_service.resolve_agency_by_host(
        session, request.headers.get("host", "")
    )
    ctx = await _authenticate(request, session)
    if ctx is not None and host_agency is not None and not belongs_to(ctx, host_agency):
        ctx = None  # on an agency's own domain only that agency's people are signed in
    user_locale = ctx.user.locale if ctx is not None and ctx.user is not None else None
    lang = pick_language(
        request.query_params.get("lang"),
        user_locale,
        request.cookies.get(LANG_COOKIE),
        accept_language=request.headers.get("accept-language", ""),
    )
    cookie = request.cookies.get(SESSION_COOKIE)
    flash = request.cookies.get(FLASH_COOKIE)
    view = View(
        request=request,
        session=session,
        settings=settings,
        brand=brand_of(host_agency) if host_agency else platform_brand(settings.platform_name),
        lang=lang,
        host_agency=host_agency,
        ctx=ctx,
        csrf_token=auth_service.csrf_token_for(cookie) if ctx is not None and cookie else None,
        flash=unquote(flash)[:200] if flash else None,
    )
    request.state.view = view
    if ctx is not None and request.method not in SAFE_METHODS:
        await _check_csrf(request)
    await set_scope(session, ctx.scope if ctx else Scope(), ctx.actor if ctx else actor)
    return view


def belongs_to(ctx: AuthContext, agency: Agency) -> bool:
    return ctx.is_platform_admin or any(grant.agency_id == agency.id for grant in ctx.grants)


async def get_page(request: Request, view: Annotated[View, Depends(get_view)]) -> Page:
    if view.ctx is None:
        raise LoginRequired()
    ctx = view.ctx
    session = view.session
    await set_scope(session, Scope.for_system(), ctx.actor)
    agency = await _current_agency(session, request, ctx, view.host_agency)
    clients: list[Client] = []
    if agency is not None:
        clients = await _visible_clients(session, ctx, agency)
    await set_scope(session, ctx.scope, ctx.actor)
    page = Page(
        **{name: getattr(view, name) for name in View.__dataclass_fields__},
        agency=agency,
        clients=clients,
    )
    if agency is not None and view.host_agency is None:
        page.brand = brand_of(agency)
    request.state.view = page
    return page


async def _visible_clients(session: AsyncSession, ctx: AuthContext, agency: Agency) -> list[Client]:
    repo = TenancyRepository(session)
    rows = (await session.execute(repo.clients(agency.id))).scalars().all()
    return [client for client in rows if ctx.role_at(agency.id, client.id) is not None]


ViewDep = Annotated[View, Depends(get_view)]
PageDep = Annotated[Page, Depends(get_page)]


# --- errors as pages -------------------------------------------------------------------------


def _error_page(request: Request, status_code: int, title: str, message: str) -> HTMLResponse:
    view: View | None = getattr(request.state, "view", None)
    settings = _settings(request)
    lang = (
        view.lang
        if view
        else pick_language(
            request.cookies.get(LANG_COOKIE),
            accept_language=request.headers.get("accept-language", ""),
        )
    )
    brand = view.brand if view else platform_brand(settings.platform_name)

    def t(text: str, **values: object) -> str:
        return translate(lang, text, **values)

    html = render_template(
        "error.html", view=view, t=t, brand=brand, lang=lang, title=t(title), message=t(message)
    )
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


def _login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.headers.get("hx-request") == "true":
        # htmx would swap the login page into a fragment: send the whole window there.
        return Response(status_code=204, headers={"HX-Redirect": "/login"})
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _error_response(request: Request, error: Exception) -> Response:
    if isinstance(error, LoginRequired):
        return _login_redirect(request)
    if isinstance(error, NotFound):
        return _error_page(request, 404, "Page not found", "Not found.")
    if isinstance(error, Forbidden):
        message = (
            "The form has expired. Please try again."
            if error.code == "csrf_failed"
            else "Your role does not allow this."
        )
        return _error_page(request, 403, "Not allowed", message)
    if isinstance(error, RequestValidationError):
        return _error_page(request, 422, "Something went wrong", "Please check the form.")
    assert isinstance(error, DemandlyError)
    return _error_page(request, error.status_code, "Something went wrong", error.message)


class PageRoute(APIRoute):
    """Routes of the dashboard: an error becomes a page in the brand (or a login redirect),
    never the API's JSON body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except (LoginRequired, DemandlyError, RequestValidationError) as error:
                return _error_response(request, error)

        return page_handler
