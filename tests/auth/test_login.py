from __future__ import annotations

import httpx
from sqlalchemy import select

from demandly.auth.models import LoginSession
from demandly.kit.context import Scope
from demandly.kit.crypto import hash_token
from demandly.kit.db import Database
from demandly.tenancy.models import User
from tests.auth.helpers import LOGIN, audit_events, browser, fresh_ip, sign_in
from tests.factories import PASSWORD, make_user, unique


async def test_login_answers_the_user_and_sets_both_cookies(app, db: Database) -> None:
    user = await make_user(db)
    async with browser(app) as http:
        response = await sign_in(http, user.email.upper())
        body = response.json()
        assert body["user"] == {
            "id": user.id,
            "email": user.email,
            "name": "Test User",
            "locale": None,  # follows the browser until the user chooses
            "is_platform_admin": False,
            "totp_enabled": False,
        }
        cookies = {c.split("=", 1)[0]: c.lower() for c in response.headers.get_list("set-cookie")}
        assert "httponly" in cookies["dmd_session"]
        assert "samesite=lax" in cookies["dmd_session"] and "path=/" in cookies["dmd_session"]
        assert "secure" not in cookies["dmd_session"]
        assert "httponly" not in cookies["dmd_csrf"]
        assert http.cookies["dmd_csrf"] == body["csrf_token"]
        token = http.cookies["dmd_session"]
        me = await http.get("/api/v1/me")
        assert me.status_code == 200 and me.json()["user"]["id"] == user.id

    # Only the token's hash is stored.
    async with db.session(Scope.for_system()) as session:
        stored = (
            await session.execute(select(LoginSession).where(LoginSession.user_id == user.id))
        ).scalar_one()
    assert stored.token_hash == hash_token(token) and stored.token_hash != token


async def test_cookies_are_secure_behind_an_https_proxy(app, db: Database) -> None:
    user = await make_user(db)
    async with browser(app) as http:
        response = await http.post(
            LOGIN,
            json={"email": user.email, "password": PASSWORD},
            headers={"X-Forwarded-Proto": "https"},
        )
    assert response.status_code == 200
    for cookie in response.headers.get_list("set-cookie"):
        assert "secure" in cookie.lower()


async def test_wrong_password_and_unknown_email_get_the_same_answer(app, db: Database) -> None:
    user = await make_user(db)
    async with browser(app) as http:
        wrong = await http.post(LOGIN, json={"email": user.email, "password": "not it at all"})
        unknown = await http.post(
            LOGIN, json={"email": f"{unique('nobody')}@example.test", "password": PASSWORD}
        )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["code"] == "invalid_credentials"
    assert "set-cookie" not in wrong.headers and "set-cookie" not in unknown.headers


async def test_a_suspended_user_cannot_log_in(app, db: Database) -> None:
    user = await make_user(db)
    async with db.session(Scope.for_system()) as session:
        (await session.get(User, user.id)).status = "suspended"  # type: ignore[union-attr]
        await session.commit()
    async with browser(app) as http:
        response = await http.post(LOGIN, json={"email": user.email, "password": PASSWORD})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"


async def test_login_events_are_audited_without_the_email(app, db: Database) -> None:
    user = await make_user(db)
    ip = fresh_ip()
    async with browser(app, ip) as http:
        await http.post(LOGIN, json={"email": user.email, "password": "wrong password!"})
        await sign_in(http, user.email)
    [failed] = await audit_events(db, "login.failed", user.id)
    assert failed.actor_id is None and failed.ip == ip
    fields = [str(getattr(failed, c)) for c in ("entity_id", "user_agent", "changed_fields")]
    assert all(user.email not in f for f in fields)
    [succeeded] = await audit_events(db, "login.succeeded", user.id)
    assert succeeded.actor_id == user.id and succeeded.actor_kind == "user"


async def test_bad_login_bodies_are_422(client: httpx.AsyncClient) -> None:
    for body in ({}, {"email": "a@b.c"}, {"email": "a@b.c", "password": "x" * 2000}, []):
        response = await client.post(LOGIN, json=body)
        assert response.status_code == 422, response.text
