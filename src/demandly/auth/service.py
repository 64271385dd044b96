"""Authentication: resolving API keys and session tokens into an AuthContext; logging in and
out, the user's sessions, changing the password, and who the caller is (``/me``)."""

from __future__ import annotations

import hmac
import html
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.auth import throttle, totp
from demandly.auth.context import AuthContext, Grant
from demandly.auth.errors import FailAfterCommit
from demandly.auth.keys import (
    API_KEY_PREFIX,
    ResolvedKey,
    forget_api_key,
    resolve_api_key,
)
from demandly.auth.models import LoginSession, PasswordReset
from demandly.auth.passwords import hash_password_async, validate_password, verify_password_async
from demandly.auth.repository import CredentialRepository
from demandly.auth.schemas import (
    ApiKeyIdentity,
    MembershipOut,
    MeResponse,
    UserOut,
)
from demandly.auth.support import (
    charge_password_check,
    clear_password_checks,
    password_matches,
    record_user_event,
    require_user,
    wrong,
)
from demandly.config import Settings
from demandly.integrations.email import DEFAULT_COLOR as DEFAULT_EMAIL_COLOR
from demandly.integrations.email import Brand as EmailBrand
from demandly.integrations.email import OutgoingEmail, brand_for, branded_html, queue_email
from demandly.kit.context import Actor, Scope
from demandly.kit.crypto import get_keyring, hash_token
from demandly.kit.db import Database, set_scope, system_scope
from demandly.kit.errors import BadRequest, Forbidden, NotFound, Unauthorized, ValidationFailed
from demandly.kit.ids import random_token
from demandly.kit.time import utcnow
from demandly.tenancy.models import Agency, Membership, Role, Status, User

# Write "last used" at most this often: reads must not turn into writes on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# One answer for every wrong e-mail/password combination: no hint which part was wrong.
LOGIN_FAILED = "The e-mail address or the password is wrong."


def agency_suspended() -> Forbidden:
    return Forbidden(
        "This agency's account is suspended. Please contact the platform's operator.",
        code="agency_suspended",
    )


def grants_from_memberships(memberships: list[Membership]) -> tuple[Grant, ...]:
    return tuple(
        Grant(
            role=Role(m.role),
            agency_id=m.agency_id,
            client_id=m.client_id,
            assigned_client_ids=frozenset(m.assigned_client_ids),
            membership_id=m.id,
        )
        for m in memberships
    )


def context_for_user(
    user: User, memberships: list[Membership], actor: Actor, session_id: str | None = None
) -> AuthContext:
    grants = grants_from_memberships(memberships)
    ctx = AuthContext(
        kind="user",
        subject_id=user.id,
        grants=grants,
        is_platform_admin=user.is_platform_admin,
        user_id=user.id,
        session_id=session_id,
        user=user,
    )
    role = ctx.primary_role
    return replace(
        ctx, actor=replace(actor, kind="user", id=user.id, role=role.value if role else None)
    )


def context_for_api_key(key: ResolvedKey, actor: Actor) -> AuthContext:
    grant = Grant(role=Role(key.role), agency_id=key.agency_id, client_id=key.client_id)
    return AuthContext(
        kind="api_key",
        subject_id=key.id,
        grants=(grant,),
        api_key_id=key.id,
        api_key_name=key.name,
        actor=replace(actor, kind="api_key", id=key.id, role=key.role),
    )


async def authenticate_api_key(
    session: AsyncSession, token: str, actor: Actor
) -> AuthContext | None:
    if not token.startswith(API_KEY_PREFIX):
        return None
    digest = hash_token(token)
    now = utcnow()
    repo = CredentialRepository(session)
    resolved = await resolve_api_key(digest, lambda: repo.api_key_by_hash(digest))
    if resolved is None:
        return None
    if resolved.agency_suspended:
        raise agency_suspended()
    if resolved.expires_at and resolved.expires_at <= now:
        forget_api_key(digest)
        return None
    if resolved.last_used_at is None or now - resolved.last_used_at >= LAST_USED_RESOLUTION:
        resolved.last_used_at = now
        await repo.touch_api_key(resolved.id, now)
    return context_for_api_key(resolved, actor)


async def authenticate_session(
    session: AsyncSession, token: str, actor: Actor
) -> AuthContext | None:
    repo = CredentialRepository(session)
    login = await repo.session_by_token_hash(hash_token(token))
    now = utcnow()
    if login is None or not is_session_usable(login, now):
        return None
    user = await repo.user_by_id(login.user_id)
    if user is None or user.status != Status.ACTIVE:
        return None
    if login.last_seen_at is None or now - login.last_seen_at >= LAST_USED_RESOLUTION:
        login.last_seen_at = now
    memberships = await repo.memberships_of(user.id)
    return context_for_user(user, memberships, actor, session_id=login.id)


def is_session_usable(login: LoginSession, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return login.revoked_at is None and not login.pending_totp and login.expires_at > now


def csrf_token_for(session_token: str) -> str:
    """Bound to the session: a page can only send it if it could read our cookie or page."""
    return get_keyring().mac(session_token, "csrf")


def csrf_token_matches(session_token: str, sent: str) -> bool:
    return hmac.compare_digest(csrf_token_for(session_token), sent)


# --- logging in ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedSession:
    token: str
    csrf_token: str
    expires_at: datetime
    user: User
    ctx: AuthContext


async def login(
    session: AsyncSession,
    db: Database,
    settings: Settings,
    *,
    email: str,
    password: str,
    code: str | None,
    actor: Actor,
) -> IssuedSession:
    """Check e-mail, password and (when on) the second factor; issue a session.

    The attempt is counted as a failure before anything is checked (see ``throttle``), in a
    short transaction of its own so that the rows are not locked while the password hash is
    computed. Refusals are raised as ``FailAfterCommit``: their count and audit event are kept."""
    keys = [throttle.account_key(email, settings), throttle.ip_key(actor.ip, settings)]
    if session.in_transaction():
        # A second transaction could wait for this one (SQLite's single writer): count here.
        await throttle.charge(session, keys)
    else:
        async with db.session() as counting:
            await throttle.charge(counting, keys)
            await counting.commit()

    await set_scope(session, Scope.for_system(), actor)
    repo = CredentialRepository(session)
    user = await repo.user_by_email(email)
    matches, new_hash = await verify_password_async(user.password_hash if user else None, password)
    if user is None or not matches or user.status != Status.ACTIVE:
        await record_user_event(session, "login.failed", user.id if user else None)
        raise FailAfterCommit(Unauthorized(LOGIN_FAILED, code="invalid_credentials"))
    if user.totp_enabled_at is not None:
        await _check_second_factor(session, keys, user, code)

    await throttle.reset(session, keys[0])
    await throttle.refund(session, keys[1:])
    if new_hash is not None:
        user.password_hash = new_hash
    await _refuse_if_every_agency_suspended(repo, user)
    return await _issue_session(session, settings, user, actor)


async def _refuse_if_every_agency_suspended(repo: CredentialRepository, user: User) -> None:
    """A member only of suspended agencies may not sign in (their rows would all be hidden
    anyway); the right password still counts as no failed attempt."""
    if user.is_platform_admin:
        return
    statuses = await repo.agency_statuses_of(user.id)
    if statuses and statuses <= {Status.SUSPENDED.value}:
        raise FailAfterCommit(agency_suspended())


async def _check_second_factor(
    session: AsyncSession, keys: list[throttle.ThrottleKey], user: User, code: str | None
) -> None:
    if not code or not code.strip():
        # The password was right: this attempt was no guess, so it costs nothing.
        await throttle.refund(session, keys)
        raise FailAfterCommit(
            Unauthorized(
                "Enter the code from your authenticator app (or a recovery code).",
                code="totp_required",
            )
        )
    if not await totp.accept_second_factor(session, user, code):
        await record_user_event(session, "login.failed", user.id)
        raise FailAfterCommit(
            Unauthorized("The code is wrong or was already used.", code="totp_invalid")
        )


async def _issue_session(
    session: AsyncSession, settings: Settings, user: User, actor: Actor
) -> IssuedSession:
    now = utcnow()
    token = random_token()
    login_session = LoginSession(
        user_id=user.id,
        token_hash=hash_token(token),
        expires_at=now + timedelta(hours=settings.session_ttl_hours),
        last_seen_at=now,
        ip=actor.ip,
        user_agent=actor.user_agent,
    )
    session.add(login_session)
    memberships = await CredentialRepository(session).memberships_of(user.id)
    ctx = context_for_user(user, memberships, actor, session_id=login_session.id)
    await set_scope(session, Scope.for_system(), ctx.actor)
    await record_user_event(session, "login.succeeded", user.id)
    await set_scope(session, ctx.scope, ctx.actor)
    return IssuedSession(
        token=token,
        csrf_token=csrf_token_for(token),
        expires_at=login_session.expires_at,
        user=user,
        ctx=ctx,
    )


# --- sessions -----------------------------------------------------------------------------


async def logout(session: AsyncSession, ctx: AuthContext | None) -> None:
    """End the caller's session (if it is one)."""
    if ctx is None or ctx.session_id is None or ctx.user_id is None:
        return
    async with system_scope(session):
        await CredentialRepository(session).revoke_sessions(
            ctx.user_id, utcnow(), only_session_id=ctx.session_id
        )
    await record_user_event(session, "logout", ctx.user_id)


async def logout_everywhere(session: AsyncSession, ctx: AuthContext) -> int:
    user_id = require_user(ctx)
    async with system_scope(session):
        revoked = await CredentialRepository(session).revoke_sessions(user_id, utcnow())
    await record_user_event(session, "sessions.revoked", user_id)
    return revoked


def sessions_statement(ctx: AuthContext) -> Select[Any]:
    return CredentialRepository.active_sessions_statement(require_user(ctx), utcnow())


async def revoke_session(session: AsyncSession, ctx: AuthContext, session_id: str) -> bool:
    """Revoke one of the user's own live sessions; True if it was the current one."""
    user_id = require_user(ctx)
    now = utcnow()
    repo = CredentialRepository(session)
    async with system_scope(session):
        if await repo.active_session_of(user_id, session_id, now) is None:
            raise NotFound("Session not found.")
        await repo.revoke_sessions(user_id, now, only_session_id=session_id)
    await record_user_event(session, "sessions.revoked", user_id)
    return session_id == ctx.session_id


async def change_password(
    session: AsyncSession, settings: Settings, ctx: AuthContext, current: str, new: str
) -> None:
    """Set a new password (policy-checked) and sign out every other session."""
    user_id = require_user(ctx)
    repo = CredentialRepository(session)
    async with system_scope(session):
        user = await repo.user_by_id(user_id)
    if user is None:
        raise Unauthorized()
    if new == current:
        raise ValidationFailed("new_password", "The new password must differ from the current one.")
    try:
        validate_password(new, user.email)
    except ValidationFailed as error:
        raise ValidationFailed("new_password", error.message) from None
    await charge_password_check(session, settings, user)
    if not await password_matches(user, current):
        raise wrong("current_password", "The current password is wrong.")
    await clear_password_checks(session, settings, user)
    new_hash = await hash_password_async(new)
    now = utcnow()
    async with system_scope(session):
        user.password_hash = new_hash
        user.password_changed_at = now
        revoked = await repo.revoke_sessions(user.id, now, keep_session_id=ctx.session_id)
    await record_user_event(session, "password.changed", user.id)
    if revoked:
        await record_user_event(session, "sessions.revoked", user.id)


# --- who is calling -----------------------------------------------------------------------


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        name=user.name,
        locale=user.locale,
        is_platform_admin=user.is_platform_admin,
        totp_enabled=user.totp_enabled_at is not None,
    )


async def whoami(session: AsyncSession, ctx: AuthContext) -> MeResponse:
    if ctx.api_key_id is not None:
        grant = ctx.grants[0]
        return MeResponse(
            user=None,
            memberships=[],
            api_key=ApiKeyIdentity(
                id=ctx.api_key_id,
                name=ctx.api_key_name or "",
                role=grant.role,
                agency_id=grant.agency_id,
                client_id=grant.client_id,
            ),
        )
    require_user(ctx)
    if ctx.user is None:
        raise Unauthorized()
    # Authentication loaded the user and their memberships (whatever their role lets them
    # see of the agency): answer from those.
    return MeResponse(
        user=user_out(ctx.user),
        memberships=[
            MembershipOut(
                id=g.membership_id or "",
                role=g.role,
                agency_id=g.agency_id,
                client_id=g.client_id,
                assigned_client_ids=sorted(g.assigned_client_ids),
            )
            for g in ctx.grants
        ],
    )


# --- password reset by e-mail -------------------------------------------------------------

PASSWORD_RESET_TTL = timedelta(hours=1)
RESET_PATH = "/password/reset/"

_RESET_MAIL = {
    "en": {
        "subject": "Reset your password",
        "greeting": "Hello {name},",
        "intro": (
            "someone (hopefully you) asked to reset the password of your {brand} account. "
            "Open this link within one hour to choose a new password:"
        ),
        "button": "Choose a new password",
        "ignore": (
            "If you did not ask for this, ignore this e-mail: your password stays as it is."
        ),
    },
    "de": {
        "subject": "Passwort zurücksetzen",
        "greeting": "Hallo {name},",
        "intro": (
            "jemand (hoffentlich Sie) möchte das Passwort Ihres {brand}-Kontos zurücksetzen. "
            "Öffnen Sie diesen Link innerhalb einer Stunde, um ein neues Passwort zu wählen:"
        ),
        "button": "Neues Passwort wählen",
        "ignore": (
            "Wenn Sie das nicht angefordert haben, ignorieren Sie diese E-Mail: Ihr Passwort "
            "bleibt unverändert."
        ),
    },
}


def _reset_keys(email: str, ip: str | None, settings: Settings) -> list[throttle.ThrottleKey]:
    """Like login's keys, counted apart: asking for links must not lock anyone out of login."""
    return [
        throttle.ThrottleKey(f"reset-{key.key}", key.threshold)
        for key in (throttle.account_key(email, settings), throttle.ip_key(ip, settings))
    ]


async def _reset_brand_agency(
    session: AsyncSession, user: User, host_agency: Agency | None
) -> tuple[bool, Agency | None]:
    """(may this host send the user a link, the agency whose brand the mail carries)."""
    repo = CredentialRepository(session)
    memberships = await repo.memberships_of(user.id)
    if host_agency is not None:
        # On an agency's own domain only that agency's people sign in (as at login).
        belongs = user.is_platform_admin or any(m.agency_id == host_agency.id for m in memberships)
        return belongs, host_agency
    first = await repo.agency_by_id(memberships[0].agency_id) if memberships else None
    return True, first


def _reset_mail(user: User, brand: EmailBrand, link: str) -> OutgoingEmail:
    words = _RESET_MAIL["de" if user.locale == "de" else "en"]
    name = user.name or user.email
    greeting = words["greeting"].format(name=name)
    intro = words["intro"].format(brand=brand.name)
    text = f"{greeting}\n\n{intro}\n\n{link}\n\n{words['ignore']}\n\n{brand.name}\n"
    body = (
        f"<p>{html.escape(greeting)}</p><p>{html.escape(intro)}</p>"
        f'<p><a href="{html.escape(link, quote=True)}">{html.escape(words["button"])}</a></p>'
        f'<p style="font-size:12px;color:#6b7280">{html.escape(link)}</p>'
        f"<p>{html.escape(words['ignore'])}</p>"
    )
    subject = words["subject"]
    return OutgoingEmail(
        to=user.email, subject=subject, text=text, html=branded_html(brand, subject, body)
    )


async def request_password_reset(
    session: AsyncSession,
    settings: Settings,
    email: str,
    actor: Actor,
    brand_host_agency: Agency | None,
    *,
    base_url: str | None = None,
) -> None:
    """E-mail a one-hour, single-use link to ``{base_url}/password/reset/{token}``.

    Answers the same whether or not the address has an account (no enumeration); every
    request counts against the account's and the address's throttle. ``base_url`` is the
    host the request came to (only pass a host we trust: an agency's verified domain);
    default: the platform's. The mail is in the brand of ``brand_host_agency``, else the
    user's first agency, else the platform's name."""
    email = email.strip().lower()
    async with system_scope(session):
        await throttle.charge(session, _reset_keys(email, actor.ip, settings))
        user = await CredentialRepository(session).user_by_email(email)
        if user is None or user.status != Status.ACTIVE:
            return
        allowed, agency = await _reset_brand_agency(session, user, brand_host_agency)
        if not allowed:
            return
        token = random_token()
        session.add(
            PasswordReset(
                user_id=user.id,
                token_hash=hash_token(token),
                expires_at=utcnow() + PASSWORD_RESET_TTL,
                ip=actor.ip,
            )
        )
        brand = (
            await brand_for(session, agency.id)
            if agency is not None
            else EmailBrand(
                name=settings.platform_name,
                primary_color=DEFAULT_EMAIL_COLOR,
                logo_url=None,
                sender_name=settings.platform_name,
            )
        )
        link = f"{(base_url or settings.base_url).rstrip('/')}{RESET_PATH}{token}"
        await queue_email(
            session,
            _reset_mail(user, brand, link),
            brand=brand,
            agency_id=agency.id if agency is not None else None,  # type: ignore[arg-type]
            client_id=None,
        )
    await record_user_event(session, "password.reset_requested", user.id)


async def check_password_reset(session: AsyncSession, token: str) -> PasswordReset:
    """The reset behind a link, if it can still be used; else 400 saying why."""
    async with system_scope(session):
        reset = await CredentialRepository(session).password_reset_by_token_hash(hash_token(token))
    if reset is None:
        raise BadRequest("This link is not valid.", code="reset_invalid")
    if reset.used_at is not None:
        raise BadRequest(
            "This link was already used. Ask for a new one if you need to.", code="reset_used"
        )
    if reset.expires_at <= utcnow():
        raise BadRequest("This link has expired. Ask for a new one.", code="reset_expired")
    return reset


async def reset_password(
    session: AsyncSession, token: str, new_password: str, settings: Settings | None = None
) -> User:
    """Set a new (policy-checked) password with a reset link: uses up the link (and every
    other one of the user), signs out all the user's sessions, records the event."""
    reset = await check_password_reset(session, token)
    repo = CredentialRepository(session)
    async with system_scope(session):
        user = await repo.user_by_id(reset.user_id)
    if user is None or user.status != Status.ACTIVE:
        raise BadRequest("This link is not valid.", code="reset_invalid")
    validate_password(new_password, user.email)
    new_hash = await hash_password_async(new_password)
    now = utcnow()
    async with system_scope(session):
        user.password_hash = new_hash
        user.password_changed_at = now
        await repo.use_password_resets(user.id, now)
        revoked = await repo.revoke_sessions(user.id, now)
        if settings is not None:
            # Whoever could read the mail owns the account now: forget the failed logins.
            await throttle.reset(session, throttle.account_key(user.email, settings))
    await record_user_event(session, "password.reset", user.id)
    if revoked:
        await record_user_event(session, "sessions.revoked", user.id)
    return user


# --- profile and sessions for the dashboard -----------------------------------------------


async def update_profile(
    session: AsyncSession, ctx: AuthContext, name: str | None, locale: str | None
) -> User:
    """The signed-in user's own name and language (de/en)."""
    user_id = require_user(ctx)
    repo = CredentialRepository(session)
    async with system_scope(session):
        user = await repo.user_by_id(user_id)
        if user is None:
            raise Unauthorized()
        if name is not None:
            if not name.strip():
                raise ValidationFailed("name", "Your name is required.")
            user.name = name.strip()
        if locale is not None:
            if locale not in ("de", "en"):
                raise ValidationFailed("locale", "Choose de or en.")
            user.locale = locale
    return user


async def start_session(
    session: AsyncSession, settings: Settings, user: User, actor: Actor
) -> IssuedSession:
    """A session for a user who just proved who they are another way (a new account made
    from an invitation with the password they chose)."""
    return await _issue_session(session, settings, user, actor)
