from __future__ import annotations

import time
from urllib.parse import parse_qs, urlparse

import pyotp
from sqlalchemy import select, text

from demandly.auth.models import RecoveryCode
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.tenancy.models import Role
from tests.auth.helpers import LOGIN, audit_events, browser, sign_in
from tests.factories import PASSWORD, make_agency, make_user

ENROLL = "/api/v1/auth/totp/enroll"
CONFIRM = "/api/v1/auth/totp/confirm"
DISABLE = "/api/v1/auth/totp/disable"


def code_at_step(secret: str, offset: int) -> str:
    """The code of the time step ``offset`` steps from now (the server accepts ±1)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * offset)


async def enable_2fa(http, db: Database) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    secret = (await http.post(ENROLL)).json()["secret"]
    confirmed = await http.post(CONFIRM, json={"code": code_at_step(secret, -1)})
    assert confirmed.status_code == 200, confirmed.text
    return secret, confirmed.json()["recovery_codes"]


async def test_enrolment_shows_secret_uri_and_qr_in_the_agency_brand(app, db: Database) -> None:
    tenant = await make_agency(db, name="Sonnenschein Digital")
    user = await make_user(db, role=Role.AGENCY_ADMIN, agency_id=tenant.agency.id)
    async with browser(app) as http:
        await sign_in(http, user.email)
        response = await http.post(ENROLL)
        assert response.status_code == 200, response.text
        body = response.json()
        uri = urlparse(body["otpauth_uri"])
        assert uri.scheme == "otpauth" and uri.netloc == "totp"
        query = parse_qs(uri.query)
        assert query["secret"] == [body["secret"]]
        assert query["issuer"] == ["Sonnenschein Digital"]
        assert body["qr_svg"].startswith("<svg") and body["qr_svg"].rstrip().endswith("</svg>")
        # Not in force before it is confirmed.
        assert (await http.get("/api/v1/me")).json()["user"]["totp_enabled"] is False
    async with browser(app) as http:
        await sign_in(http, user.email)
    # Stored encrypted.
    async with db.session(Scope.for_system()) as session:
        raw = (
            await session.execute(
                text("SELECT totp_secret FROM users WHERE id = :id"), {"id": user.id}
            )
        ).scalar_one()
    assert raw and body["secret"] not in raw


async def test_users_without_an_agency_see_demandly_as_issuer(app, db: Database) -> None:
    user = await make_user(db)
    async with browser(app) as http:
        await sign_in(http, user.email)
        uri = (await http.post(ENROLL)).json()["otpauth_uri"]
    assert parse_qs(urlparse(uri).query)["issuer"] == ["Demandly"]


async def test_confirm_needs_a_right_code_and_answers_ten_recovery_codes(app, db: Database) -> None:
    user = await make_user(db)
    async with browser(app) as http:
        await sign_in(http, user.email)
        assert (await http.post(CONFIRM, json={"code": "123456"})).status_code == 409
        secret = (await http.post(ENROLL)).json()["secret"]
        wrong = await http.post(CONFIRM, json={"code": "000000"})
        assert wrong.status_code == 422 and wrong.json()["error"]["details"][0]["field"] == "code"
        response = await http.post(CONFIRM, json={"code": pyotp.TOTP(secret).now()})
        assert response.status_code == 200
        codes = response.json()["recovery_codes"]
        assert len(codes) == len(set(codes)) == 10
        assert (await http.get("/api/v1/me")).json()["user"]["totp_enabled"] is True
        # A second device cannot silently replace the first.
        assert (await http.post(ENROLL)).status_code == 409
    async with db.session(Scope.for_system()) as session:
        stored = list(
            (
                await session.execute(
                    select(RecoveryCode.code_hash).where(RecoveryCode.user_id == user.id)
                )
            ).scalars()
        )
    assert len(stored) == 10 and not set(stored) & set(codes)
    assert len(await audit_events(db, "totp.enabled", user.id)) == 1


async def test_login_with_2fa_needs_a_fresh_code(app, db: Database) -> None:
    user = await make_user(db)
    async with browser(app) as http:
        await sign_in(http, user.email)
        secret, _codes = await enable_2fa(http, db)

    async with browser(app) as http:
        credentials = {"email": user.email, "password": PASSWORD}
        required = await http.post(LOGIN, json=credentials)
        assert required.status_code == 401
        assert required.json()["error"]["code"] == "totp_required"
        assert "dmd_session" not in http.cookies

        invalid = await http.post(LOGIN, json={**credentials, "totp": "000000"})
        assert invalid.status_code == 401 and invalid.json()["error"]["code"] == "totp_invalid"

        code = code_at_step(secret, 0)
        await sign_in(http, user.email, totp=code)
        assert (await http.get("/api/v1/me")).status_code == 200

    async with browser(app) as replay:
        reused = await replay.post(LOGIN, json={**credentials, "totp": code})
        assert reused.status_code == 401 and reused.json()["error"]["code"] == "totp_invalid"
        assert "dmd_session" not in replay.cookies
        # A code of an earlier step than the last one used is as good as used.
        older = await replay.post(LOGIN, json={**credentials, "totp": code_at_step(secret, -1)})
        assert older.json()["error"]["code"] == "totp_invalid"


async def test_asking_for_the_code_does_not_count_as_a_failure(app, db: Database) -> None:
    user = await make_user(db)
    async with browser(app) as http:
        await sign_in(http, user.email)
        await enable_2fa(http, db)
    async with browser(app) as http:
        for _ in range(6):
            response = await http.post(LOGIN, json={"email": user.email, "password": PASSWORD})
            assert response.json()["error"]["code"] == "totp_required"


async def test_wrong_codes_count_as_failures(app, db: Database, settings) -> None:  # type: ignore[no-untyped-def]
    user = await make_user(db)
    async with browser(app) as http:
        await sign_in(http, user.email)
        await enable_2fa(http, db)
    async with browser(app) as http:
        body = {"email": user.email, "password": PASSWORD, "totp": "999999"}
        for _ in range(settings.login_max_failures_before_delay):
            assert (await http.post(LOGIN, json=body)).status_code == 401
        assert (await http.post(LOGIN, json=body)).status_code == 429


async def test_a_recovery_code_works_once(app, db: Database) -> None:
    user = await make_user(db)
    async with browser(app) as http:
        await sign_in(http, user.email)
        _secret, codes = await enable_2fa(http, db)
    async with browser(app) as http:
        # Typed sloppily: case and spaces do not matter.
        await sign_in(http, user.email, totp=codes[0].upper().replace("-", " "))
    async with browser(app) as http:
        again = await http.post(
            LOGIN, json={"email": user.email, "password": PASSWORD, "totp": codes[0]}
        )
        assert again.status_code == 401 and again.json()["error"]["code"] == "totp_invalid"
        await sign_in(http, user.email, totp=codes[1])


async def test_disable_needs_password_and_code(app, db: Database) -> None:
    user = await make_user(db)
    async with browser(app) as http:
        await sign_in(http, user.email)
        _secret, codes = await enable_2fa(http, db)
        wrong_password = await http.post(DISABLE, json={"password": "nope nope", "code": codes[0]})
        assert wrong_password.status_code == 422
        assert wrong_password.json()["error"]["details"][0]["field"] == "password"
        wrong_code = await http.post(DISABLE, json={"password": PASSWORD, "code": "123456"})
        assert wrong_code.status_code == 422
        assert wrong_code.json()["error"]["details"][0]["field"] == "code"
        assert (await http.get("/api/v1/me")).json()["user"]["totp_enabled"] is True

        done = await http.post(DISABLE, json={"password": PASSWORD, "code": codes[0]})
        assert done.status_code == 204, done.text
        assert (await http.get("/api/v1/me")).json()["user"]["totp_enabled"] is False
        assert (
            await http.post(DISABLE, json={"password": PASSWORD, "code": codes[1]})
        ).status_code == 409
    async with browser(app) as http:
        await sign_in(http, user.email)
    async with db.session(Scope.for_system()) as session:
        left = (
            await session.execute(select(RecoveryCode).where(RecoveryCode.user_id == user.id))
        ).all()
    assert left == []
    assert len(await audit_events(db, "totp.disabled", user.id)) == 1
