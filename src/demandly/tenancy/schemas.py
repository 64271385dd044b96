"""Request and response bodies of the tenancy API: agencies, branding, domains, clients,
memberships and invitations."""

from __future__ import annotations

import re
import unicodedata
import zoneinfo
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    field_validator,
)

from demandly.tenancy.models import Role

Locale = Literal["de", "en"]
AgencyStatus = Literal["active", "suspended", "offboarding"]
# Ids and tokens are URL-safe ASCII; anything else (a NUL byte, say) is refused before SQL.
ID_PATTERN = r"^[A-Za-z0-9_-]+$"
Id = Annotated[str, Field(min_length=1, max_length=40, pattern=ID_PATTERN)]
MAX_ASSIGNED = 500

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
# Room for the "_demandly-challenge." label within DNS's 253 characters.
MAX_DOMAIN_LENGTH = 253 - len("_demandly-challenge.")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _plain_text(value: str) -> str:
    # Names end up in e-mail headers and HTML: no line breaks or other control characters.
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must not contain control characters or line breaks")
    return value


def _hex_color(value: str) -> str:
    if not _HEX_COLOR.match(value):
        raise ValueError("must be a colour in the form #rrggbb")
    return value.lower()


def _web_url(value: str) -> str:
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must be a URL without spaces")
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise ValueError("must be a valid URL") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("must be an absolute URL with a host")
    return value


def _timezone(value: str) -> str:
    if value not in _known_timezones():
        raise ValueError("must be an IANA time zone such as Europe/Berlin")
    return value


@lru_cache(maxsize=1)
def _known_timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones() | {"UTC"})


def normalize_slug(value: str) -> str:
    slug = value.strip().lower()
    if not _SLUG.match(slug):
        raise ValueError(
            "must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'"
        )
    return slug


def normalize_hostname(value: str) -> str:
    """Lower-case ASCII form of a DNS host name (IDNA for non-ASCII); ValueError if invalid."""
    host = value.strip().rstrip(".").lower()
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError("must be a valid domain name such as app.example.com") from exc
    labels = host.split(".")
    if (
        len(host) > MAX_DOMAIN_LENGTH
        or len(labels) < 2
        or not all(_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise ValueError("must be a valid domain name such as app.example.com")
    return host


PlainText = Annotated[str, AfterValidator(_plain_text)]
HexColor = Annotated[str, Field(max_length=7), AfterValidator(_hex_color)]
WebUrl = Annotated[str, Field(max_length=500), AfterValidator(_web_url)]
TimeZone = Annotated[str, Field(max_length=64), AfterValidator(_timezone)]
Slug = Annotated[str, Field(max_length=63), AfterValidator(normalize_slug)]
Hostname = Annotated[str, Field(max_length=300), AfterValidator(normalize_hostname)]
Email = Annotated[EmailStr, Field(max_length=320), AfterValidator(str.lower)]
Name = Annotated[PlainText, Field(min_length=1, max_length=200)]
GrantableRole = Annotated[Role, Field(description="A role below platform_admin.")]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _reject_null(value: Any) -> Any:
    if value is None:
        raise ValueError("may not be null")
    return value


# --- branding ------------------------------------------------------------------------------


class Branding(_Input):
    """How an agency appears to its clients: on the dashboard, in the widget, in e-mails.
    In a PATCH, only the fields sent change; null clears one."""

    display_name: Name | None = None
    logo_url: WebUrl | None = None
    favicon_url: WebUrl | None = None
    primary_color: HexColor | None = None
    accent_color: HexColor | None = None
    support_email: Email | None = None
    sender_name: Annotated[PlainText, Field(min_length=1, max_length=100)] | None = None
    privacy_policy_url: WebUrl | None = None
    imprint_url: WebUrl | None = None


# --- agencies ------------------------------------------------------------------------------


class AgencyCreate(_Input):
    name: Name
    slug: Slug | None = Field(None, description="Derived from the name when absent.")
    timezone: TimeZone = "Europe/Berlin"
    locale: Locale = "de"
    branding: Branding | None = None
    owner_email: Email | None = Field(
        None, description="Invite this address as the agency's owner (token in the response)."
    )


class AgencyUpdate(_Input):
    name: Name | None = None
    status: AgencyStatus | None = Field(None, description="Platform administrators only.")
    timezone: TimeZone | None = None
    locale: Locale | None = None
    branding: Branding | None = None

    _not_null = field_validator("name", "status", "timezone", "locale", "branding", mode="before")(
        _reject_null
    )


class Agency(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    slug: str
    status: str
    timezone: str
    locale: str
    branding: Branding
    created_at: datetime
    updated_at: datetime | None = None


class OwnerInvitation(BaseModel):
    id: str
    token: str = Field(description="Shown once.")
    expires_at: datetime
    accept_url: str


class AgencyCreated(Agency):
    owner_invitation: OwnerInvitation | None = None


# --- custom domains ------------------------------------------------------------------------


class DomainCreate(_Input):
    domain: Hostname


class TxtRecord(BaseModel):
    type: Literal["TXT"] = "TXT"
    name: str
    value: str


class Domain(BaseModel):
    id: str
    agency_id: str
    domain: str
    verified: bool
    verified_at: datetime | None
    verification_token: str
    txt_record: TxtRecord = Field(description="Create this record, then call verify.")
    created_at: datetime


# --- clients -------------------------------------------------------------------------------


class ClientCreate(_Input):
    agency_id: Id
    name: Name
    timezone: TimeZone | None = Field(None, description="Defaults to the agency's time zone.")
    locale: Locale | None = Field(None, description="Defaults to the agency's locale.")
    privacy_policy_url: WebUrl | None = None


class ClientUpdate(_Input):
    name: Name | None = None
    timezone: TimeZone | None = None
    locale: Locale | None = None
    privacy_policy_url: WebUrl | None = Field(None, description="null clears it.")
    status: Literal["active", "suspended"] | None = Field(
        None, description="Needs an agency role (clients:create)."
    )

    _not_null = field_validator("name", "timezone", "locale", "status", mode="before")(_reject_null)


class Client(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    agency_id: str
    name: str
    timezone: str
    locale: str
    status: str
    privacy_policy_url: str | None
    created_at: datetime
    updated_at: datetime | None = None


# --- memberships ---------------------------------------------------------------------------

AssignedClientIds = Annotated[list[Id], Field(max_length=MAX_ASSIGNED)]


class MembershipUpdate(_Input):
    role: GrantableRole | None = None
    assigned_client_ids: AssignedClientIds | None = Field(
        None, description="Only for agency_member: the clients they work on."
    )

    _not_null = field_validator("role", "assigned_client_ids", mode="before")(_reject_null)


class Membership(BaseModel):
    id: str
    user_id: str
    email: str
    name: str
    role: str
    agency_id: str
    client_id: str | None
    assigned_client_ids: list[str]
    created_at: datetime


# --- invitations ---------------------------------------------------------------------------


class InvitationCreate(_Input):
    email: Email
    role: GrantableRole
    agency_id: Id | None = None
    client_id: Id | None = None
    assigned_client_ids: AssignedClientIds = Field(default_factory=list)


class Invitation(BaseModel):
    id: str
    email: str
    role: str
    agency_id: str
    client_id: str | None
    assigned_client_ids: list[str]
    expires_at: datetime
    created_at: datetime
    invited_by_user_id: str | None = None


class InvitationCreated(Invitation):
    token: str = Field(description="Shown once; only its hash is stored.")
    accept_url: str


class InvitationAccept(_Input):
    # Passwords are taken exactly as typed.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    name: Name | None = Field(None, description="Required when no account exists yet.")
    password: Annotated[str, Field(max_length=1024)] | None = Field(
        None, description="Required when no account exists yet; checked against the policy."
    )


class InvitationAccepted(BaseModel):
    user_id: str
    membership_id: str
    agency_id: str
    client_id: str | None
    role: str
