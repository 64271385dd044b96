"""Chat benchmark: simulated visitors over HTTP (public chat API, SSE) against one server
process, on the offline engine and on a zero-latency OpenAI-compatible stub (its own process).

Reports turns/s and, per turn, the time to the first streamed byte of the answer (TTFB) and
to the end of the turn, p50/p99, at 1, 50 and 200 concurrent conversations, on SQLite and
PostgreSQL, and the server process's CPU time per turn (utime + stime from /proc over the
measured run, divided by the turns). The platform's own overhead is TTFB minus the
provider's time to its first token; the stub answers at once (its own time is below a
millisecond), so TTFB is an upper bound of the overhead.

Visitors send their next message as soon as the answer is complete (``--think 0``: the
process's capacity, turns/s), or after a pause of ``think`` seconds on average (uniform from
half to one and a half times it, so the visitors do not fall into step): the overhead at a
number of conversations as people hold them, who read and type. With no pause, a closed loop
of N visitors waits N / (turns/s) per turn by Little's law (200 ms at 50 conversations and
250 turns/s), whatever the platform's own overhead.

Each visitor holds one keep-alive connection and speaks HTTP/1.1 itself (``lean_http.py``):
``httpx`` spent about 2 ms of the client's own time per round trip here, which a visitor's
browser does not, and which the TTFB counted as the platform's.

    .venv/bin/python bench/chat.py [--seconds 10] [--backends sqlite,postgres] [--think 0,1]
        [--levels 1,50,200] [--engines "offline,openai stub"]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from common import (
    Server,
    drop_database,
    fresh_database,
    pause,
    seed_owner,
    start_server,
    vacuum_analyze,
)
from lean_http import Connection, HttpError
from rich.console import Console
from rich.table import Table

API = "/api/v1"
ROOT = Path(__file__).resolve().parents[1]
SCRIPT = [
    "Hallo, ich hätte gern einen Termin.",
    "Ich bin Max Muster",
    "max.muster@example.com",
    "Bieten Sie Zahnreinigung an?",
    "Danke, auf Wiedersehen",
]
UNLIMITED = {
    "DEMANDLY_PUBLIC_CONVERSATIONS_PER_IP": "100000000",
    "DEMANDLY_PUBLIC_MESSAGES_PER_IP": "100000000",
    "DEMANDLY_PUBLIC_MESSAGES_PER_CONVERSATION": "100000000",
}


def agent_body(client_id: str, connection_id: str | None) -> dict[str, object]:
    return {
        "client_id": client_id,
        "name": "Bench",
        "kind": "chat",
        "language": "de",
        "persona_name": "Lena",
        "qualification": [
            {"key": "name", "label": {"de": "Name"}, "type": "text"},
            {"key": "email", "label": {"de": "E-Mail"}, "type": "email"},
        ],
        "faq": [{"question": "Bieten Sie Zahnreinigung an?", "answer": "Ja, für 89 Euro."}],
        "llm": {"connection_id": connection_id},
    }


def stub_connection_body(agency_id: str, stub_url: str) -> dict[str, str]:
    """The agency's provider connection to the zero-latency stub."""
    return {
        "agency_id": agency_id,
        "name": "stub",
        "base_url": stub_url,
        "api_key": "sk-bench-0000000000",
        "default_model": "stub",
        "region": "eu",
    }


async def make_agents(server_url: str, token: str, agency_id: str, stub_url: str) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server_url, headers=headers) as http:
        client = (
            await http.post(f"{API}/clients", json={"agency_id": agency_id, "name": "Bench"})
        ).json()
        body = stub_connection_body(agency_id, stub_url)
        connection = (await http.post(f"{API}/provider-connections", json=body)).json()
        keys = {}
        for engine, connection_id in (("offline", None), ("openai stub", connection["id"])):
            agent = (
                await http.post(f"{API}/agents", json=agent_body(client["id"], connection_id))
            ).json()
            await http.post(f"{API}/agents/{agent['id']}/publish")
            keys[engine] = agent["public_key"]
        return keys


async def visitor(
    server_url: str,
    key: str,
    until: float,
    samples: list[tuple[float, float]],
    errors: list[str],
    think: float = 0.0,
) -> None:
    """One visitor after another on one keep-alive connection (a new one after an error)."""
    connection = None
    while time.perf_counter() < until:
        try:
            connection = connection or await Connection.open(server_url)
            await conversation(connection, key, until, samples, think)
        except (HttpError, OSError, asyncio.IncompleteReadError, KeyError, ValueError) as exc:
            errors.append(type(exc).__name__)
            if connection is not None:
                connection.close()
            connection = None
    if connection is not None:
        connection.close()


async def conversation(
    connection: Connection,
    key: str,
    until: float,
    samples: list[tuple[float, float]],
    think: float = 0.0,
) -> None:
    """One visitor's conversation through the script (until time is up)."""
    started = await connection.post_json(
        f"{API}/public/agents/{key}/conversations", {"consent": True}
    )
    auth = {"Authorization": f"Bearer {started['token']}"}
    url = f"{API}/public/conversations/{started['conversation_id']}/messages"
    for text in SCRIPT:
        await pause(think)
        if time.perf_counter() >= until:
            return
        sent = time.perf_counter()
        first = await connection.post_events(url, {"text": text}, auth, b"event: delta")
        done = time.perf_counter()
        samples.append(((first or done) - sent, done - sent))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000 if ordered else float("nan")


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user + system), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    server: Server,
    database_url: str,
    key: str,
    concurrency: int,
    seconds: float,
    think: float,
) -> dict[str, float]:
    server_url, server_pid = server.url, server.process.pid
    warm: list[tuple[float, float]] = []
    errors: list[str] = []
    warm_until = time.perf_counter() + 1.5 + think
    await asyncio.gather(
        *(visitor(server_url, key, warm_until, warm, [], think) for _ in range(concurrency))
    )
    # The statistics a production database's autovacuum keeps (the test server's is off).
    vacuum_analyze(database_url)
    samples: list[tuple[float, float]] = []
    cpu_before = cpu_seconds(server_pid)
    began = time.perf_counter()
    until = began + seconds
    await asyncio.gather(
        *(visitor(server_url, key, until, samples, errors, think) for _ in range(concurrency))
    )
    elapsed = time.perf_counter() - began
    server_cpu = cpu_seconds(server_pid) - cpu_before
    ttfb = [s[0] for s in samples]
    total = [s[1] for s in samples]
    return {
        "turns_per_s": round(len(samples) / elapsed, 1),
        "ttfb_p50_ms": round(percentile(ttfb, 0.5), 1),
        "ttfb_p99_ms": round(percentile(ttfb, 0.99), 1),
        "turn_p50_ms": round(percentile(total, 0.5), 1),
        "turn_p99_ms": round(percentile(total, 0.99), 1),
        "turns": len(samples),
        # The server's CPU per turn (its share of starting conversations included).
        "server_cpu_ms_per_turn": round(server_cpu * 1000 / max(1, len(samples)), 2),
        "errors": len(errors),
    }


def start_stub() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.engine.openai_stub", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def bench_backend(
    backend: str, seconds: float, levels: list[int], thinks: list[float], engines: list[str]
) -> list[dict[str, object]]:
    folder = Path(tempfile.mkdtemp(prefix=f"chat-{backend}-"))
    url = fresh_database(backend, folder)
    agency_id, token = seed_owner(url, folder)
    stub, stub_url = start_stub()
    server = start_server(url, folder, UNLIMITED)
    rows: list[dict[str, object]] = []
    try:
        keys = asyncio.run(make_agents(server.url, token, agency_id, stub_url))
        for engine, key in keys.items():
            if engine not in engines:
                continue
            for think in thinks:
                for concurrency in levels:
                    result = asyncio.run(measure(server, url, key, concurrency, seconds, think))
                    rows.append(
                        {
                            "backend": backend,
                            "engine": engine,
                            "concurrency": concurrency,
                            "think_s": think,
                            **result,
                        }
                    )
                    print(rows[-1], flush=True)
    finally:
        server.stop()
        stub.terminate()
        drop_database(url)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--levels", default="1,50,200")
    parser.add_argument(
        "--think", default="0", help="visitors' mean pause before each message, seconds"
    )
    parser.add_argument("--engines", default="offline,openai stub")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    thinks = [float(x) for x in args.think.split(",")]
    engines = args.engines.split(",")
    rows = [
        r
        for b in args.backends.split(",")
        for r in bench_backend(b, args.seconds, levels, thinks, engines)
    ]
    table = Table(title=f"Chat benchmark ({platform.node()}, {datetime.now(UTC):%Y-%m-%d})")
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console().print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
