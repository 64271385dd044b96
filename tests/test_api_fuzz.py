"""Schemathesis against the live server's OpenAPI document: no generated input gets a 500."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from demandly.kit.db import Database
from tests.conftest import LiveServer
from tests.factories import Tenant, make_tenant

MAX_EXAMPLES = "15"


def run_schemathesis(
    server: LiveServer, report: Path, headers: list[str]
) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{server.url}/api/v1/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        MAX_EXAMPLES,
        "--seed",
        "20261126",
        "--generation-deterministic",
        "--request-timeout",
        "20",
        "--suppress-health-check",
        "all",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
        "--exclude-path-regex",
        "/auth/(logout|logout-all)$",
        # Its failed logins must not throttle the address the other tests log in from.
        "--header",
        "X-Forwarded-For: 10.255.255.1",
    ]
    for header in headers:
        command += ["--header", header]
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


@pytest.fixture
async def own_tenant(db: Database) -> Tenant:
    """An agency of the fuzzer's own: following the links between operations, it deletes what
    its key may delete (the agency's clients, and with them their keys), which must not be
    the shared world's."""
    return await make_tenant(db)


@pytest.mark.parametrize("who", ["anonymous", "agency_owner", "client_viewer"])
def test_no_input_produces_a_server_error(
    live_server: LiveServer, own_tenant: Tenant, who: str, tmp_path: Path
) -> None:
    headers = [] if who == "anonymous" else [f"Authorization: Bearer {own_tenant.keys[who]}"]
    result = run_schemathesis(live_server, tmp_path / "junit.xml", headers)
    server_log = live_server.log_path.read_text()[-3000:]
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:] + server_log
