"""Login throttling: growing delays after repeated failures, per account and per address.

An attempt is *charged* as a failure before the password is checked, with the throttle rows
locked: so concurrent attempts cannot all slip past the check before any failure is counted.
An attempt that turns out not to be a guess gives the charge back (``refund``); a successful
login clears the account's count (``reset``). The per-address count is only refunded on
success, never cleared: one valid account must not reset the count of an address that is
guessing at other accounts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from demandly.auth.models import LoginThrottle
from demandly.auth.repository import ThrottleRepository
from demandly.config import Settings
from demandly.kit.crypto import get_keyring
from demandly.kit.errors import TooManyRequests
from demandly.kit.time import utcnow

MAX_DELAY = timedelta(minutes=15)
# Failures older than this (counted from the last one) are forgiven.
FORGET_AFTER = timedelta(hours=24)


@dataclass(frozen=True)
class ThrottleKey:
    key: str
    # Failures allowed before each further one adds a delay.
    threshold: int


def account_key(email: str, settings: Settings) -> ThrottleKey:
    # Keyed hash: the table holds no e-mail addresses and cannot be reversed by a dictionary.
    digest = get_keyring().mac(email.strip().lower(), "throttle")
    return ThrottleKey(f"account:{digest}", settings.login_max_failures_before_delay)


def ip_key(address: str | None, settings: Settings) -> ThrottleKey:
    return ThrottleKey(f"ip:{address or 'unknown'}", settings.login_ip_max_failures_before_delay)


def delay_after(failures: int, threshold: int) -> timedelta | None:
    """1 s after the threshold-th failure, doubling with each further one, at most 15 min."""
    if failures < threshold:
        return None
    exponent = min(failures - threshold, 20)
    return min(timedelta(seconds=2**exponent), MAX_DELAY)


def seconds_blocked(row: LoginThrottle, now: datetime) -> int:
    if row.blocked_until is None or row.blocked_until <= now:
        return 0
    return math.ceil((row.blocked_until - now).total_seconds())


async def charge(session: AsyncSession, keys: list[ThrottleKey]) -> None:
    """Refuse (429) while any key is blocked, without counting; else count one failure on
    every key. The caller commits; the rows stay locked until it does."""
    now = utcnow()
    rows = await ThrottleRepository(session).lock([k.key for k in keys])
    retry_after = max(seconds_blocked(rows[k.key], now) for k in keys)
    if retry_after > 0:
        raise TooManyRequests(
            retry_after, f"Too many failed sign-in attempts. Try again in {retry_after} s."
        )
    for key in keys:
        row = rows[key.key]
        if row.last_failure_at is not None and now - row.last_failure_at > FORGET_AFTER:
            row.failures = 0
        row.failures += 1
        row.last_failure_at = now
        delay = delay_after(row.failures, key.threshold)
        row.blocked_until = now + delay if delay else None
    await session.flush()


async def refund(session: AsyncSession, keys: list[ThrottleKey]) -> None:
    """Give back one charge: the attempt was not a wrong guess."""
    rows = await ThrottleRepository(session).lock([k.key for k in keys])
    for key in keys:
        row = rows[key.key]
        row.failures = max(0, row.failures - 1)
        if row.failures < key.threshold:
            row.blocked_until = None
    await session.flush()


async def reset(session: AsyncSession, key: ThrottleKey) -> None:
    await ThrottleRepository(session).delete(key.key)


async def purge_stale(session: AsyncSession) -> int:
    """Delete counts that are forgiven anyway and block nothing (for a periodic job): rows for
    every address and e-mail ever tried would otherwise pile up."""
    return await ThrottleRepository(session).delete_stale(utcnow(), FORGET_AFTER)
