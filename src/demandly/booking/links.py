"""Signed links: an attendee's manage link (reschedule, cancel) and a calendar's private ICS
feed, both without login.

A token is ``{subject}.{expires}.{version}.{signature}``: the subject is an appointment or
calendar id, ``expires`` unix seconds (0: never), ``version`` lets a calendar revoke its
feed URLs. The signature is an HMAC under the keyring over the purpose and those fields, so a
token made for one purpose never works for another, and no field can be changed.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from demandly.booking.models import Appointment, Calendar
from demandly.kit.crypto import get_keyring
from demandly.kit.errors import Gone, NotFound
from demandly.kit.time import utcnow

Purpose = Literal["manage", "feed", "form"]
MAC_PURPOSE = "booking-link"
SIGNATURE_LENGTH = 32  # hex characters: 128 bits
MAX_TOKEN_LENGTH = 200
# A manage link works until a day after the appointment's start (time to note a no-show).
MANAGE_GRACE = timedelta(days=1)


@dataclass(frozen=True)
class Claims:
    subject: str
    expires_at: datetime | None
    version: int


def _signature(purpose: str, subject: str, expires: int, version: int) -> str:
    message = f"{purpose}|{subject}|{expires}|{version}"
    return get_keyring().mac(message, MAC_PURPOSE)[:SIGNATURE_LENGTH]


def sign(purpose: Purpose, subject: str, expires_at: datetime | None, version: int = 0) -> str:
    expires = int(expires_at.timestamp()) if expires_at is not None else 0
    return f"{subject}.{expires}.{version}.{_signature(purpose, subject, expires, version)}"


def verify(token: str, purpose: Purpose, *, now: datetime | None = None) -> Claims:
    """The token's claims; 404 for anything malformed, forged or of another purpose, 410 for
    a genuine token past its expiry."""
    parts = token.split(".") if len(token) <= MAX_TOKEN_LENGTH else []
    if len(parts) != 4 or not parts[1].isdigit() or not parts[2].isdigit():
        raise NotFound("This link is not valid.")
    subject, expires_text, version_text, signature = parts
    expires, version = int(expires_text), int(version_text)
    if not hmac.compare_digest(signature, _signature(purpose, subject, expires, version)):
        raise NotFound("This link is not valid.")
    expires_at = datetime.fromtimestamp(expires, UTC) if expires else None
    if expires_at is not None and expires_at <= (now or utcnow()):
        raise Gone("This link has expired.")
    return Claims(subject=subject, expires_at=expires_at, version=version)


def manage_token(
    appointment: Appointment, purpose: Purpose = "manage", *, expires_at: datetime | None = None
) -> str:
    """The attendee's token for ``appointment`` (by default valid until a day after it
    starts). ``purpose`` "feed" is refused: feeds belong to calendars (``feed_token``)."""
    if purpose != "manage":
        raise ValueError("appointments only have manage links")
    return sign("manage", appointment.id, expires_at or appointment.start_at + MANAGE_GRACE)


def verify_manage_token(token: str, purpose: Purpose = "manage") -> Claims:
    return verify(token, purpose)


def feed_token(calendar: Calendar) -> str:
    """The calendar's private feed token: no expiry, revoked by raising ``feed_version``."""
    return sign("feed", calendar.id, None, calendar.feed_version)
