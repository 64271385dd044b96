from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select

from demandly.auth.models import LoginSession
from demandly.kit.context import Scope
from demandly.kit.crypto import hash_token
from demandly.kit.db import Database
from demandly.kit.time import utcnow
from demandly.tenancy.models import User
from tests.auth.helpers import LOGIN, audit_events, browser, sign_in
from tests.factories import PASSWORD, make_user

ME = "/api/v1/me"
NEW_PASSWORD = "Quiet-Violet-Harbour-91"


async def answer_with_token(app, token: str) -> int:  # type: ignore[no-untyped-def]
    """What GET /me says to someone holding ``token``."""
    async with browser(app) as http:
        http.cookies.set("dmd_session", token)
        return (await http.get(ME)).status_code


async def test_logout_ends_the_session_and_clears_the_cookies(app, db: Database) -> None:
    user = await make_user(db)
    async with browser(app) as http:
        await sign_in(http, user.email)
        token = http.cookies["dmd_session"]
        response = await http.post("/api/v1/auth/logout")
        assert response.status_code == 204
        assert "dmd_session" not in http.cookies and "dmd_csrf" not in http.cookies
        assert (await http.get(ME)).status_code == 401
    assert await answer_with_token(app, token) == 401
    assert len(await audit_events(db, "logout", user.id)) == 1


async def test_logout_all_ends_every_session(app, db: Database) -> None:
    user = await make_user(db)
    async with browser(app) as laptop, browser(app) as phone:
        await sign_in(laptop, user.email)
        await sign_in(phone, user.email)
        response = await laptop.post("/api/v1/auth/logout-all")
        assert response.status_code == 200 and response.json() == {"revoked": 2}
        assert (await phone.get(ME)).status_code == 401
        assert (await laptop.get(ME)).status_code == 401
    assert len(await audit_events(db, "sessions.revoked", user.id)) == 1


async def test_sessions_are_listed_and_can_be_ended_one_by_one(app, db: Database) -> None:
    user = await make_user(db)
    stranger = await make_user(db)
    async with browser(app) as laptop, browser(app) as phone, browser(app) as theirs:
        await sign_in(laptop, user.email)
        await sign_in(phone, user.email)
        await sign_in(theirs, stranger.email)
        listed = await laptop.get("/api/v1/auth/sessions")
        assert listed.status_code == 200
        items = listed.json()["items"]
        assert len(items) == 2
        assert sorted(i["current"] for i in items) == [False, True]
        [phone_session] = [i for i in items if not i["current"]]
        phone_id = phone_session["id"]
        assert set(phone_session) == {
            "id", "created_at", "last_seen_at", "expires_at", "ip", "user_agent", "current"
        }  # fmt: skip
        assert phone_session["user_agent"].startswith("python-httpx")

        their_id = (await theirs.get("/api/v1/auth/sessions")).json()["items"][0]["id"]
        assert (await laptop.delete(f"/api/v1/auth/sessions/{their_id}")).status_code == 404
        assert (await laptop.delete("/api/v1/auth/sessions/ses_nope")).status_code == 404
        assert (await theirs.get(ME)).status_code == 200

        assert (await laptop.delete(f"/api/v1/auth/sessions/{phone_id}")).status_code == 204
        assert (await phone.get(ME)).status_code == 401
        assert (await laptop.get(ME)).status_code == 200
        assert len((await laptop.get("/api/v1/auth/sessions")).json()["items"]) == 1


async def test_an_expired_session_is_refused(app, db: Database) -> None:
    user = await make_user(db)
    async with browser(app) as http:
        await sign_in(http, user.email)
        token = http.cookies["dmd_session"]
        async with db.session(Scope.for_system()) as session:
            row = (
                await session.execute(
                    select(LoginSession).where(LoginSession.token_hash == hash_token(token))
                )
            ).scalar_one()
            row.expires_at = utcnow() - timedelta(seconds=1)
            await session.commit()
        response = await http.get(ME)
    assert response.status_code == 401


async def test_changing_the_password_ends_the_other_sessions(app, db: Database) -> None:
    user = await make_user(db)
    async with browser(app) as laptop, browser(app) as phone:
        await sign_in(laptop, user.email)
        await sign_in(phone, user.email)
        response = await laptop.post(
            "/api/v1/auth/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        )
        assert response.status_code == 204, response.text
        assert (await laptop.get(ME)).status_code == 200
        assert (await phone.get(ME)).status_code == 401
    async with browser(app) as http:
        old = await http.post(LOGIN, json={"email": user.email, "password": PASSWORD})
        assert old.status_code == 401
        await sign_in(http, user.email, NEW_PASSWORD)
    async with db.session(Scope.for_system()) as session:
        stored = await session.get(User, user.id)
    assert stored is not None and stored.password_changed_at is not None
    assert len(await audit_events(db, "password.changed", user.id)) == 1


async def test_a_new_password_must_meet_the_policy(app, db: Database) -> None:
    user = await make_user(db, email=f"marlene.{utcnow().timestamp():.0f}@example.test")
    async with browser(app) as http:
        await sign_in(http, user.email)
        cases = {
            "short1!": ("new_password", "at least 12"),
            "Password2024!": ("new_password", "too common"),
            f"{user.email.split('@')[0]}-is-me": ("new_password", "e-mail"),
            PASSWORD: ("new_password", "differ"),
        }
        for new, (field, words) in cases.items():
            response = await http.post(
                "/api/v1/auth/password", json={"current_password": PASSWORD, "new_password": new}
            )
            assert response.status_code == 422, response.text
            [detail] = response.json()["error"]["details"]
            assert detail["field"] == field and words in detail["message"]
        wrong = await http.post(
            "/api/v1/auth/password",
            json={"current_password": "not my password", "new_password": NEW_PASSWORD},
        )
        assert wrong.status_code == 422
        assert wrong.json()["error"]["details"][0]["field"] == "current_password"
        assert (await http.get(ME)).status_code == 200


async def test_cookie_requests_need_the_csrf_token(app, db: Database) -> None:
    user = await make_user(db)
    async with browser(app) as http:
        await sign_in(http, user.email)
        token = http.headers.pop("X-CSRF-Token")
        # Reading needs no token.
        assert (await http.get(ME)).status_code == 200
        missing = await http.post("/api/v1/auth/totp/enroll")
        assert missing.status_code == 403
        assert missing.json()["error"]["code"] == "csrf_failed"
        forged = await http.post("/api/v1/auth/totp/enroll", headers={"X-CSRF-Token": "x" * 64})
        assert forged.status_code == 403 and forged.json()["error"]["code"] == "csrf_failed"
        good = await http.post("/api/v1/auth/totp/enroll", headers={"X-CSRF-Token": token})
        assert good.status_code == 200, good.text


async def test_the_csrf_token_of_another_session_does_not_work(app, db: Database) -> None:
    user = await make_user(db)
    async with browser(app) as mine, browser(app) as other:
        await sign_in(mine, user.email)
        await sign_in(other, user.email)
        response = await mine.post(
            "/api/v1/auth/logout-all", headers={"X-CSRF-Token": other.headers["X-CSRF-Token"]}
        )
        assert response.status_code == 403
        assert (await other.get(ME)).status_code == 200


async def test_api_keys_have_no_sessions_or_password(client: httpx.AsyncClient, world) -> None:  # type: ignore[no-untyped-def]
    headers = world.a.headers("agency_owner")
    assert (await client.get("/api/v1/auth/sessions", headers=headers)).status_code == 403
    response = await client.post(
        "/api/v1/auth/password",
        headers=headers,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert response.status_code == 403
    assert (await client.post("/api/v1/auth/totp/enroll", headers=headers)).status_code == 403


async def test_anonymous_callers_get_401(client: httpx.AsyncClient) -> None:
    for method, path in (
        ("GET", ME),
        ("GET", "/api/v1/auth/sessions"),
        ("POST", "/api/v1/auth/logout-all"),
        ("POST", "/api/v1/auth/totp/enroll"),
        ("GET", "/api/v1/api-keys"),
    ):
        assert (await client.request(method, path)).status_code == 401, path
    # Logging out without a session is harmless.
    assert (await client.post("/api/v1/auth/logout")).status_code == 204
