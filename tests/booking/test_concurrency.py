"""No double booking: twenty people asking for the same slot at the same moment, over real
HTTP against a server process, get exactly one appointment."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from demandly.booking.models import Appointment
from demandly.config import Settings
from demandly.kit.context import Scope
from demandly.kit.db import Database
from tests.booking.helpers import API, OWNER, at, attendee, create_calendar, future_day
from tests.conftest import LiveServer, start_server
from tests.factories import World

CONCURRENT = 20


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    """A server process of this test's own, without a worker: it must not run (and so
    take away) the jobs other tests queue on the shared database."""
    process = start_server(settings, tmp_path / "server.log", DEMANDLY_WORKER_IN_PROCESS="false")
    yield process
    process.stop()


async def test_twenty_concurrent_requests_for_one_slot_give_one_booking(
    client: httpx.AsyncClient, world: World, db: Database, server: LiveServer
) -> None:
    calendar = await create_calendar(client, world.a)
    start = at(future_day(25), "10:00").isoformat()
    limits = httpx.Limits(max_connections=CONCURRENT)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:

        async def attempt(number: int) -> httpx.Response:
            return await http.post(
                f"{API}/appointments",
                json={
                    "calendar_id": calendar["id"],
                    "start": start,
                    "attendee": attendee(f"person{number}@example.com"),
                },
                headers=world.a.headers(OWNER),
            )

        responses = await asyncio.gather(*(attempt(n) for n in range(CONCURRENT)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * (CONCURRENT - 1), [
        r.text for r in responses if r.status_code >= 500
    ]
    async with db.session(Scope.for_system()) as session:
        count = await session.scalar(
            select(func.count()).where(Appointment.calendar_id == calendar["id"])
        )
    assert count == 1
