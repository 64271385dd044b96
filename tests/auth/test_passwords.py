from __future__ import annotations

import pytest
from sqlalchemy import select

from demandly.auth.passwords import (
    common_passwords,
    configure_hasher,
    hash_password,
    validate_password,
    verify_password,
)
from demandly.config import Settings
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.kit.errors import ValidationFailed
from demandly.tenancy.models import User
from tests.auth.helpers import browser, sign_in
from tests.factories import PASSWORD, make_user


def refusal(password: str, email: str | None = "jane.doe@example.test") -> str:
    with pytest.raises(ValidationFailed) as caught:
        validate_password(password, email)
    assert caught.value.details == [{"field": "password", "message": caught.value.message}]
    return caught.value.message


def test_each_policy_rule_says_what_failed() -> None:
    assert "at least 12 characters" in refusal("Xy7#kq2!")
    assert "at most 128 characters" in refusal("Vq8!" * 33)
    assert "too common" in refusal("qwertyuiop123")
    assert "e-mail" in refusal("my name is Jane.Doe and I say hi", "jane.doe@example.test")


@pytest.mark.parametrize(
    "password",
    [
        "Password1234",
        "PASSWORD!!!!2024",
        "123456789012",
        "iloveyou2024!",
        "Qwertzuiop12",
        "##Summer2024##",
    ],
)
def test_common_passwords_are_refused_whatever_the_case_and_the_digits(password: str) -> None:
    assert "too common" in refusal(password)


def test_good_passwords_pass() -> None:
    validate_password(PASSWORD, "jane.doe@example.test")
    validate_password("Tr4ff!c-L1ght-Banjo", None)
    # A short local part is no rule: "al" may well occur by chance.
    validate_password("almost a sentence here", "al@example.test")


def test_the_bundled_list_is_substantial_and_lower_case() -> None:
    words = common_passwords()
    assert len(words) > 5000
    assert {"password", "qwerty", "passwort", "letmein"} <= words
    assert all(w == w.lower() for w in words)


def test_verify_reports_old_parameters_with_a_new_hash() -> None:
    old = hash_password("a fine passphrase")
    assert verify_password(old, "wrong") == (False, None)
    assert verify_password(old, "a fine passphrase") == (True, None)
    assert verify_password("not a hash", "a fine passphrase") == (False, None)


async def test_login_rehashes_when_the_parameters_change(
    app, db: Database, settings: Settings
) -> None:
    user = await make_user(db)
    assert f"m={settings.argon2_memory_kib},t={settings.argon2_time_cost}," in (
        user.password_hash or ""
    )
    configure_hasher(time_cost=2, memory_kib=2048, parallelism=1)
    try:
        async with browser(app) as http:
            await sign_in(http, user.email)
        async with db.session(Scope.for_system()) as session:
            stored = (await session.execute(select(User).where(User.id == user.id))).scalar_one()
        assert stored.password_hash != user.password_hash
        assert "$argon2id$" in (stored.password_hash or "")
        assert "m=2048,t=2,p=1" in (stored.password_hash or "")
        async with browser(app) as http:
            await sign_in(http, user.email)
    finally:
        configure_hasher(
            settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
        )
