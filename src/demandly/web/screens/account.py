"""Dashboard screen: the user's own account (name, language, password, two-factor, sessions)
and the signed-out password reset by e-mail. Every change goes through the same services as
``auth/api.py``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Response

from demandly.auth import service as auth_service
from demandly.auth import totp as totp_service
from demandly.auth.dependencies import CSRF_COOKIE, SESSION_COOKIE, request_actor
from demandly.auth.errors import FailAfterCommit
from demandly.auth.models import LoginSession
from demandly.auth.permissions import Permission
from demandly.auth.schemas import PasswordChange, PasswordResetRequest, ProfileUpdate
from demandly.kit.errors import BadRequest, Conflict, DemandlyError, TooManyRequests
from demandly.kit.pagination import PageParams, paginate
from demandly.web.deps import LANG_COOKIE, Page, PageDep, PageRoute, View, ViewDep
from demandly.web.forms import FormInvalid, fields, parse, service_errors

router = APIRouter(route_class=PageRoute, include_in_schema=False)

ACCOUNT = "/app/account"
Token = Annotated[str, Path(max_length=200, pattern=r"^[A-Za-z0-9_-]+$")]
Cursor = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
SESSIONS_PER_PAGE = 50


def _retry_message(view: View, error: TooManyRequests) -> str:
    seconds = error.details["retry_after"] if isinstance(error.details, dict) else 60
    return view.t("Too many attempts. Try again in {seconds} s.", seconds=seconds)


def _signed_out(response: Response) -> Response:
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


# --- forgot password ----------------------------------------------------------------------


@router.get("/password/forgot")
async def forgot_page(view: ViewDep) -> Response:
    return _forgot_form(view)


def _forgot_form(
    view: View, email: str = "", errors: dict[str, str] | None = None, status_code: int = 200
) -> Response:
    return view.render(
        "account/forgot.html",
        status_code=status_code,
        title=view.t("Forgot your password?"),
        email=email,
        errors=errors or {},
    )


@router.post("/password/forgot")
async def forgot_submit(
    view: ViewDep, email: Annotated[str, Form(max_length=320)] = ""
) -> Response:
    try:
        data = parse(PasswordResetRequest, fields(await view.request.form(), "email"))
        await auth_service.request_password_reset(
            view.session,
            view.settings,
            data.email,
            request_actor(view.request),
            view.host_agency,
            # Only an agency's verified domain is trusted as the link's host.
            base_url=view.public_url,
        )
    except FormInvalid:
        errors = {"email": view.t("Enter your e-mail address.")}
        return _forgot_form(view, email, errors, status_code=422)
    except TooManyRequests as error:
        response = _forgot_form(view, email, {"email": _retry_message(view, error)}, 429)
        response.headers["Retry-After"] = str(error.details.get("retry_after", 60))  # type: ignore[union-attr]
        return response
    return view.render("account/forgot_sent.html", title=view.t("Check your e-mail"))


# --- reset with the link --------------------------------------------------------------------


@router.get("/password/reset/{token}")
async def reset_page(view: ViewDep, token: Token) -> Response:
    try:
        await auth_service.check_password_reset(view.session, token)
    except BadRequest as error:
        return _reset_refused(view, error)
    return _reset_form(view, token)


def _reset_form(
    view: View, token: str, errors: dict[str, str] | None = None, status_code: int = 200
) -> Response:
    return view.render(
        "account/reset.html",
        status_code=status_code,
        title=view.t("Choose a new password"),
        token=token,
        errors=errors or {},
    )


def _reset_refused(view: View, error: DemandlyError) -> Response:
    return view.render(
        "account/reset_refused.html",
        status_code=400,
        title=view.t("This link cannot be used"),
        message=view.t(error.message),
    )


@router.post("/password/reset/{token}")
async def reset_submit(
    view: ViewDep,
    token: Token,
    password: Annotated[str, Form(max_length=1024)] = "",
    password_confirm: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    if not password:
        return _reset_form(view, token, {"password": view.t("Choose a password.")}, 422)
    if password != password_confirm:
        errors = {"password_confirm": view.t("The passwords do not match.")}
        return _reset_form(view, token, errors, 422)
    try:
        await auth_service.reset_password(view.session, token, password, view.settings)
    except BadRequest as error:
        return _reset_refused(view, error)
    except DemandlyError as error:
        return _reset_form(view, token, service_errors(error), 422)
    response = view.redirect("/login", notice="Your password was changed. Sign in with it now.")
    return _signed_out(response)


# --- the account page -----------------------------------------------------------------------


async def _render_account(
    page: Page,
    *,
    cursor: str | None = None,
    errors: dict[str, str] | None = None,
    form: str | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    user = page.auth.user
    assert user is not None
    rows, next_cursor = await paginate(
        page.session,
        auth_service.sessions_statement(page.auth),
        LoginSession.id,
        PageParams(limit=SESSIONS_PER_PAGE, cursor=cursor),
    )
    return page.render(
        "account/account.html",
        status_code=status_code,
        title=page.t("Your account"),
        section="account",
        user=user,
        sessions=rows,
        next_url=f"{ACCOUNT}?cursor={next_cursor}#sessions" if next_cursor else None,
        totp_enabled=user.totp_enabled_at is not None,
        can_see_team=page.can_any(Permission.MEMBERS_READ),
        errors=errors or {},
        form=form,
        values=values or {},
    )


@router.get(ACCOUNT)
async def account_page(page: PageDep, cursor: Cursor = None) -> Response:
    return await _render_account(page, cursor=cursor)


@router.post(f"{ACCOUNT}/profile")
async def update_profile(page: PageDep) -> Response:
    raw = fields(await page.request.form(), "name", "locale")
    try:
        if not raw.get("name"):
            raise FormInvalid({"name": "Your name is required."})
        data = parse(ProfileUpdate, raw)
        await auth_service.update_profile(page.session, page.auth, data.name, data.locale)
    except FormInvalid as invalid:
        return await _render_account(
            page, errors=invalid.errors, form="profile", values=raw, status_code=422
        )
    except DemandlyError as error:
        return await _render_account(
            page, errors=service_errors(error), form="profile", values=raw, status_code=422
        )
    if data.locale:
        page.set_cookie(LANG_COOKIE, data.locale, max_age=365 * 86400)
    return page.redirect(ACCOUNT, notice="Saved.")


@router.post(f"{ACCOUNT}/password")
async def change_password(
    page: PageDep,
    current_password: Annotated[str, Form(max_length=1024)] = "",
    new_password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    def refused(errors: dict[str, str], status_code: int = 422) -> Any:
        return _render_account(page, errors=errors, form="password", status_code=status_code)

    try:
        data = parse(
            PasswordChange, {"current_password": current_password, "new_password": new_password}
        )
        await auth_service.change_password(
            page.session, page.settings, page.auth, data.current_password, data.new_password
        )
    except FormInvalid as invalid:
        return await refused({name: "This field is required." for name in invalid.errors})
    except FailAfterCommit as failure:  # returning normally keeps the failure's count
        return await refused(service_errors(failure.error))
    except TooManyRequests as error:
        return await refused({"current_password": _retry_message(page, error)}, 429)
    except DemandlyError as error:
        return await refused(service_errors(error))
    return page.redirect(ACCOUNT, notice="Your password was changed. Other sessions were ended.")


# --- sessions -----------------------------------------------------------------------------


@router.post(f"{ACCOUNT}/sessions/{{session_id}}/end")
async def end_session(page: PageDep, session_id: Annotated[str, Path(max_length=64)]) -> Response:
    if await auth_service.revoke_session(page.session, page.auth, session_id):
        return _signed_out(page.redirect("/login", notice="Signed out."))
    return page.redirect(f"{ACCOUNT}#sessions", notice="The session was ended.")


@router.post(f"{ACCOUNT}/sessions/end-all")
async def end_all_sessions(page: PageDep) -> Response:
    await auth_service.logout_everywhere(page.session, page.auth)
    return _signed_out(page.redirect("/login", notice="You were signed out everywhere."))


# --- two-factor ---------------------------------------------------------------------------


async def _render_enrollment(
    page: Page, errors: dict[str, str] | None = None, status_code: int = 200
) -> Response:
    user = page.auth.user
    assert user is not None and user.totp_secret
    issuer = await totp_service.issuer_for(page.session, user.id)
    _, svg = totp_service.provisioning(user.totp_secret, user.email, issuer)
    return page.render(
        "account/totp_enroll.html",
        status_code=status_code,
        title=page.t("Set up two-factor authentication"),
        section="account",
        qr_svg=svg,
        secret=user.totp_secret,
        errors=errors or {},
    )


@router.post(f"{ACCOUNT}/2fa/enroll")
async def totp_enroll(page: PageDep) -> Response:
    try:
        await totp_service.enroll(page.session, page.auth)
    except Conflict as error:
        return page.redirect(ACCOUNT, notice=error.message)
    return await _render_enrollment(page)


@router.post(f"{ACCOUNT}/2fa/confirm")
async def totp_confirm(page: PageDep, code: Annotated[str, Form(max_length=16)] = "") -> Response:
    if not code.strip():
        return await _render_enrollment(page, {"code": "Enter the code from your app."}, 422)
    try:
        codes = await totp_service.confirm(page.session, page.auth, code.strip())
    except Conflict as error:
        return page.redirect(ACCOUNT, notice=error.message)
    except DemandlyError as error:
        return await _render_enrollment(page, service_errors(error), 422)
    return page.render(
        "account/recovery_codes.html",
        title=page.t("Your recovery codes"),
        section="account",
        codes=codes,
    )


@router.post(f"{ACCOUNT}/2fa/disable")
async def totp_disable(
    page: PageDep,
    password: Annotated[str, Form(max_length=1024)] = "",
    code: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    def refused(errors: dict[str, str], status_code: int = 422) -> Any:
        return _render_account(page, errors=errors, form="totp", status_code=status_code)

    missing = {
        name: "This field is required." for name, value in (("password", password), ("code", code))
        if not value.strip()
    }  # fmt: skip
    if missing:
        return await refused(missing)
    try:
        await totp_service.disable(page.session, page.settings, page.auth, password, code.strip())
    except Conflict as error:
        return page.redirect(ACCOUNT, notice=error.message)
    except FailAfterCommit as failure:
        return await refused(service_errors(failure.error))
    except TooManyRequests as error:
        return await refused({"password": _retry_message(page, error)}, 429)
    except DemandlyError as error:
        return await refused(service_errors(error))
    return page.redirect(ACCOUNT, notice="Two-factor authentication is off.")
