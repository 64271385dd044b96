"""Test fixtures: every test runs on SQLite and on PostgreSQL (a fresh database per run).

Backends come from ``DEMANDLY_TEST_BACKENDS`` (default ``sqlite,postgres``); PostgreSQL from
``DEMANDLY_TEST_PG_URL``. Tests share one migrated database per backend and create their own
tenants, so they never depend on each other's rows; ``fresh_db`` gives a test its own database.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, event, text

from demandly.app import configure_runtime, create_app, create_database
from demandly.config import Settings
from demandly.kit.db import Database
from demandly.kit.devserver import ServerProcess
from demandly.kit.devserver import start_server as start_process
from demandly.kit.migrations import upgrade_to_head
from tests.factories import World, build_world

BACKENDS = [b for b in os.environ.get("DEMANDLY_TEST_BACKENDS", "sqlite,postgres").split(",") if b]
PG_URL = os.environ.get("DEMANDLY_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
TEST_SECRET_KEY = "t1:test-master-key-not-for-production"


def _pg_admin_url() -> str:
    return PG_URL.replace("+asyncpg", "+psycopg2")


def create_test_database(backend: str, folder: Path) -> str:
    """A new, migrated, empty database; returns its async URL."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{folder / f'test-{uuid.uuid4().hex[:8]}.db'}"
    else:
        name = f"demandly_test_{uuid.uuid4().hex[:12]}"
        admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade_to_head(url)
    return url


def drop_test_database(url: str) -> None:
    if not url.startswith("postgresql"):
        return
    name = url.rsplit("/", 1)[1]
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def make_settings(url: str, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": url,
        "data_dir": data_dir,
        "secret_key": TEST_SECRET_KEY,
        "worker_in_process": False,
        "log_json": True,
        "log_level": "WARNING",
        "argon2_memory_kib": 1024,
        "argon2_time_cost": 1,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = create_test_database(backend, tmp_path_factory.mktemp(backend))
    yield url
    drop_test_database(url)


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(database_url, tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
async def db(settings: Settings) -> AsyncIterator[Database]:
    configure_runtime(settings)
    database = create_database(settings)
    yield database
    await database.dispose()


@pytest.fixture(scope="session")
def app(settings: Settings, db: Database):  # type: ignore[no-untyped-def]
    return create_app(settings, database=db)


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture(scope="session")
async def world(db: Database) -> World:
    """Two agencies with users and API keys of every role (see tests/factories.py)."""
    return await build_world(db)


LiveServer = ServerProcess


def start_server(settings: Settings, log_path: Path, **env: str) -> LiveServer:
    """The app over real HTTP in its own process, on the test database."""
    return start_process(
        {
            "DEMANDLY_DATABASE_URL": settings.effective_database_url,
            "DEMANDLY_DATA_DIR": str(settings.data_dir),
            "DEMANDLY_SECRET_KEY": TEST_SECRET_KEY,
            **env,
        },
        log_path,
    )


class _TwilioRefusingEveryone(BaseHTTPRequestHandler):
    """Twilio's answer to credentials it does not know (what generated input sends)."""

    def _refuse(self) -> None:
        body = b'{"code": 20003, "message": "Authenticate", "status": 401}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _refuse

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def twilio_refusing_everyone() -> Iterator[str]:
    """A local stand-in for Twilio's REST API that accepts no credentials, so a live server
    never reaches out to the internet."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TwilioRefusingEveryone)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="session")
def live_server(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory, twilio_refusing_everyone: str
) -> Iterator[LiveServer]:
    server = start_server(
        settings,
        tmp_path_factory.mktemp("server") / "server.log",
        DEMANDLY_TWILIO_API_BASE_URL=twilio_refusing_everyone,
        # Jobs are the tests' to run: a worker here would take other tests' queued jobs.
        DEMANDLY_WORKER_IN_PROCESS="false",
    )
    yield server
    server.stop()


@pytest.fixture
async def fresh_db(backend: str, tmp_path: Path) -> AsyncIterator[tuple[Database, Settings]]:
    """A database of the test's own, migrated and empty."""
    url = create_test_database(backend, tmp_path)
    settings = make_settings(url, tmp_path)
    database = create_database(settings)
    yield database, settings
    await database.dispose()
    drop_test_database(url)


@pytest.fixture
def sent(db: Database) -> Iterator[list[str]]:
    """The statements the application sends through SQLAlchemy's cursor during the test (a
    ``BEGIN`` carrying the settings is not one of them: it goes to asyncpg as one message;
    nor is a Core statement run again, which goes straight to the driver, ``kit.prepared``)."""
    statements: list[str] = []

    def keep(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", keep)
    yield statements
    event.remove(db.engine.sync_engine, "before_cursor_execute", keep)
