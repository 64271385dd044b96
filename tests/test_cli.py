"""The ``demandly`` command on a fresh database of each backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from demandly.cli import app
from demandly.config import Settings, reset_settings_cache
from demandly.kit.db import Database
from tests.conftest import TEST_SECRET_KEY

runner = CliRunner()


@pytest.fixture
def cli_env(
    fresh_db: tuple[Database, Settings], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    _, settings = fresh_db
    monkeypatch.setenv("DEMANDLY_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("DEMANDLY_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("DEMANDLY_SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("DEMANDLY_ARGON2_MEMORY_KIB", "1024")
    monkeypatch.setenv("DEMANDLY_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("DEMANDLY_LOG_LEVEL", "WARNING")
    reset_settings_cache()
    yield settings
    reset_settings_cache()


def test_migrate_is_repeatable(cli_env: Settings) -> None:
    for _ in range(2):
        result = runner.invoke(app, ["migrate"])
        assert result.exit_code == 0, result.output
        assert "newest migration" in result.output


def test_demo_seeds_once_and_prints_logins(cli_env: Settings) -> None:
    first = runner.invoke(app, ["demo"])
    assert first.exit_code == 0, first.output
    assert "owner@nordlicht.example" in first.output
    second = runner.invoke(app, ["demo"])
    assert second.exit_code == 0, second.output


def test_demo_logins_work(cli_env: Settings) -> None:
    import asyncio

    import httpx

    from demandly.app import create_app
    from demandly.bootstrap import DEMO_LOGINS

    assert runner.invoke(app, ["demo"]).exit_code == 0

    async def login_all() -> list[int]:
        application = create_app(cli_env)
        transport = httpx.ASGITransport(app=application)
        statuses = []
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            for login in DEMO_LOGINS:
                response = await http.post(
                    "/api/v1/auth/login", json={"email": login.email, "password": login.password}
                )
                statuses.append(response.status_code)
        await application.state.db.dispose()
        return statuses

    assert asyncio.run(login_all()) == [200, 200, 200]


def test_create_admin(cli_env: Settings) -> None:
    ok = runner.invoke(
        app, ["create-admin", "--email", "root@example.test", "--password", "a long admin phrase 9"]
    )
    assert ok.exit_code == 0, ok.output
    again = runner.invoke(
        app, ["create-admin", "--email", "root@example.test", "--password", "a long admin phrase 9"]
    )
    assert again.exit_code == 2 and "exists" in again.output


def test_create_admin_refuses_a_weak_password(cli_env: Settings) -> None:
    result = runner.invoke(
        app, ["create-admin", "--email", "x@example.test", "--password", "short"]
    )
    assert result.exit_code == 2
    assert "12" in result.output


def test_audit_verify_after_the_demo(cli_env: Settings) -> None:
    assert runner.invoke(app, ["demo"]).exit_code == 0
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 0, result.output
