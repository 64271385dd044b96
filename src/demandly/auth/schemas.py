"""Request and response bodies of the auth endpoints."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from demandly.tenancy.models import Role


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- login and the caller -----------------------------------------------------------------


class LoginRequest(_Body):
    email: str = Field(min_length=1, max_length=320)
    # Longer than the policy allows for new passwords, so old ones still work; bounded so
    # nobody makes us hash megabytes.
    password: str = Field(min_length=1, max_length=1024)
    totp: str | None = Field(
        default=None, max_length=64, description="TOTP code, or a recovery code"
    )


class UserOut(BaseModel):
    id: str
    email: str
    name: str
    locale: str | None = Field(None, description="null: the browser's language")
    is_platform_admin: bool
    totp_enabled: bool


class LoginResponse(BaseModel):
    user: UserOut
    csrf_token: str = Field(description="Send as X-CSRF-Token on unsafe requests")


class MembershipOut(BaseModel):
    id: str
    role: Role
    agency_id: str
    client_id: str | None
    assigned_client_ids: list[str]


class ApiKeyIdentity(BaseModel):
    id: str
    name: str
    role: Role
    agency_id: str
    client_id: str | None


class MeResponse(BaseModel):
    """A signed-in user: ``user`` and ``memberships``, ``api_key`` null.
    An API key: ``api_key``, with ``user`` null and no memberships."""

    user: UserOut | None
    memberships: list[MembershipOut]
    api_key: ApiKeyIdentity | None = None


# --- sessions and password ----------------------------------------------------------------


class SessionOut(BaseModel):
    id: str
    created_at: datetime
    last_seen_at: datetime | None
    expires_at: datetime
    ip: str | None
    user_agent: str | None
    current: bool


class RevokedCount(BaseModel):
    revoked: int


class PasswordChange(_Body):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


# --- two-factor ---------------------------------------------------------------------------


class TotpEnrollment(BaseModel):
    secret: str
    otpauth_uri: str
    qr_svg: str


class TotpConfirm(_Body):
    code: str = Field(min_length=1, max_length=16)


class RecoveryCodes(BaseModel):
    recovery_codes: list[str] = Field(description="Shown once; each works once")


class TotpDisable(_Body):
    password: str = Field(min_length=1, max_length=1024)
    code: str = Field(min_length=1, max_length=64, description="TOTP code or a recovery code")


# --- API keys -----------------------------------------------------------------------------


class ApiKeyCreate(_Body):
    name: str = Field(min_length=1, max_length=200)
    agency_id: str | None = Field(default=None, max_length=40)
    client_id: str | None = Field(default=None, max_length=40)
    role: Role


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    role: Role
    agency_id: str
    client_id: str | None
    display_prefix: str
    created_at: datetime
    created_by_user_id: str | None
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(BaseModel):
    id: str
    key: str = Field(description="The secret; shown only in this response")
    name: str
    role: Role
    agency_id: str
    client_id: str | None
    display_prefix: str
    created_at: datetime


# --- password reset and profile -----------------------------------------------------------


class PasswordResetRequest(_Body):
    email: str = Field(min_length=1, max_length=320)


class PasswordResetConfirm(_Body):
    token: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_-]+$")
    password: str = Field(min_length=1, max_length=1024)


class ProfileUpdate(_Body):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(default=None, min_length=1, max_length=200)
    locale: Literal["de", "en"] | None = None

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        # Names end up in e-mail headers and HTML: no line breaks or control characters.
        if value is not None and any(unicodedata.category(ch) == "Cc" for ch in value):
            raise ValueError("must not contain control characters or line breaks")
        return value
