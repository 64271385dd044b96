"""Phone benchmark, part (a): the gather-mode webhook round trip on the offline engine.

Simulated Twilio callers against one server process on 127.0.0.1: each call posts the signed
incoming webhook, then follows every ``<Gather>`` action with the next utterance (each post
signed like Twilio signs it). Measured: the time of each gather round trip (one engine turn
and its TwiML), p50/p99, at 1 and 20 concurrent calls, on SQLite and PostgreSQL. Goal:
p99 <= 50 ms.

Callers answer at once (``--speak 0``: what one process can take), or after ``speak`` seconds
on average (uniform from half to one and a half times it): the time a caller talks and Twilio
waits for the end of speech, seconds on a real call. With no pause, N callers form a closed
loop and each waits N / (turns/s) for its turn, whatever one round trip costs.

    .venv/bin/python bench/phone_gather.py [--seconds 10] [--backends sqlite,postgres]
        [--levels 1,20] [--speak 0,2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import httpx
from common import drop_database, fresh_database, pause, seed_owner, start_server
from rich.console import Console
from rich.table import Table
from twilio.request_validator import RequestValidator

API = "/api/v1"
ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = secrets.token_hex(16)
SCRIPT = [
    "Hallo, ich hätte gern einen Termin.",
    "Ich bin Max Muster",
    "max.muster@example.com",
    "Bieten Sie Zahnreinigung an?",
    "Danke, auf Wiedersehen",
]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def make_agent(server_url: str, token: str, agency_id: str) -> str:
    """A published phone agent of a new client: its number."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server_url, headers=headers, timeout=30) as http:
        client = (
            await http.post(f"{API}/clients", json={"agency_id": agency_id, "name": "Praxis"})
        ).json()
        body = {
            "client_id": client["id"],
            "name": "Telefon",
            "kind": "phone",
            "language": "de",
            "persona_name": "Lena",
            "qualification": [
                {"key": "name", "label": {"de": "Name"}, "type": "text"},
                {"key": "email", "label": {"de": "E-Mail"}, "type": "email"},
            ],
            "faq": [{"question": "Bieten Sie Zahnreinigung an?", "answer": "Ja, für 89 Euro."}],
        }
        agent = (await http.post(f"{API}/agents", json=body)).json()
        await http.post(f"{API}/agents/{agent['id']}/publish")
    return await _number(agency_id, client["id"], agent["id"])


async def _number(agency_id: str, client_id: str, agent_id: str) -> str:
    """The connection and number rows (Twilio itself is not part of the measurement)."""
    from demandly.app import create_database
    from demandly.channels.phone.models import PhoneNumber, TwilioConnection
    from demandly.config import Settings
    from demandly.kit.context import Scope

    db = create_database(Settings())
    number = f"+4930{secrets.randbelow(10**8):08d}"
    async with db.session(Scope.for_agency(agency_id)) as session:
        connection = TwilioConnection(
            agency_id=agency_id, name="Bench", account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN
        )
        session.add(connection)
        await session.flush()
        session.add(
            PhoneNumber(
                agency_id=agency_id,
                client_id=client_id,
                connection_id=connection.id,
                twilio_sid="PN" + secrets.token_hex(16),
                number=number,
                agent_id=agent_id,
            )
        )
        await session.commit()
    await db.dispose()
    return number


async def _post(http: httpx.AsyncClient, url: str, params: dict[str, str]) -> str:
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    response = await http.post(url, data=params, headers={"X-Twilio-Signature": signature})
    response.raise_for_status()
    return response.text


async def one_call(
    http: httpx.AsyncClient, server_url: str, number: str, speak: float = 0.0
) -> list[tuple[int, float]]:
    """One call through the script; each gather round trip (script step, milliseconds)."""
    params = {
        "CallSid": "CA" + secrets.token_hex(16),
        "AccountSid": ACCOUNT_SID,
        "From": "+4917612345678",
        "To": number,
        "Direction": "inbound",
    }
    document = await _post(http, f"{server_url}/twilio/voice/incoming", params)
    timings = []
    for step, text in enumerate(SCRIPT):
        gather = ET.fromstring(document).find("Gather")
        if gather is None:
            break
        await pause(speak)
        started = time.perf_counter()
        document = await _post(http, gather.get("action", ""), {**params, "SpeechResult": text})
        timings.append((step, (time.perf_counter() - started) * 1000))
    return timings


async def measure(
    server_url: str, number: str, concurrency: int, seconds: float, speak: float = 0.0
) -> dict[str, float]:
    timings: list[tuple[int, float]] = []
    began = time.perf_counter()
    deadline = began + seconds

    async def caller() -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            while time.perf_counter() < deadline:
                timings.extend(await one_call(http, server_url, number, speak))

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    every = [ms for _, ms in timings]
    return {
        "turns": len(every),
        "turns_per_s": round(len(every) / (time.perf_counter() - began), 1),
        "p50_ms": round(percentile(every, 50), 2),
        "p99_ms": round(percentile(every, 99), 2),
        "p50_by_step": [
            round(percentile([ms for step, ms in timings if step == index], 50), 1)
            for index in range(len(SCRIPT))
            if any(step == index for step, _ in timings)
        ],
    }


def bench_backend(
    backend: str, seconds: float, levels: list[int], speaks: list[float]
) -> list[dict[str, object]]:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-phone-{backend}-"))
    url = fresh_database(backend, folder)
    agency_id, token = seed_owner(url, folder)
    server = start_server(url, folder)
    rows: list[dict[str, object]] = []
    try:
        number = asyncio.run(make_agent(server.url, token, agency_id))
        asyncio.run(measure(server.url, number, 4, 2))  # warm-up, not measured
        for speak in speaks:
            for level in levels:
                result = asyncio.run(measure(server.url, number, level, seconds, speak))
                rows.append(
                    {"backend": backend, "concurrent_calls": level, "speak_s": speak, **result}
                )
    finally:
        server.stop()
        drop_database(url)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--levels", default="1,20")
    parser.add_argument("--speak", default="0", help="callers' mean pause per utterance, s")
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    speaks = [float(speak) for speak in args.speak.split(",")]
    rows = [
        row
        for backend in args.backends.split(",")
        for row in bench_backend(backend, args.seconds, levels, speaks)
    ]
    columns = (
        "backend",
        "concurrent_calls",
        "speak_s",
        "turns",
        "turns_per_s",
        "p50_ms",
        "p99_ms",
        "p50_by_step",
    )
    table = Table(title="Gather-mode webhook round trip (offline engine)")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) for c in columns))
    Console().print(table)
    print(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
                "rows": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
