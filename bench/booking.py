"""Booking benchmark, in-process (the service functions the API, the booking page and the
engine tools call):

- Slot computation for a 30-day window with 500 existing appointments: p50/p95 of the pure
  computation (``availability.compute_slots``) and of ``service.available_slots`` (the same
  plus loading the calendar's appointments from the database).
- Booking throughput for distinct slots: ``service.book`` one booking per transaction
  (lock, re-check, contact and appointment with their audit events, event, two reminder jobs
  and the confirmation e-mail's job, which writes the e-mail and its .ics when it runs),
  committed each time, one after the other in one process. Also counts the SQL statements
  one booking sends.

    .venv/bin/python bench/booking.py [--backends sqlite,postgres] [--runs 300] [--bookings 500]
        [--profile FILE]   (a cProfile of the timed bookings only)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import platform
import tempfile
import time as clock
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import common
from rich.console import Console
from rich.table import Table
from sqlalchemy import event

BERLIN = ZoneInfo("Europe/Berlin")
WINDOW_DAYS = 30
EXISTING = 500


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def first_day() -> date:
    return datetime.now(BERLIN).date() + timedelta(days=7)


def packed_starts(first_day: date, count: int) -> list[datetime]:
    """Half-hour appointments every 45 minutes from 07:00 (the 10-minute buffer after each
    leaves 15 minutes: full days), 18 a day: 500 fill 28 of the 30 days."""
    starts: list[datetime] = []
    day = first_day
    while len(starts) < count:
        opening = datetime.combine(day, time(7), tzinfo=BERLIN)
        starts += [opening + timedelta(minutes=45 * n) for n in range(18)]
        day += timedelta(days=1)
    return starts[:count]


class StatementCounter:
    """Counts the statements an engine sends (SQLite's BEGIN included, COMMIT not)."""

    def __init__(self, engine: Any) -> None:
        self.engine, self.count = engine, 0

    def _seen(self, *_: Any) -> None:
        self.count += 1

    def __enter__(self) -> StatementCounter:
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)


async def bench_backend(
    url: str, folder: Path, agency_id: str, runs: int, bookings: int, profile: Path | None = None
) -> dict[str, float]:
    os.environ["DEMANDLY_BASE_URL"] = "https://app.bench.example"
    from demandly.app import create_database
    from demandly.booking import schemas as s
    from demandly.booking import service
    from demandly.booking.availability import compute_slots
    from demandly.booking.repository import BookingRepository
    from demandly.config import Settings, reset_settings_cache
    from demandly.kit.context import Scope
    from demandly.tenancy.models import Client

    reset_settings_cache()
    db = create_database(Settings(database_url=url, data_dir=folder, secret_key=common.SECRET))
    result: dict[str, float] = {}
    try:
        async with db.session(Scope.for_system()) as session:
            client = Client(agency_id=agency_id, name="Bench Praxis")
            session.add(client)
            await session.flush()
            weekdays = [{"weekday": d, "start": "07:00", "end": "21:00"} for d in range(7)]
            calendar = await service.create_calendar(
                session,
                client,
                s.CalendarCreate(
                    client_id=client.id,
                    name="Bench",
                    weekly_hours=weekdays,
                    event_types=[s.EventTypeIn(name="Termin", duration_minutes=30)],
                    buffer_before_minutes=5,
                    buffer_after_minutes=10,
                    slot_interval_minutes=15,
                    minimum_notice_minutes=0,
                    booking_window_days=730,
                ),
            )
            await session.commit()
        start_day = first_day()
        scope = Scope.for_client(agency_id, client.id)
        # 500 existing appointments in the window (through the service, so they are real).
        async with db.session(scope) as session:
            for index, start in enumerate(packed_starts(start_day, EXISTING)):
                await service.book(
                    session,
                    calendar,
                    start=start,
                    event_type_id=None,
                    attendee=s.AttendeeIn(name=f"Bench {index}", phone="+49 171 2345678"),
                    notes=None,
                    source="api",
                )
            await session.commit()
        window_start = datetime.combine(start_day, time(0), tzinfo=BERLIN)
        window_end = window_start + timedelta(days=WINDOW_DAYS)

        async with db.session(scope) as session:
            busy = await BookingRepository(session).busy(calendar.id, window_start, window_end)
            assert len(busy) == EXISTING, len(busy)
            years = range(window_start.year, window_end.year + 1)
            rules = service.rules_of(calendar, years)
            now = datetime.now(UTC)
            pure: list[float] = []
            for _ in range(runs):
                began = clock.perf_counter()
                slots = compute_slots(
                    rules, timedelta(minutes=30), window_start, window_end, now=now, busy=busy
                )
                pure.append((clock.perf_counter() - began) * 1000)
            result["slots"] = len(slots)
            result["pure_p50"], result["pure_p95"] = percentile(pure, 0.5), percentile(pure, 0.95)
            full: list[float] = []
            for _ in range(runs):
                began = clock.perf_counter()
                await service.available_slots(session, calendar, window_start, window_end)
                full.append((clock.perf_counter() - began) * 1000)
            result["full_p50"], result["full_p95"] = percentile(full, 0.5), percentile(full, 0.95)

        # Throughput: distinct free slots after the window, one booking per commit.
        targets = packed_starts(start_day + timedelta(days=WINDOW_DAYS + 7), bookings + 1)

        async def book(index: int, start: datetime) -> None:
            async with db.session(scope) as session:
                await service.book(
                    session,
                    calendar,
                    start=start,
                    event_type_id=None,
                    attendee=s.AttendeeIn(name=f"Guest {index}", email=f"guest{index}@example.com"),
                    notes=None,
                    source="api",
                    idempotency_key=f"bench-{index}",
                )
                await session.commit()

        with StatementCounter(db.engine.sync_engine) as counter:
            await book(bookings, targets[bookings])
        result["statements"] = counter.count
        profiler = cProfile.Profile()
        began = clock.perf_counter()
        if profile:
            profiler.enable()
        for index, start in enumerate(targets[:bookings]):
            await book(index, start)
        elapsed = clock.perf_counter() - began
        if profile:
            profiler.disable()
            profiler.dump_stats(profile)
        result["bookings_per_s"] = bookings / elapsed
        result["booking_mean_ms"] = elapsed / bookings * 1000
    finally:
        await db.dispose()
    return result


def run_backend(
    backend: str, runs: int, bookings: int, profile: Path | None = None
) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-booking-{backend}-"))
    url = common.fresh_database(backend, folder)
    try:
        agency_id, _ = common.seed_owner(url, folder)
        return asyncio.run(bench_backend(url, folder, agency_id, runs, bookings, profile))
    finally:
        common.drop_database(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--bookings", type=int, default=500)
    parser.add_argument(
        "--profile", type=Path, help="write a cProfile of the timed bookings (last backend)"
    )
    args = parser.parse_args()
    console = Console()
    table = Table(title="Booking: slots for 30 days with 500 appointments; bookings/s")
    for column in (
        "backend",
        "slots found",
        "compute p50 ms",
        "compute p95 ms",
        "available_slots p50 ms",
        "available_slots p95 ms",
        "bookings/s (service)",
        "ms per booking",
        "statements per booking",
    ):
        table.add_column(column, justify="right")
    for backend in [b for b in args.backends.split(",") if b]:
        row = run_backend(backend, args.runs, args.bookings, args.profile)
        table.add_row(
            backend,
            f"{row['slots']:.0f}",
            f"{row['pure_p50']:.2f}",
            f"{row['pure_p95']:.2f}",
            f"{row['full_p50']:.2f}",
            f"{row['full_p95']:.2f}",
            f"{row['bookings_per_s']:.0f}",
            f"{row['booking_mean_ms']:.2f}",
            f"{row['statements']:.0f}",
        )
    console.print(table)
    console.print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )


if __name__ == "__main__":
    main()
