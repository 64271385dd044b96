"""Auth endpoints: login/logout, sessions, password, TOTP, ``/me`` and API keys."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from demandly.auth import keys as keys_service
from demandly.auth import service
from demandly.auth import totp as totp_service
from demandly.auth.dependencies import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    CurrentAuth,
    DbSession,
    OptionalAuth,
    get_database,
    request_actor,
)
from demandly.auth.models import ApiKey, LoginSession
from demandly.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    LoginRequest,
    LoginResponse,
    MeResponse,
    PasswordChange,
    PasswordResetConfirm,
    PasswordResetRequest,
    ProfileUpdate,
    RecoveryCodes,
    RevokedCount,
    SessionOut,
    TotpConfirm,
    TotpDisable,
    TotpEnrollment,
    UserOut,
)
from demandly.config import Settings
from demandly.kit.pagination import Page, PageParams, page_params, paginate
from demandly.tenancy import service as tenancy_service

router = APIRouter(tags=["auth"])
KEY_TAGS: list[str | Enum] = ["api keys"]

Id = Annotated[str, Path(max_length=64)]
OptionalId = Annotated[str | None, Query(max_length=64)]
Paging = Annotated[PageParams, Depends(page_params)]


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _is_https(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def _set_session_cookies(request: Request, response: Response, token: str, csrf: str) -> None:
    max_age = _settings(request).session_ttl_hours * 3600
    secure = _is_https(request)
    response.set_cookie(
        SESSION_COOKIE, token, max_age=max_age, path="/", secure=secure, httponly=True,
        samesite="lax",
    )  # fmt: skip
    # Readable by the dashboard's script, which echoes it in X-CSRF-Token.
    response.set_cookie(
        CSRF_COOKIE, csrf, max_age=max_age, path="/", secure=secure, httponly=False,
        samesite="lax",
    )  # fmt: skip


def _clear_session_cookies(request: Request, response: Response) -> None:
    secure = _is_https(request)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=secure, httponly=True, samesite="lax")
    response.delete_cookie(CSRF_COOKIE, path="/", secure=secure, samesite="lax")


# --- login and sessions -------------------------------------------------------------------


@router.post(
    "/auth/login",
    response_model=LoginResponse,
    responses={401: {"description": "Wrong credentials, or `totp_required` / `totp_invalid`"}},
)
async def login(
    body: LoginRequest, request: Request, response: Response, session: DbSession
) -> LoginResponse:
    """Sign in; sets the `dmd_session` cookie (HttpOnly) and the `dmd_csrf` cookie. With 2FA
    on, send the authenticator code (or a recovery code) as `totp`."""
    issued = await service.login(
        session,
        get_database(request),
        _settings(request),
        email=body.email,
        password=body.password,
        code=body.totp,
        actor=request_actor(request),
    )
    _set_session_cookies(request, response, issued.token, issued.csrf_token)
    return LoginResponse(user=service.user_out(issued.user), csrf_token=issued.csrf_token)


@router.post("/auth/logout", status_code=204)
async def logout(
    auth: OptionalAuth, request: Request, response: Response, session: DbSession
) -> None:
    """End this session (harmless without one); clears the cookies."""
    await service.logout(session, auth)
    _clear_session_cookies(request, response)


@router.post("/auth/logout-all", response_model=RevokedCount)
async def logout_all(
    auth: CurrentAuth, request: Request, response: Response, session: DbSession
) -> RevokedCount:
    """End every session of the signed-in user, this one included."""
    revoked = await service.logout_everywhere(session, auth)
    _clear_session_cookies(request, response)
    return RevokedCount(revoked=revoked)


@router.get("/auth/sessions", response_model=Page[SessionOut])
async def list_sessions(auth: CurrentAuth, session: DbSession, page: Paging) -> Page[SessionOut]:
    """The signed-in user's live sessions, newest first; `current` marks this one."""
    rows, next_cursor = await paginate(
        session, service.sessions_statement(auth), LoginSession.id, page
    )
    return Page[SessionOut](
        items=[
            SessionOut(
                id=row.id,
                created_at=row.created_at,
                last_seen_at=row.last_seen_at,
                expires_at=row.expires_at,
                ip=row.ip,
                user_agent=row.user_agent,
                current=row.id == auth.session_id,
            )
            for row in rows
        ],
        next_cursor=next_cursor,
    )


@router.delete("/auth/sessions/{session_id}", status_code=204)
async def revoke_session(
    session_id: Id, auth: CurrentAuth, request: Request, response: Response, session: DbSession
) -> None:
    if await service.revoke_session(session, auth, session_id):
        _clear_session_cookies(request, response)


@router.post("/auth/password", status_code=204)
async def change_password(
    body: PasswordChange, auth: CurrentAuth, request: Request, session: DbSession
) -> None:
    """Change the password (policy-checked); every other session is signed out."""
    await service.change_password(
        session, _settings(request), auth, body.current_password, body.new_password
    )


@router.get("/me", response_model=MeResponse)
async def me(auth: CurrentAuth, session: DbSession) -> MeResponse:
    """A signed-in user: `user` and `memberships` (`api_key` null). An API key: `api_key`
    with its role and place, `user` null and no memberships."""
    return await service.whoami(session, auth)


@router.patch("/me", response_model=UserOut)
async def update_me(body: ProfileUpdate, auth: CurrentAuth, session: DbSession) -> UserOut:
    """Change your own `name` and/or `locale` (`de` or `en`)."""
    user = await service.update_profile(session, auth, body.name, body.locale)
    return service.user_out(user)


# --- password reset -----------------------------------------------------------------------


@router.post("/auth/password-reset", status_code=202, responses={429: {"description": "Throttled"}})
async def request_password_reset(
    body: PasswordResetRequest, request: Request, session: DbSession
) -> Response:
    """E-mail a link to choose a new password (valid one hour, once). The answer is 202
    whether or not the address has an account."""
    agency = await tenancy_service.resolve_agency_by_host(session, request.headers.get("host", ""))
    await service.request_password_reset(
        session,
        _settings(request),
        body.email,
        request_actor(request),
        agency,
        base_url=reset_base_url(request) if agency is not None else None,
    )
    return Response(status_code=202)


@router.post(
    "/auth/password-reset/confirm",
    status_code=204,
    responses={
        400: {"description": "`reset_invalid`, `reset_used` or `reset_expired`"},
        422: {"description": "The password breaks the policy"},
    },
)
async def confirm_password_reset(
    body: PasswordResetConfirm, request: Request, session: DbSession
) -> None:
    """Set the new password with the link's token; every session of the user ends."""
    await service.reset_password(session, body.token, body.password, _settings(request))


def reset_base_url(request: Request) -> str:
    """The scheme and host the request came to (the caller checked that the host is one of
    ours: an agency's verified domain), so the link opens in the same brand."""
    scheme = "https" if _is_https(request) else request.url.scheme
    return f"{scheme}://{request.headers.get('host', '')}"


# --- two-factor ---------------------------------------------------------------------------


@router.post("/auth/totp/enroll", response_model=TotpEnrollment)
async def totp_enroll(auth: CurrentAuth, session: DbSession) -> TotpEnrollment:
    """A new TOTP secret to scan (not in force until confirmed)."""
    secret, uri, svg = await totp_service.enroll(session, auth)
    return TotpEnrollment(secret=secret, otpauth_uri=uri, qr_svg=svg)


@router.post("/auth/totp/confirm", response_model=RecoveryCodes)
async def totp_confirm(body: TotpConfirm, auth: CurrentAuth, session: DbSession) -> RecoveryCodes:
    """Turn 2FA on with a code from the app; answers 10 recovery codes, shown only now."""
    return RecoveryCodes(recovery_codes=await totp_service.confirm(session, auth, body.code))


@router.post("/auth/totp/disable", status_code=204)
async def totp_disable(
    body: TotpDisable, auth: CurrentAuth, request: Request, session: DbSession
) -> None:
    await totp_service.disable(session, _settings(request), auth, body.password, body.code)


# --- API keys -----------------------------------------------------------------------------


@router.post("/api-keys", response_model=ApiKeyCreated, status_code=201, tags=KEY_TAGS)
async def create_api_key(
    body: ApiKeyCreate, auth: CurrentAuth, session: DbSession
) -> ApiKeyCreated:
    """A key for an agency (agency role) or a client (client role). `key` is shown only in
    this answer; use it as `Authorization: Bearer <key>`."""
    key, secret = await keys_service.create_api_key(
        session,
        auth,
        name=body.name,
        role=body.role,
        agency_id=body.agency_id,
        client_id=body.client_id,
    )
    return ApiKeyCreated(
        id=key.id,
        key=secret,
        name=key.name,
        role=body.role,
        agency_id=key.agency_id,
        client_id=key.client_id,
        display_prefix=key.display_prefix,
        created_at=key.created_at,
    )


@router.get("/api-keys", response_model=Page[ApiKeyOut], tags=KEY_TAGS)
async def list_api_keys(
    auth: CurrentAuth,
    session: DbSession,
    page: Paging,
    agency_id: OptionalId = None,
    client_id: OptionalId = None,
) -> Page[ApiKeyOut]:
    """Keys the caller manages (never the secret), newest first."""
    statement = await keys_service.list_statement(
        session, auth, agency_id=agency_id, client_id=client_id
    )
    rows, next_cursor = await paginate(session, statement, ApiKey.id, page)
    return Page[ApiKeyOut](
        items=[ApiKeyOut.model_validate(row) for row in rows], next_cursor=next_cursor
    )


@router.delete("/api-keys/{key_id}", status_code=204, tags=KEY_TAGS)
async def revoke_api_key(key_id: Id, auth: CurrentAuth, session: DbSession) -> None:
    """Revoke a key; it stops working at once."""
    await keys_service.revoke_api_key(session, auth, key_id)
