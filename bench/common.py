"""Shared bench plumbing: a fresh database, a seeded tenant, a real server, wrk as the load."""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from demandly.kit.devserver import ServerProcess
from demandly.kit.devserver import start_server as start_process

PG_URL = os.environ.get(
    "DEMANDLY_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
SECRET = "b1:bench-master-key"


Server = ServerProcess


def fresh_database(backend: str, folder: Path) -> str:
    from demandly.kit.migrations import upgrade_to_head

    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    else:
        name = f"demandly_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_URL.replace("+asyncpg", "+psycopg2"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade_to_head(url)
    return url


def drop_database(url: str) -> None:
    if url.startswith("postgresql"):
        name = url.rsplit("/", 1)[1]
        admin = create_engine(PG_URL.replace("+asyncpg", "+psycopg2"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def vacuum_analyze(url: str, *tables: str) -> None:
    """What autovacuum does on a production PostgreSQL, and the test server (autovacuum off)
    never does: VACUUM ANALYZE of ``tables`` (all, when none are named). Without statistics
    the planner guesses: it read a conversation's messages through a bitmap of the agency's
    and the client's indexes (every message of the client) instead of the conversation's
    own index, 2 ms instead of 0.04. Nothing on SQLite."""
    if not url.startswith("postgresql"):
        return
    engine = create_engine(url.replace("+asyncpg", "+psycopg2"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"VACUUM ANALYZE {', '.join(tables)}"))
    engine.dispose()


def env_for(url: str, data_dir: Path) -> dict[str, str]:
    return {
        "DEMANDLY_DATABASE_URL": url,
        "DEMANDLY_DATA_DIR": str(data_dir),
        "DEMANDLY_SECRET_KEY": SECRET,
        "DEMANDLY_LOG_LEVEL": "WARNING",
    }


def start_server(url: str, data_dir: Path, extra_env: dict[str, str] | None = None) -> Server:
    return start_process({**env_for(url, data_dir), **(extra_env or {})})


BENCH_EMAIL = "owner@bench.example"
BENCH_PASSWORD = "bench owner passphrase 2026"


def seed_owner(url: str, data_dir: Path) -> tuple[str, str]:
    """An agency with an owner API key and an owner user (BENCH_EMAIL, BENCH_PASSWORD):
    (agency_id, bearer token)."""
    os.environ.update(env_for(url, data_dir))
    from demandly.app import configure_runtime, create_database
    from demandly.auth.models import ApiKey
    from demandly.auth.passwords import hash_password
    from demandly.config import Settings
    from demandly.kit.context import Scope
    from demandly.kit.crypto import hash_token
    from demandly.kit.ids import random_token
    from demandly.tenancy.models import Agency, Membership, Role, User

    settings = Settings(database_url=url, data_dir=data_dir, secret_key=SECRET)
    configure_runtime(settings)

    async def _seed() -> tuple[str, str]:
        db = create_database(settings)
        token = random_token("dmd_")
        async with db.session(Scope.for_system()) as session:
            agency = Agency(name="Bench Agency", slug=f"bench-{uuid.uuid4().hex[:6]}", branding={})
            session.add(agency)
            await session.flush()
            session.add(
                ApiKey(
                    name="bench",
                    key_hash=hash_token(token),
                    display_prefix=token[:8],
                    role=Role.AGENCY_OWNER.value,
                    agency_id=agency.id,
                )
            )
            user = User(
                email=BENCH_EMAIL, name="Bench", password_hash=hash_password(BENCH_PASSWORD)
            )
            session.add(user)
            await session.flush()
            session.add(
                Membership(user_id=user.id, agency_id=agency.id, role=Role.AGENCY_OWNER.value)
            )
            await session.commit()
            agency_id = agency.id
        await db.dispose()
        return agency_id, token

    return asyncio.run(_seed())


def session_cookie(server_url: str) -> str:
    """Log the bench owner in; the Cookie header value of the session."""
    response = httpx.post(
        f"{server_url}/api/v1/auth/login",
        json={"email": BENCH_EMAIL, "password": BENCH_PASSWORD},
        timeout=10,
    )
    response.raise_for_status()
    return f"dmd_session={response.cookies['dmd_session']}"


@dataclass
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: int


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(
    url: str, *, connections: int, seconds: int, headers: dict[str, str], script: str | None = None
) -> WrkResult:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (make bench does it)")
    threads = max(1, min(2, connections))
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    for key, value in headers.items():
        command += ["-H", f"{key}: {value}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script or "")
    if script:
        command += ["-s", handle.name]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:.*?(\d+).*?(\d+).*?(\d+).*?(\d+)", output)
    return WrkResult(
        requests_per_second=rps,
        p50_ms=p50,
        p99_ms=p99,
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        errors=sum(int(x) for x in errors.groups()) if errors else 0,
    )


async def pause(mean: float) -> None:
    """A person's pause before their next message: uniform from half to one and a half times
    ``mean`` seconds, so that simulated people do not fall into step (none for 0)."""
    if mean > 0:
        await asyncio.sleep(random.uniform(0.5, 1.5) * mean)
