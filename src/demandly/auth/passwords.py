"""Passwords: argon2id hashing (parameters from settings; rehash when they change) and the
password policy (length, common passwords, not the e-mail's name)."""

from __future__ import annotations

import asyncio
import re
import secrets
from functools import lru_cache
from importlib.resources import files

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from demandly.config import get_settings
from demandly.kit.errors import ValidationFailed

MIN_LENGTH = 12
MAX_LENGTH = 128
# Local parts shorter than this ("al@…") are too likely to occur by chance.
MIN_LOCAL_PART = 3
COMMON_PASSWORDS_FILE = "common_passwords.txt"

_hasher: PasswordHasher | None = None
_dummy_hash: str | None = None


def configure_hasher(time_cost: int, memory_kib: int, parallelism: int) -> None:
    global _hasher, _dummy_hash
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
    # Made now, so that not even the first unknown e-mail address takes longer to answer.
    _dummy_hash = _hasher.hash(secrets.token_urlsafe(16))


def hasher() -> PasswordHasher:
    if _hasher is None:
        settings = get_settings()
        configure_hasher(
            settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
        )
    assert _hasher is not None
    return _hasher


def hash_password(password: str) -> str:
    return hasher().hash(password)


def verify_password(password_hash: str, password: str) -> tuple[bool, str | None]:
    """(matches, new hash if the stored one used old parameters)."""
    try:
        hasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, None
    if hasher().check_needs_rehash(password_hash):
        return True, hash_password(password)
    return True, None


def verify_dummy(password: str) -> None:
    """Spend the time of a real verification, for unknown accounts: the answer's timing must
    not tell whether an e-mail address has an account."""
    hasher()
    assert _dummy_hash is not None
    verify_password(_dummy_hash, password)


# argon2 takes tens of milliseconds of CPU on purpose (and releases the GIL): off the event loop.


async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def verify_password_async(
    password_hash: str | None, password: str
) -> tuple[bool, str | None]:
    """Like ``verify_password``; a missing hash costs a dummy verification and fails."""
    if not password_hash:
        await asyncio.to_thread(verify_dummy, password)
        return False, None
    return await asyncio.to_thread(verify_password, password_hash, password)


# --- policy -------------------------------------------------------------------------------

_EDGE_NOISE = re.compile(r"^[\W\d_]+|[\W\d_]+$")


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    text = files("demandly.auth").joinpath(COMMON_PASSWORDS_FILE).read_text(encoding="utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and line[0] != "#"
    )


def is_common(password: str) -> bool:
    """In the list as typed, or once digits and symbols at either end are stripped
    ("Summer2024!" is "summer")."""
    lowered = password.lower()
    common = common_passwords()
    if lowered in common:
        return True
    core = _EDGE_NOISE.sub("", lowered)
    return bool(core) and core in common


def validate_password(password: str, email: str | None) -> None:
    """Raise ``ValidationFailed("password", …)`` naming the first rule the password breaks."""
    if len(password) < MIN_LENGTH:
        raise ValidationFailed(
            "password", f"The password must have at least {MIN_LENGTH} characters."
        )
    if len(password) > MAX_LENGTH:
        raise ValidationFailed(
            "password", f"The password must have at most {MAX_LENGTH} characters."
        )
    if is_common(password):
        raise ValidationFailed(
            "password", "The password is too common and easy to guess; choose another one."
        )
    local_part = (email or "").partition("@")[0].strip().lower()
    if len(local_part) >= MIN_LOCAL_PART and local_part in password.lower():
        raise ValidationFailed(
            "password", "The password must not contain the name part of your e-mail address."
        )
