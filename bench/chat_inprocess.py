"""The chat turn's own work, without sockets: the ASGI app driven in this process by one
visitor after another on the offline engine (SQLite, or ``--backend postgres``; the worker
off), each conversation the chat benchmark's script (a start and five turns). On PostgreSQL
the database's own work is in its processes, not counted here. ``--engine stub`` talks to the
chat benchmark's zero-latency OpenAI-compatible stub instead (its own process, not counted
either): the provider path's own work, the SDK's request and the streamed answer's parsing.

Prints the CPU time of each kind of request (median, µs) and of a whole conversation (ms),
per round. The host's speed moves these figures from minute to minute on a shared VM, so
``--instructions`` counts instead what does not move with it: the instructions one
conversation executes, with valgrind (cachegrind without its cache simulation). It runs this
script twice under valgrind, with ``--conversations`` 10 and 10 + ``--count``, and divides the
difference (start-up, migrations and warm-up cancel out) by ``--count``. About 10 minutes.

    .venv/bin/python bench/chat_inprocess.py [--conversations 300] [--rounds 3]
    .venv/bin/python bench/chat_inprocess.py --instructions [--count 100] [--backend postgres]
        [--engine stub]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chat import SCRIPT, UNLIMITED, agent_body, start_stub, stub_connection_body
from common import SECRET, drop_database, fresh_database, seed_owner, vacuum_analyze

HEADERS = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")]


class InProcessClient:
    """Requests straight into the ASGI app: one body in, the whole response out."""

    def __init__(self, app: Any, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state

    async def request(
        self, method: str, path: str, body: object, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        raw = json.dumps(body).encode()
        extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [*HEADERS, (b"content-length", str(len(raw)).encode()), *extra],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": dict(self.state),
        }
        received = False

        async def receive() -> dict[str, Any]:
            nonlocal received
            if received:  # the app waits for a disconnect only after its answer
                await asyncio.Event().wait()
            received = True
            return {"type": "http.request", "body": raw, "more_body": False}

        status = 0
        chunks: list[bytes] = []

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(chunks)

    async def json(self, method: str, path: str, body: object, headers: dict[str, str]) -> Any:
        status, answer = await self.request(method, path, body, headers)
        if status >= 300:
            raise SystemExit(f"{method} {path}: {status} {answer[:200]!r}")
        return json.loads(answer)


KINDS = ["start", *(f"turn {i}" for i in range(1, len(SCRIPT) + 1))]


async def conversation(http: InProcessClient, key: str, times: dict[str, list[float]]) -> None:
    began = time.thread_time()
    started = await http.json(
        "POST", f"/api/v1/public/agents/{key}/conversations", {"consent": True}, {}
    )
    times["start"].append(time.thread_time() - began)
    headers = {"authorization": f"Bearer {started['token']}", "accept": "text/event-stream"}
    path = f"/api/v1/public/conversations/{started['conversation_id']}/messages"
    for kind, text in zip(KINDS[1:], SCRIPT, strict=True):
        began = time.thread_time()
        status, _ = await http.request("POST", path, {"text": text}, headers)
        if status != 200:
            raise SystemExit(f"{kind}: {status}")
        times[kind].append(time.thread_time() - began)


async def run(
    folder: Path,
    url: str,
    agency_id: str,
    token: str,
    args: argparse.Namespace,
    stub_url: str | None = None,
) -> None:
    os.environ.update(UNLIMITED)
    import demandly.kit.sqlite
    from demandly.app import create_app
    from demandly.config import Settings

    # Under valgrind every statement runs past the inline limit and would go to a thread.
    demandly.kit.sqlite.INLINE_LIMIT_S = 1e9
    settings = Settings(
        database_url=url, data_dir=folder, secret_key=SECRET, worker_in_process=False
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app) as state:
        http = InProcessClient(app, dict(state or {}))
        owner = {"authorization": f"Bearer {token}"}
        client = await http.json(
            "POST", "/api/v1/clients", {"agency_id": agency_id, "name": "Bench"}, owner
        )
        connection_id = None
        if stub_url is not None:
            body = stub_connection_body(agency_id, stub_url)
            connection = await http.json("POST", "/api/v1/provider-connections", body, owner)
            connection_id = connection["id"]
        body = agent_body(client["id"], connection_id)
        agent = await http.json("POST", "/api/v1/agents", body, owner)
        await http.json("POST", f"/api/v1/agents/{agent['id']}/publish", {}, owner)
        for _ in range(30):  # warm-up
            await conversation(http, agent["public_key"], {kind: [] for kind in KINDS})
        # The statistics a production database's autovacuum keeps (the test server's is off).
        vacuum_analyze(url)
        for _ in range(args.rounds):
            times: dict[str, list[float]] = {kind: [] for kind in KINDS}
            began = time.thread_time()
            for _ in range(args.conversations):
                await conversation(http, agent["public_key"], times)
            per_conversation = (time.thread_time() - began) / args.conversations
            medians = "  ".join(f"{k} {statistics.median(v) * 1e6:.0f}" for k, v in times.items())
            print(f"µs: {medians}  |  conversation {per_conversation * 1e3:.1f} ms", flush=True)


def inprocess(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="chat-inprocess-"))
    url = fresh_database(args.backend, folder)
    agency_id, token = seed_owner(url, folder)
    stub, stub_url = start_stub() if args.engine == "stub" else (None, None)
    try:
        import uvloop

        uvloop.run(run(folder, url, agency_id, token, args, stub_url))
    finally:
        if stub is not None:
            stub.terminate()
        drop_database(url)
        shutil.rmtree(folder, ignore_errors=True)


def instructions_of(conversations: int, args: argparse.Namespace) -> int:
    command = [
        "valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
        sys.executable, __file__, "--conversations", str(conversations), "--rounds", "1",
        "--backend", args.backend, "--engine", args.engine,
    ]  # fmt: skip
    # A fixed hash seed: set and dict orders, and so the work, the same in both runs.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise SystemExit(done.stderr[-2000:])
    return int(found.group(1).replace(",", ""))


def instructions(args: argparse.Namespace) -> None:
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install valgrind")
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        few, more = pool.map(instructions_of, (10, 10 + args.count), [args] * 2)
    per_conversation = (more - few) / args.count
    print(
        f"{per_conversation / 1e6:.2f} M instructions per conversation "
        f"(a start and {len(SCRIPT)} turns; {per_conversation / len(SCRIPT) / 1e6:.2f} M per turn)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instructions", action="store_true")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--engine", choices=("offline", "stub"), default="offline")
    args = parser.parse_args()
    if args.instructions:
        instructions(args)
    else:
        inprocess(args)


if __name__ == "__main__":
    main()
