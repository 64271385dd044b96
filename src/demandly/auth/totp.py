"""TOTP two-factor authentication (RFC 6238 via pyotp) and one-time recovery codes.

A code is accepted one time step either side of now (clock drift) and only once: the last
accepted time step is stored on the user, and a code of that step or an earlier one is refused.
"""

from __future__ import annotations

import hmac
import re
import secrets
from datetime import datetime

import pyotp
import segno
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.auth.context import AuthContext
from demandly.auth.repository import CredentialRepository
from demandly.auth.support import (
    charge_password_check,
    clear_password_checks,
    password_matches,
    record_user_event,
    require_user,
    wrong,
)
from demandly.config import Settings
from demandly.kit.crypto import hash_token
from demandly.kit.db import system_scope
from demandly.kit.errors import Conflict, Unauthorized, ValidationFailed
from demandly.kit.time import utcnow
from demandly.tenancy.models import User

DEFAULT_ISSUER = "Demandly"
VALID_WINDOW = 1
RECOVERY_CODE_COUNT = 10
# 16 base32 characters: 80 bits, so a plain SHA-256 of the code is safe to store.
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_RECOVERY_LENGTH = 16
_TOTP_CODE = re.compile(r"^\d{6}$")


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning(secret: str, account: str, issuer: str) -> tuple[str, str]:
    """(otpauth:// URI, the same as an inline SVG QR code) for the authenticator app."""
    uri = pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)
    return uri, segno.make(uri, error="m").svg_inline(scale=4)


def _normalise(code: str) -> str:
    return re.sub(r"[\s-]", "", code).lower()


def matching_counter(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code ``code`` is, within the allowed window; None if none."""
    code = _normalise(code)
    if not _TOTP_CODE.match(code):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for counter in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(counter), code):
            return counter
    return None


async def accept_code(session: AsyncSession, user: User, code: str) -> bool:
    """A TOTP code not used before: claimed for good."""
    if not user.totp_secret:
        return False
    counter = matching_counter(user.totp_secret, code, utcnow())
    if counter is None:
        return False
    return await CredentialRepository(session).claim_totp_counter(user.id, counter)


def new_recovery_codes() -> list[str]:
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
        codes.append("-".join(raw[i : i + 4] for i in range(0, _RECOVERY_LENGTH, 4)))
    return codes


def recovery_code_hash(code: str) -> str:
    return hash_token(_normalise(code))


async def accept_second_factor(session: AsyncSession, user: User, code: str) -> bool:
    """A fresh TOTP code, or an unused recovery code (used up by this call)."""
    if await accept_code(session, user, code):
        return True
    normalised = _normalise(code)
    if len(normalised) != _RECOVERY_LENGTH:
        return False
    return await CredentialRepository(session).use_recovery_code(
        user.id, recovery_code_hash(normalised), utcnow()
    )


# --- enrolment ----------------------------------------------------------------------------


async def _current_user(session: AsyncSession, ctx: AuthContext) -> User:
    user_id = require_user(ctx)
    async with system_scope(session):
        user = await CredentialRepository(session).user_by_id(user_id)
    if user is None:
        raise Unauthorized()
    return user


async def issuer_for(session: AsyncSession, user_id: str) -> str:
    """The brand the authenticator app shows: the user's first agency, else Demandly."""
    repo = CredentialRepository(session)
    async with system_scope(session):
        memberships = await repo.memberships_of(user_id)
        agency = await repo.agency_by_id(memberships[0].agency_id) if memberships else None
    if agency is None:
        return DEFAULT_ISSUER
    name = str((agency.branding or {}).get("display_name") or agency.name or "").strip()
    # A colon separates issuer and account in the otpauth label.
    return name.replace(":", " ") or DEFAULT_ISSUER


async def enroll(session: AsyncSession, ctx: AuthContext) -> tuple[str, str, str]:
    """A new secret, stored (encrypted) but not yet in force: (secret, otpauth URI, QR SVG)."""
    user = await _current_user(session, ctx)
    if user.totp_enabled_at is not None:
        raise Conflict("Two-factor authentication is already on; turn it off to enrol anew.")
    secret = new_secret()
    async with system_scope(session):
        user.totp_secret = secret
        user.totp_last_counter = None
    uri, svg = provisioning(secret, user.email, await issuer_for(session, user.id))
    return secret, uri, svg


async def confirm(session: AsyncSession, ctx: AuthContext, code: str) -> list[str]:
    """Turn 2FA on with a first code from the app; returns the recovery codes (shown once)."""
    user = await _current_user(session, ctx)
    if user.totp_enabled_at is not None:
        raise Conflict("Two-factor authentication is already on.")
    if not user.totp_secret:
        raise Conflict("Start with POST /api/v1/auth/totp/enroll.")
    codes = new_recovery_codes()
    async with system_scope(session):
        if not await accept_code(session, user, code):
            raise ValidationFailed(
                "code", "The code is wrong or expired; check the clock of your device."
            )
        user.totp_enabled_at = utcnow()
        await CredentialRepository(session).replace_recovery_codes(
            user.id, [recovery_code_hash(c) for c in codes]
        )
    await record_user_event(session, "totp.enabled", user.id)
    return codes


async def disable(
    session: AsyncSession, settings: Settings, ctx: AuthContext, password: str, code: str
) -> None:
    user = await _current_user(session, ctx)
    if user.totp_enabled_at is None:
        raise Conflict("Two-factor authentication is not on.")
    await charge_password_check(session, settings, user)
    if not await password_matches(user, password):
        raise wrong("password", "The password is wrong.")
    async with system_scope(session):
        accepted = await accept_second_factor(session, user, code)
    if not accepted:
        raise wrong("code", "The code is wrong or was already used.")
    await clear_password_checks(session, settings, user)
    async with system_scope(session):
        user.totp_secret = None
        user.totp_enabled_at = None
        user.totp_last_counter = None
        await CredentialRepository(session).delete_recovery_codes(user.id)
    await record_user_event(session, "totp.disabled", user.id)
