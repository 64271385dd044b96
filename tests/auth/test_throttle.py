from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from demandly.auth import service, throttle
from demandly.auth.errors import FailAfterCommit
from demandly.auth.models import LoginThrottle
from demandly.config import Settings
from demandly.kit.context import Actor
from demandly.kit.db import Database
from demandly.kit.time import utcnow
from tests.auth.helpers import LOGIN, browser, fresh_ip
from tests.factories import PASSWORD, make_user, unique

WRONG = "definitely not the password"


async def throttle_row(db: Database, key: str) -> LoginThrottle | None:
    async with db.session() as session:
        return (
            await session.execute(select(LoginThrottle).where(LoginThrottle.key == key))
        ).scalar_one_or_none()


async def let_block_expire(db: Database, key: str) -> None:
    """Time travel: the block ran out (the count stays)."""
    async with db.session() as session:
        row = (
            await session.execute(select(LoginThrottle).where(LoginThrottle.key == key))
        ).scalar_one()
        row.blocked_until = utcnow() - timedelta(seconds=1)
        await session.commit()


def test_delays_double_and_stop_at_fifteen_minutes() -> None:
    assert throttle.delay_after(2, 3) is None
    assert [throttle.delay_after(n, 3) for n in (3, 4, 5, 6)] == [
        timedelta(seconds=s) for s in (1, 2, 4, 8)
    ]
    assert throttle.delay_after(13, 3) == timedelta(minutes=15)
    assert throttle.delay_after(10_000, 3) == timedelta(minutes=15)


async def test_account_delays_grow_and_a_success_resets_them(
    app, db: Database, settings: Settings
) -> None:
    user = await make_user(db)
    key = throttle.account_key(user.email, settings).key
    limit = settings.login_max_failures_before_delay
    async with browser(app) as http:
        for _ in range(limit):
            response = await http.post(LOGIN, json={"email": user.email, "password": WRONG})
            assert response.status_code == 401

        delays = []
        for _round in range(3):
            # Blocked: even the right password is not looked at.
            blocked = await http.post(LOGIN, json={"email": user.email, "password": PASSWORD})
            assert blocked.status_code == 429, blocked.text
            assert blocked.json()["error"]["code"] == "rate_limited"
            row = await throttle_row(db, key)
            assert row is not None and row.blocked_until and row.last_failure_at
            delay = row.blocked_until - row.last_failure_at
            assert 1 <= int(blocked.headers["retry-after"]) <= delay.total_seconds()
            delays.append(delay)
            await let_block_expire(db, key)
            again = await http.post(LOGIN, json={"email": user.email, "password": WRONG})
            assert again.status_code == 401
        assert delays == [timedelta(seconds=s) for s in (1, 2, 4)]

        await let_block_expire(db, key)
        assert (
            await http.post(LOGIN, json={"email": user.email, "password": PASSWORD})
        ).status_code == 200
        assert await throttle_row(db, key) is None
        # The count starts again from zero.
        for _ in range(limit):
            response = await http.post(LOGIN, json={"email": user.email, "password": WRONG})
            assert response.status_code == 401


async def test_unknown_accounts_are_throttled_like_known_ones(app, settings: Settings) -> None:
    email = f"{unique('ghost')}@example.test"
    async with browser(app) as http:
        statuses = [
            (await http.post(LOGIN, json={"email": email, "password": WRONG})).status_code
            for _ in range(settings.login_max_failures_before_delay + 1)
        ]
    assert statuses[-1] == 429 and set(statuses[:-1]) == {401}


async def test_an_address_guessing_at_many_accounts_is_throttled(
    app, db: Database, settings: Settings
) -> None:
    user = await make_user(db)
    ip = fresh_ip()
    async with browser(app, ip) as http:
        for _ in range(settings.login_ip_max_failures_before_delay):
            email = f"{unique('guess')}@example.test"
            response = await http.post(LOGIN, json={"email": email, "password": WRONG})
            assert response.status_code == 401
        blocked = await http.post(LOGIN, json={"email": user.email, "password": PASSWORD})
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
    # The account itself is fine from elsewhere.
    async with browser(app) as other:
        assert (
            await other.post(LOGIN, json={"email": user.email, "password": PASSWORD})
        ).status_code == 200


async def test_successful_logins_do_not_count_against_the_address(
    app, db: Database, settings: Settings
) -> None:
    """An office behind one address: many people logging in is not an attack."""
    ip = fresh_ip()
    users = [await make_user(db) for _ in range(3)]
    async with browser(app, ip) as http:
        for _ in range(settings.login_ip_max_failures_before_delay // 3 + 1):
            for user in users:
                response = await http.post(LOGIN, json={"email": user.email, "password": PASSWORD})
                assert response.status_code == 200
    row = await throttle_row(db, throttle.ip_key(ip, settings).key)
    assert row is not None and row.failures == 0


async def test_concurrent_attempts_cannot_all_get_past_the_check(
    app, db: Database, settings: Settings
) -> None:
    user = await make_user(db)
    limit = settings.login_max_failures_before_delay
    async with browser(app) as http:
        responses = await asyncio.gather(
            *(
                http.post(LOGIN, json={"email": user.email, "password": WRONG})
                for _ in range(limit + 7)
            )
        )
    statuses = [r.status_code for r in responses]
    # Exactly ``limit`` attempts were checked, unless the first block (1 s) ran out meanwhile.
    assert limit <= statuses.count(401) <= limit + 1, statuses
    assert statuses.count(429) == len(statuses) - statuses.count(401)
    row = await throttle_row(db, throttle.account_key(user.email, settings).key)
    assert row is not None and row.failures == statuses.count(401)


async def test_stale_counts_are_purged_and_live_ones_kept(db: Database) -> None:
    now = utcnow()
    stale, blocking, recent = (f"ip:test-{unique('purge')}" for _ in range(3))
    async with db.session() as session:
        session.add_all(
            [
                LoginThrottle(key=stale, failures=2, last_failure_at=now - timedelta(days=2)),
                LoginThrottle(
                    key=blocking,
                    failures=30,
                    last_failure_at=now - timedelta(days=2),
                    blocked_until=now + timedelta(minutes=5),
                ),
                LoginThrottle(key=recent, failures=1, last_failure_at=now - timedelta(minutes=1)),
            ]
        )
        await session.commit()
    async with db.session() as session:
        assert await throttle.purge_stale(session) >= 1
        await session.commit()
    assert await throttle_row(db, stale) is None
    assert await throttle_row(db, blocking) is not None
    assert await throttle_row(db, recent) is not None


async def test_a_login_inside_an_open_transaction_counts_there(
    db: Database, settings: Settings
) -> None:
    """Counting in a second transaction would wait for the first on SQLite: it counts in the
    caller's transaction instead, and the count is kept when the caller commits."""
    user = await make_user(db)
    async with db.session() as session:
        await session.execute(text("SELECT 1"))
        with pytest.raises(FailAfterCommit):
            await service.login(
                session,
                db,
                settings,
                email=user.email,
                password=WRONG,
                code=None,
                actor=Actor(kind="anonymous", ip=fresh_ip()),
            )
        await session.commit()
    row = await throttle_row(db, throttle.account_key(user.email, settings).key)
    assert row is not None and row.failures == 1
