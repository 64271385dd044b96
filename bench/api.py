"""API benchmark: requests/s and p50/p99 latency of an authenticated ``GET /api/v1/me`` and of
``POST /api/v1/clients``, at concurrency 1 and 32, on SQLite and PostgreSQL, against one
server process on 127.0.0.1 with wrk as the load generator.

    .venv/bin/python bench/api.py [--seconds 10] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from common import (
    drop_database,
    fresh_database,
    run_wrk,
    seed_owner,
    session_cookie,
    start_server,
)
from rich.console import Console
from rich.table import Table

CREATE_CLIENT_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
counter = 0
request = function()
  counter = counter + 1
  local body = '{"agency_id":"%s","name":"Bench client ' .. counter
    .. '","timezone":"Europe/Berlin","locale":"de"}'
  return wrk.format(nil, nil, nil, body)
end
"""


def bench_backend(backend: str, seconds: int) -> list[dict[str, object]]:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-{backend}-"))
    url = fresh_database(backend, folder)
    agency_id, token = seed_owner(url, folder)
    server = start_server(url, folder)
    rows: list[dict[str, object]] = []
    key = {"Authorization": f"Bearer {token}"}
    try:
        cookie = {"Cookie": session_cookie(server.url)}
        for name, path, script, headers in (
            ("GET /api/v1/me (API key)", "/api/v1/me", None, key),
            ("GET /api/v1/me (session)", "/api/v1/me", None, cookie),
            ("POST /api/v1/clients", "/api/v1/clients", CREATE_CLIENT_LUA % agency_id, key),
        ):
            # Warm-up (caches, first compiles, connection pool), not measured.
            run_wrk(server.url + path, connections=32, seconds=2, headers=headers, script=script)
            for connections in (1, 32):
                result = run_wrk(
                    server.url + path,
                    connections=connections,
                    seconds=seconds,
                    headers=headers,
                    script=script,
                )
                rows.append(
                    {
                        "backend": backend,
                        "request": name,
                        "concurrency": connections,
                        "rps": round(result.requests_per_second),
                        "p50_ms": round(result.p50_ms, 2),
                        "p99_ms": round(result.p99_ms, 2),
                        "non_2xx": result.non_2xx,
                        "errors": result.errors,
                    }
                )
    finally:
        server.stop()
        drop_database(url)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = [row for b in args.backends.split(",") for row in bench_backend(b, args.seconds)]
    table = Table(title=f"API benchmark ({platform.node()}, {datetime.now(UTC):%Y-%m-%d})")
    for column in (
        "backend",
        "request",
        "concurrency",
        "rps",
        "p50_ms",
        "p99_ms",
        "non_2xx",
        "errors",
    ):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) for c in row))
    Console().print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
