"""Password reset by e-mail: the same answer for every address, a branded mail with a link
that works once within an hour, the policy on the new password, every session ended."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from demandly.auth.models import PasswordReset
from demandly.jobs.worker import Worker
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.kit.time import utcnow
from demandly.tenancy.models import Agency, User
from tests.auth.helpers import audit_events, fresh_ip, sign_in
from tests.factories import make_tenant, make_user, unique
from tests.integrations.smtp import SmtpServer, smtp_server, use_smtp  # noqa: F401
from tests.web.support import verified_domain

RESET = "/api/v1/auth/password-reset"
CONFIRM = "/api/v1/auth/password-reset/confirm"
NEW_PASSWORD = "a sturdy new passphrase 77"
LINK = re.compile(r"(https?://[^\s/]+)/password/reset/([A-Za-z0-9_-]+)")


@pytest.fixture
def mail_server(use_smtp: SmtpServer) -> SmtpServer:  # noqa: F811
    """The SMTP server the e-mail task delivers to."""
    return use_smtp


@asynccontextmanager
async def browser(app: Any, host: str = "testserver") -> AsyncIterator[httpx.AsyncClient]:
    """A client of its own address (throttling counts per address), on ``host``."""
    transport = httpx.ASGITransport(app=app, client=(fresh_ip(), 40000))
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as http:
        yield http


async def _delivered(db: Database, smtp: SmtpServer, to: str) -> list[EmailMessage]:
    await Worker(db).run_until_idle()
    return smtp.to(to)


def _link_of(mail: EmailMessage) -> tuple[str, str]:
    found = LINK.search(mail.get_body(("plain",)).get_content())
    assert found, "no reset link in the mail"
    return found.group(1), found.group(2)


async def _brand(db: Database, agency_id: str, name: str) -> None:
    async with db.session(Scope.for_system()) as session:
        agency = await session.get(Agency, agency_id)
        assert agency is not None
        agency.branding = {"display_name": name, "primary_color": "#0f4c81"}
        await session.commit()


async def test_the_link_arrives_works_once_and_ends_every_session(
    app, db: Database, mail_server: SmtpServer
) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    await _brand(db, tenant.agency.id, "Nordlicht Digital")
    user = tenant.users["client_member"]
    async with browser(app) as signed_in, browser(app) as http:
        await sign_in(signed_in, user.email)
        asked = await http.post(RESET, json={"email": user.email.upper()})
        assert asked.status_code == 202
        [mail] = await _delivered(db, mail_server, user.email)
        assert mail["Subject"] == "Reset your password"
        html = mail.get_body(("html",)).get_content()
        assert "Nordlicht Digital" in html and "Demandly" not in html + str(mail["From"])
        _, token = _link_of(mail)

        weak = await http.post(CONFIRM, json={"token": token, "password": "password1234"})
        assert weak.status_code == 422
        done = await http.post(CONFIRM, json={"token": token, "password": NEW_PASSWORD})
        assert done.status_code == 204
        again = await http.post(CONFIRM, json={"token": token, "password": NEW_PASSWORD + "x"})
        assert again.status_code == 400 and again.json()["error"]["code"] == "reset_used"

        assert (await signed_in.get("/api/v1/me")).status_code == 401
        await sign_in(http, user.email, NEW_PASSWORD)
    assert await audit_events(db, "password.reset", user.id)
    async with db.session(Scope.for_system()) as session:
        stored = (
            await session.execute(select(PasswordReset).where(PasswordReset.user_id == user.id))
        ).scalar_one()
        assert stored.token_hash != token and stored.used_at is not None


async def test_an_unknown_address_gets_the_same_answer_and_no_mail(
    app, db: Database, mail_server: SmtpServer
) -> None:  # type: ignore[no-untyped-def]
    nobody = f"{unique('nobody')}@example.com"
    async with browser(app) as http:
        asked = await http.post(RESET, json={"email": nobody})
        assert asked.status_code == 202 and asked.content == b""
        page = await http.post("/password/forgot", data={"email": nobody})
        assert page.status_code == 200 and "If an account exists" in page.text
    assert await _delivered(db, mail_server, nobody) == []


async def test_on_the_agency_domain_the_mail_and_link_carry_its_brand(
    app, db: Database, mail_server: SmtpServer
) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    await _brand(db, tenant.agency.id, "Praxis Partner")
    domain = f"{unique('login').lower()}.agency.test"
    await verified_domain(db, tenant.agency, domain)
    user = tenant.users["client_admin"]
    async with browser(app, host=domain) as http:
        form = await http.get("/password/forgot")
        assert form.status_code == 200 and "Praxis Partner" in form.text
        sent = await http.post("/password/forgot", data={"email": user.email})
        assert sent.status_code == 200 and "Demandly" not in sent.text
        [mail] = await _delivered(db, mail_server, user.email)
        base, token = _link_of(mail)
        assert base == f"http://{domain}"
        text = mail.get_body(("plain",)).get_content()
        assert "Praxis Partner" in text and "Demandly" not in text
        assert mail["From"].addresses[0].display_name == "Praxis Partner"

        page = await http.get(f"/password/reset/{token}")
        assert page.status_code == 200 and "Praxis Partner" in page.text
        mismatch = await http.post(
            f"/password/reset/{token}",
            data={"password": NEW_PASSWORD, "password_confirm": "something else 12"},
        )
        assert mismatch.status_code == 422 and "do not match" in mismatch.text
        weak = await http.post(
            f"/password/reset/{token}", data={"password": "short", "password_confirm": "short"}
        )
        assert weak.status_code == 422 and "at least 12 characters" in weak.text
        done = await http.post(
            f"/password/reset/{token}",
            data={"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD},
        )
        assert done.status_code == 303 and done.headers["location"] == "/login"
        login = await http.get("/login")
        assert "Your password was changed" in login.text
        used = await http.get(f"/password/reset/{token}")
        assert used.status_code == 400 and "already used" in used.text
        signed = await http.post("/login", data={"email": user.email, "password": NEW_PASSWORD})
        assert signed.status_code == 303


async def test_an_account_of_another_agency_gets_no_link_on_this_domain(
    app, db: Database, mail_server: SmtpServer
) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = await make_tenant(db), await make_tenant(db)
    domain = f"{unique('login').lower()}.agency.test"
    await verified_domain(db, ours.agency, domain)
    stranger = theirs.users["agency_owner"]
    async with browser(app, host=domain) as http:
        asked = await http.post(RESET, json={"email": stranger.email})
        assert asked.status_code == 202
    assert await _delivered(db, mail_server, stranger.email) == []


async def test_an_expired_link_is_refused_and_german_users_get_german(
    app, db: Database, mail_server: SmtpServer
) -> None:  # type: ignore[no-untyped-def]
    user = await make_user(db)  # no agency: the platform's name
    async with db.session(Scope.for_system()) as session:
        await session.execute(update(User).where(User.id == user.id).values(locale="de"))
        await session.commit()
    async with browser(app) as http:
        assert (await http.post(RESET, json={"email": user.email})).status_code == 202
        [mail] = await _delivered(db, mail_server, user.email)
        assert mail["Subject"] == "Passwort zurücksetzen"
        _, token = _link_of(mail)
        async with db.session(Scope.for_system()) as session:
            await session.execute(
                update(PasswordReset)
                .where(PasswordReset.user_id == user.id)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
            await session.commit()
        refused = await http.post(CONFIRM, json={"token": token, "password": NEW_PASSWORD})
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "reset_expired"
        page = await http.get(
            f"/password/reset/{token}", headers={"Accept-Language": "de-DE,de;q=0.9"}
        )
        assert page.status_code == 400 and "abgelaufen" in page.text
        unknown = await http.post(CONFIRM, json={"token": "nope", "password": NEW_PASSWORD})
        assert unknown.json()["error"]["code"] == "reset_invalid"


async def test_asking_again_and_again_is_throttled(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    email = f"{unique('flood')}@example.com"
    async with browser(app) as http:
        answers = [(await http.post(RESET, json={"email": email})).status_code for _ in range(5)]
        page = await http.post("/password/forgot", data={"email": email})
    assert answers[:3] == [202, 202, 202] and 429 in answers
    assert page.status_code == 429 and "Too many attempts" in page.text
