"""Dashboard benchmark: server time of the pages a client's staff opens all day, on a big client.

One client with 10,000 conversations (4 messages each), 5,000 leads with their contacts and
500 appointments (±5 weeks), written with bulk Core inserts in batches (seconds, not minutes).
The app runs in-process behind ``httpx.ASGITransport`` (no sockets, no wrk: the time is the
app's own — routing, session, queries, templates), signed in through the login form like a
browser. Each page is requested ``--runs`` times after a warm-up, first page and a filtered
variant; the table shows p50/p95/max in milliseconds. Goal: p95 <= 100 ms.

    .venv/bin/python bench/dashboard.py [--backends sqlite,postgres] [--runs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import tempfile
import time as clock
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import common
from rich.console import Console
from rich.table import Table

BERLIN = ZoneInfo("Europe/Berlin")
CONVERSATIONS = 10_000
MESSAGES_PER_CONVERSATION = 4
LEADS = 5_000
APPOINTMENTS = 500
BATCH = 1_000
WARM_UP = 5
GOAL_MS = 100.0
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def id_at(prefix: str, moment: datetime, rng: random.Random) -> str:
    """A prefixed ULID for ``moment``: ids sort like the rows' times, as the app's do."""
    value = (int(moment.timestamp() * 1000) << 80) | rng.getrandbits(80)
    chars = []
    for _ in range(26):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return f"{prefix}_{''.join(reversed(chars))}"


def batches(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), BATCH):
        yield rows[start : start + BATCH]


# --- seeding ---------------------------------------------------------------------------------


async def seed(url: str, folder: Path, agency_id: str) -> dict[str, str]:
    """The client, its agent and calendar through the services; the volume by bulk insert."""
    from sqlalchemy import text

    from demandly.agents import schemas as agent_schemas
    from demandly.agents import service as agents
    from demandly.app import create_database
    from demandly.booking import schemas as booking_schemas
    from demandly.booking import service as booking
    from demandly.config import Settings
    from demandly.kit.context import Scope
    from demandly.tenancy.models import Client

    db = create_database(Settings(database_url=url, data_dir=folder, secret_key=common.SECRET))
    try:
        async with db.session(Scope.for_system()) as session:
            client = Client(agency_id=agency_id, name="Bench Praxis")
            session.add(client)
            await session.flush()
            agent = await agents.create_agent(
                session,
                client,
                agent_schemas.AgentCreate(
                    client_id=client.id, name="Lena", kind="chat", language="de"
                ),
            )
            await agents.publish(session, agent)
            calendar = await booking.create_calendar(
                session,
                client,
                booking_schemas.CalendarCreate(
                    client_id=client.id,
                    name="Behandlungen",
                    weekly_hours=[
                        {"weekday": d, "start": "08:00", "end": "18:00"} for d in range(5)
                    ],
                    event_types=[booking_schemas.EventTypeIn(name="Termin", duration_minutes=30)],
                ),
            )
            ids = {
                "agency_id": agency_id,
                "client_id": client.id,
                "agent_id": agent.id,
                "version_id": agent.current_version_id or "",
                "calendar_id": calendar.id,
            }
            await session.commit()
        async with db.session(Scope.for_system()) as session:
            for table, rows in volume(ids):
                for chunk in batches(rows):
                    await session.execute(table.insert(), chunk)
            await session.commit()
        if url.startswith("postgresql"):
            # Fresh statistics, as autovacuum would have them after such a load.
            async with db.session(Scope.for_system()) as session:
                await session.execute(text("ANALYZE"))
                await session.commit()
    finally:
        await db.dispose()
    return ids


def volume(ids: dict[str, str]) -> list[tuple[Any, list[dict[str, Any]]]]:
    """Rows of the big client, oldest first (ids follow the times)."""
    from demandly.booking.models import Appointment
    from demandly.conversations.models import Conversation, Message
    from demandly.leads.models import Contact, Lead

    rng = random.Random(7)
    now = datetime.now(UTC)
    tenant = {"agency_id": ids["agency_id"], "client_id": ids["client_id"]}
    conversations, messages = [], []
    times = sorted(
        now - timedelta(minutes=rng.randrange(60 * 24 * 180)) for _ in range(CONVERSATIONS)
    )
    for index, at in enumerate(times):
        conversation_id = id_at("conv", at, rng)
        status = rng.choices(("ended", "active", "handoff"), (85, 10, 5))[0]
        last = at + timedelta(minutes=3)
        conversations.append(
            {
                **tenant,
                "id": conversation_id,
                "created_at": at,
                "agent_id": ids["agent_id"],
                "agent_version_id": ids["version_id"],
                "channel": rng.choice(("web", "web", "phone", "test")),
                "status": status,
                "language": "de",
                "consent_at": at,
                "last_activity_at": last,
                "ended_at": last if status == "ended" else None,
                "end_reason": "idle" if status == "ended" else None,
                "lead_fields": {},
                "turns_without_progress": 0,
                "message_count": MESSAGES_PER_CONVERSATION,
            }
        )
        for seq in range(1, MESSAGES_PER_CONVERSATION + 1):
            messages.append(
                {
                    **tenant,
                    "id": id_at("msg", at + timedelta(seconds=seq * 20), rng),
                    "created_at": at + timedelta(seconds=seq * 20),
                    "conversation_id": conversation_id,
                    "seq": seq,
                    "role": "assistant" if seq % 2 else "user",
                    "content": f"Nachricht {seq} im Gespräch {index}: Ich hätte gern einen Termin.",
                    "tool_calls": [],
                    "quick_replies": [],
                    "sources": [],
                }
            )
    contacts, leads = [], []
    for index, conversation in enumerate(rng.sample(conversations, LEADS)):
        at = conversation["last_activity_at"]
        contact_id = id_at("ctc", at, rng)
        contacts.append(
            {
                **tenant,
                "id": contact_id,
                "created_at": at,
                "name": f"Kontakt {index}",
                "email": f"kontakt{index}@example.de",
                "phone": f"+49151{index:08d}",
                "source": "chat",
                "custom_fields": {},
            }
        )
        leads.append(
            {
                **tenant,
                "id": id_at("lead", at, rng),
                "created_at": at,
                "contact_id": contact_id,
                "agent_id": ids["agent_id"],
                "conversation_id": conversation["id"],
                "answers": {"name": f"Kontakt {index}", "concern": "Kontrolle"},
                "score": rng.randrange(0, 100),
                "status": rng.choice(("new", "qualified", "contacted", "won", "lost")),
                "tags": [],
            }
        )
    contacts.sort(key=lambda row: row["id"])
    leads.sort(key=lambda row: row["id"])
    return [
        (Conversation.__table__, conversations),
        (Message.__table__, messages),
        (Contact.__table__, contacts),
        (Lead.__table__, leads),
        (Appointment.__table__, appointments(ids, rng, now)),
    ]


def appointments(ids: dict[str, str], rng: random.Random, now: datetime) -> list[dict[str, Any]]:
    """Half-hour appointments on weekdays from five weeks back to five weeks ahead."""
    today = now.astimezone(BERLIN).date()
    days = [
        today + timedelta(days=d)
        for d in range(-35, 36)
        if (today + timedelta(days=d)).weekday() < 5
    ]
    starts = sorted(
        {
            datetime.combine(
                rng.choice(days), time(8 + rng.randrange(10), rng.choice((0, 30))), BERLIN
            )
            for _ in range(APPOINTMENTS * 2)
        }
    )[:APPOINTMENTS]
    rows = []
    for index, start in enumerate(starts):
        appointment_id = id_at("apt", now - timedelta(days=40) + timedelta(minutes=index), rng)
        rows.append(
            {
                "agency_id": ids["agency_id"],
                "client_id": ids["client_id"],
                "id": appointment_id,
                "calendar_id": ids["calendar_id"],
                "start_at": start.astimezone(UTC),
                "end_at": (start + timedelta(minutes=30)).astimezone(UTC),
                "status": rng.choices(("confirmed", "cancelled", "completed"), (80, 10, 10))[0],
                "attendee_name": f"Patient {index}",
                "attendee_phone": f"+49171{index:07d}",
                "source": "api",
                "uid": f"{appointment_id}@bench.example",
                "sequence": 0,
            }
        )
    return rows


# --- measuring -------------------------------------------------------------------------------


def monday_in(weeks: int) -> date:
    today = datetime.now(BERLIN).date()
    return today - timedelta(days=today.weekday()) + timedelta(weeks=weeks)


def pages(client_id: str) -> list[tuple[str, str, str]]:
    """(name, path, text the page must show: the rows are really there)."""
    base = f"/app/clients/{client_id}"
    leads = f"{base}/leads?status=qualified&min_score=50"
    return [
        ("inbox", f"{base}/inbox", "/inbox/conv_"),
        (
            "inbox ?status=ended&channel=web",
            f"{base}/inbox?status=ended&channel=web",
            "/inbox/conv_",
        ),
        ("leads", f"{base}/leads", "Kontakt "),
        ("leads ?status=qualified&min_score=50", leads, "Kontakt "),
        ("calendar (this week)", f"{base}/calendar", "Patient "),
        ("calendar ?week=next", f"{base}/calendar?week={monday_in(1).isoformat()}", "Patient "),
    ]


async def measure(url: str, folder: Path, client_id: str, runs: int) -> dict[str, list[float]]:
    import httpx

    from demandly.app import create_app, create_database
    from demandly.config import Settings

    settings = Settings(
        database_url=url,
        data_dir=folder,
        secret_key=common.SECRET,
        worker_in_process=False,
        log_level="WARNING",
    )
    db = create_database(settings)
    app = create_app(settings, database=db)
    timings: dict[str, list[float]] = {}
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench.test") as http:
            login = await http.post(
                "/login",
                data={"email": common.BENCH_EMAIL, "password": common.BENCH_PASSWORD},
            )
            assert login.status_code == 303, login.text
            for name, path, shown in pages(client_id):
                for _ in range(WARM_UP):
                    response = await http.get(path)
                    assert response.status_code == 200, (path, response.status_code)
                assert shown in response.text, f"{path} does not show {shown!r}"
                measured = []
                for _ in range(runs):
                    began = clock.perf_counter()
                    response = await http.get(path)
                    measured.append((clock.perf_counter() - began) * 1000)
                    assert response.status_code == 200, (path, response.status_code)
                timings[name] = measured
    finally:
        await db.dispose()
    return timings


def set_plan_cache_mode(url: str, mode: str) -> None:
    """For every later connection to the bench database (as the database's owner)."""
    from sqlalchemy import create_engine, text

    admin = create_engine(
        common.PG_URL.replace("+asyncpg", "+psycopg2"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{url.rsplit("/", 1)[1]}" SET plan_cache_mode = {mode}'))
    admin.dispose()


def run_backend(
    backend: str, runs: int, plan_cache_mode: str | None = None
) -> tuple[dict[str, list[float]], float]:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-dashboard-{backend}-"))
    url = common.fresh_database(backend, folder)
    try:
        agency_id, _ = common.seed_owner(url, folder)
        began = clock.perf_counter()
        ids = asyncio.run(seed(url, folder, agency_id))
        if plan_cache_mode and url.startswith("postgresql"):
            set_plan_cache_mode(url, plan_cache_mode)
        seeded = clock.perf_counter() - began
        return asyncio.run(measure(url, folder, ids["client_id"], runs)), seeded
    finally:
        common.drop_database(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument(
        "--pg-plan-cache-mode",
        choices=("auto", "force_custom_plan", "force_generic_plan"),
        default=None,
        help="PostgreSQL's plan_cache_mode for the bench database (default: the server's).",
    )
    args = parser.parse_args()
    os.environ.setdefault("DEMANDLY_BASE_URL", "https://app.bench.example")
    console = Console()
    table = Table(
        title=(
            f"Dashboard pages, {CONVERSATIONS:,} conversations, {LEADS:,} leads, "
            f"{APPOINTMENTS} appointments in one client; {args.runs} requests each (ms)"
        )
    )
    for column in ("backend", "page", "p50", "p95", "max", f"p95 <= {GOAL_MS:.0f}"):
        table.add_column(column, justify="right" if column != "page" else "left")
    notes = []
    for backend in [b for b in args.backends.split(",") if b]:
        timings, seeded = run_backend(backend, args.runs, args.pg_plan_cache_mode)
        notes.append(f"{backend}: seeded in {seeded:.1f} s")
        for name, values in timings.items():
            p95 = percentile(values, 0.95)
            table.add_row(
                backend,
                name,
                f"{percentile(values, 0.5):.1f}",
                f"{p95:.1f}",
                f"{max(values):.1f}",
                "yes" if p95 <= GOAL_MS else "NO",
            )
    console.print(table)
    console.print(
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs; " + "; ".join(notes)
    )


if __name__ == "__main__":
    main()
