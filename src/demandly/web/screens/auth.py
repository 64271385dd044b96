"""Sign in (with the second factor when it is on) and sign out, in the brand of the host."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response

from demandly.auth import service as auth_service
from demandly.auth.dependencies import CSRF_COOKIE, SESSION_COOKIE, get_database, request_actor
from demandly.auth.errors import FailAfterCommit
from demandly.kit.errors import DemandlyError, TooManyRequests
from demandly.web.deps import LANG_COOKIE, PageRoute, View, ViewDep, belongs_to, safe_next

router = APIRouter(route_class=PageRoute, include_in_schema=False)

MESSAGES = {
    "invalid_credentials": "The e-mail address or the password is wrong.",
    "totp_invalid": "The code is wrong or was already used.",
    "agency_suspended": (
        "This agency's account is suspended. Please contact the platform's operator."
    ),
}


def _login_form(
    view: View, *, email: str = "", next_url: str = "/app", error: str | None = None,
    password: str = "", needs_code: bool = False, status_code: int = 200,
) -> Response:  # fmt: skip
    return view.render(
        "auth/login.html",
        status_code=status_code,
        title=view.t("Sign in"),
        email=email,
        next_url=safe_next(next_url),
        error=error,
        password=password,
        needs_code=needs_code,
    )


@router.get("/login")
async def login_page(view: ViewDep, next: str = "/app") -> Response:
    if view.ctx is not None:
        return view.redirect(safe_next(next))
    if view.request.query_params.get("lang"):  # the language links keep the choice
        view.set_cookie(LANG_COOKIE, view.lang, max_age=365 * 86400)
    return _login_form(view, next_url=next)


@router.post("/login")
async def login_submit(
    request: Request,
    view: ViewDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    totp: Annotated[str, Form(max_length=64)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/app",
) -> Response:
    try:
        issued = await auth_service.login(
            view.session,
            get_database(request),
            view.settings,
            email=email.strip(),
            password=password,
            code=totp.strip() or None,
            actor=request_actor(request),
        )
    except FailAfterCommit as failure:  # returning normally commits the failure's count
        error = failure.error
        if error.code == "totp_required":
            return _login_form(view, email=email, next_url=next, password=password, needs_code=True)
        message = view.t(MESSAGES.get(error.code or "", MESSAGES["invalid_credentials"]))
        return _login_form(
            view, email=email, next_url=next, error=message, status_code=error.status_code,
            password=password if error.code == "totp_invalid" else "",
            needs_code=error.code == "totp_invalid",
        )  # fmt: skip
    except TooManyRequests as error:
        seconds = error.details["retry_after"] if isinstance(error.details, dict) else 60
        message = view.t("Too many attempts. Try again in {seconds} s.", seconds=seconds)
        response = _login_form(view, email=email, next_url=next, error=message, status_code=429)
        response.headers["Retry-After"] = str(seconds)
        return response
    except DemandlyError:
        message = view.t(MESSAGES["invalid_credentials"])
        return _login_form(view, email=email, next_url=next, error=message, status_code=401)

    if view.host_agency is not None and not belongs_to(issued.ctx, view.host_agency):
        # Someone else's account on this agency's domain: the same answer as a wrong
        # password, and no session is kept.
        await view.session.rollback()
        message = view.t(MESSAGES["invalid_credentials"])
        return _login_form(view, email=email, next_url=next, error=message, status_code=401)

    response = view.redirect(safe_next(next))
    set_session_cookies(view, response, issued.token, issued.csrf_token)
    return response


def set_session_cookies(view: View, response: Response, token: str, csrf: str) -> None:
    max_age = view.settings.session_ttl_hours * 3600
    secure = view.request.url.scheme == "https" or (
        view.request.headers.get("x-forwarded-proto", "").split(",")[0].strip() == "https"
    )
    response.set_cookie(
        SESSION_COOKIE, token, max_age=max_age, path="/", secure=secure, httponly=True,
        samesite="lax",
    )  # fmt: skip
    response.set_cookie(
        CSRF_COOKIE, csrf, max_age=max_age, path="/", secure=secure, httponly=False,
        samesite="lax",
    )  # fmt: skip


@router.post("/logout")
async def logout(view: ViewDep) -> Response:
    await auth_service.logout(view.session, view.ctx)
    response = view.redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response
