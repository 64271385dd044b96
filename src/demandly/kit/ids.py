"""Identifiers: a type prefix and a ULID (time-sortable, so ids double as pagination cursors)."""

from __future__ import annotations

import os
import secrets
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


_last_ulid = 0
_ulid_lock = threading.Lock()


def ulid() -> str:
    """48 bits of milliseconds and 80 random bits, 26 characters, sorted by creation time:
    within one millisecond too, an id is never below the last one this process made (lists
    ordered by id keep the order things happened in)."""
    global _last_ulid
    millis = time.time_ns() // 1_000_000
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    with _ulid_lock:
        value = max(value, _last_ulid + 1)
        _last_ulid = value
    return _encode(value, 26)


def new_id(prefix: str) -> str:
    return f"{prefix}_{ulid()}"


def random_token(prefix: str = "", nbytes: int = 32) -> str:
    """An unguessable token for secrets shown once (API keys, invitations, sessions)."""
    token = secrets.token_urlsafe(nbytes)
    return f"{prefix}{token}" if prefix else token
