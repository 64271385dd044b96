"""The account page (name, language, password, sessions, two-factor) and the password reset
pages, driven through the real app."""

from __future__ import annotations

import re

import pyotp
from sqlalchemy import select

from demandly.auth.models import LoginSession
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.tenancy.models import User
from tests.factories import PASSWORD, make_tenant
from tests.web.support import browser, sign_in

NEW_PASSWORD = "a sturdy new passphrase 77"


async def _user(db: Database, user_id: str) -> User:
    async with db.session(Scope.for_system()) as session:
        user = await session.get(User, user_id)
        assert user is not None
        return user


async def test_name_and_language_are_saved_and_the_page_turns_german(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    user = tenant.users["client_member"]
    async with browser(app) as client:
        csrf = await sign_in(client, user)
        page = await client.get("/app/account")
        assert page.status_code == 200 and user.email in page.text
        blank = await client.post(
            "/app/account/profile", data={"name": " ", "locale": "de", "csrf_token": csrf}
        )
        assert blank.status_code == 422 and "Your name is required." in blank.text
        saved = await client.post(
            "/app/account/profile",
            data={"name": "Erika Muster", "locale": "de", "csrf_token": csrf},
        )
        assert saved.status_code == 303
        german = await client.get("/app/account")
    assert "Ihr Konto" in german.text and "Gespeichert." in german.text
    assert "Zwei-Faktor-Anmeldung" in german.text
    stored = await _user(db, user.id)
    assert (stored.name, stored.locale) == ("Erika Muster", "de")


async def test_changing_the_password_ends_other_sessions(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    user = tenant.users["agency_admin"]
    async with browser(app) as other, browser(app) as client:
        await sign_in(other, user)
        csrf = await sign_in(client, user)
        wrong = await client.post(
            "/app/account/password",
            data={"current_password": "not it at all 1", "new_password": NEW_PASSWORD,
                  "csrf_token": csrf},
        )  # fmt: skip
        assert wrong.status_code == 422 and "The current password is wrong." in wrong.text
        weak = await client.post(
            "/app/account/password",
            data={"current_password": PASSWORD, "new_password": "short", "csrf_token": csrf},
        )
        assert weak.status_code == 422 and "at least 12 characters" in weak.text
        assert 'id="e-new_password"' in weak.text
        done = await client.post(
            "/app/account/password",
            data={"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                  "csrf_token": csrf},
        )  # fmt: skip
        assert done.status_code == 303
        assert (await client.get("/app/account")).status_code == 200
        assert (await other.get("/app/account")).status_code == 303


async def test_sessions_are_listed_and_can_be_ended(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    user = tenant.users["client_admin"]
    async with browser(app) as other, browser(app) as client:
        await sign_in(other, user)
        csrf = await sign_in(client, user)
        page = await client.get("/app/account")
        ids = re.findall(r"/app/account/sessions/(ses_[A-Za-z0-9_-]+)/end", page.text)
        assert len(ids) == 2 and "This session" in page.text
        async with db.session(Scope.for_system()) as session:
            rows = await session.execute(
                select(LoginSession.id).where(LoginSession.user_id == user.id)
            )
            assert set(rows.scalars()) == set(ids)
        # An id that is not one of the user's sessions: not found, nothing ended.
        foreign = await client.post(
            "/app/account/sessions/ses_doesnotexist/end", data={"csrf_token": csrf}
        )
        assert foreign.status_code == 404
        current = await client.get("/app/account")
        ended = await client.post(
            f"/app/account/sessions/{_other(ids, current.text)}/end", data={"csrf_token": csrf}
        )
        assert ended.status_code == 303
        assert (await other.get("/app/account")).status_code == 303
        assert (await client.get("/app/account")).status_code == 200
        everywhere = await client.post("/app/account/sessions/end-all", data={"csrf_token": csrf})
        assert everywhere.status_code == 303 and everywhere.headers["location"] == "/login"
        assert (await client.get("/app/account")).status_code == 303


def _other(ids: list[str], html: str) -> str:
    """The session that is not marked as this one."""
    for row in re.findall(r"<tr>.*?</tr>", html, flags=re.S):
        if "This session" not in row:
            for session_id in ids:
                if session_id in row:
                    return session_id
    raise AssertionError("no other session listed")


async def test_two_factor_set_up_with_recovery_codes_and_turned_off(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    user = tenant.users["client_viewer"]
    async with browser(app) as client:
        csrf = await sign_in(client, user)
        enroll = await client.post("/app/account/2fa/enroll", data={"csrf_token": csrf})
        assert enroll.status_code == 200 and "<svg" in enroll.text and "style=" not in enroll.text
        secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', enroll.text)
        assert secret
        wrong = await client.post(
            "/app/account/2fa/confirm", data={"code": "000000", "csrf_token": csrf}
        )
        assert wrong.status_code == 422 and "<svg" in wrong.text
        codes = await client.post(
            "/app/account/2fa/confirm",
            data={"code": pyotp.TOTP(secret.group(1)).now(), "csrf_token": csrf},
        )
        assert codes.status_code == 200
        recovery = re.findall(
            r"<code>([a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4})</code>", codes.text
        )
        assert len(recovery) == 10
        page = await client.get("/app/account")
        assert "Turn off two-factor authentication" in page.text
        bad = await client.post(
            "/app/account/2fa/disable",
            data={"password": PASSWORD, "code": "111111", "csrf_token": csrf},
        )
        assert bad.status_code == 422 and "The code is wrong" in bad.text
        off = await client.post(
            "/app/account/2fa/disable",
            data={"password": PASSWORD, "code": recovery[0], "csrf_token": csrf},
        )
        assert off.status_code == 303
    assert (await _user(db, user.id)).totp_enabled_at is None


async def test_the_account_page_needs_a_sign_in(app) -> None:  # type: ignore[no-untyped-def]
    async with browser(app) as client:
        response = await client.get("/app/account")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
