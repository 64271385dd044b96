"""Calendars and bookings through the API, on days safely ahead of today."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from tests.factories import Tenant

API = "/api/v1"
BERLIN = ZoneInfo("Europe/Berlin")
OWNER = "agency_owner"


def every_day(start: str = "09:00", end: str = "17:00") -> list[dict[str, Any]]:
    return [{"weekday": d, "start": start, "end": end} for d in range(7)]


def calendar_body(client_id: str, **overrides: Any) -> dict[str, Any]:
    """Open every day 09:00-17:00 Berlin time, 30-minute appointments, no notice needed,
    two years ahead bookable: tests pick their days freely."""
    body: dict[str, Any] = {
        "client_id": client_id,
        "name": "Praxis Dr. Weber",
        "timezone": "Europe/Berlin",
        "event_types": [
            {
                "name": "Erstberatung",
                "duration_minutes": 30,
                "location_kind": "in_person",
                "location_text": "Hauptstr. 1, München",
            }
        ],
        "weekly_hours": every_day(),
        "minimum_notice_minutes": 0,
        "booking_window_days": 730,
    }
    body.update(overrides)
    return body


async def create_calendar(
    client: httpx.AsyncClient, tenant: Tenant, role: str = OWNER, **overrides: Any
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/calendars",
        json=calendar_body(tenant.clients[0].id, **overrides),
        headers=tenant.headers(role),
    )
    assert response.status_code == 201, response.text
    return response.json()


def future_day(days: int = 21) -> date:
    """A Berlin date ``days`` ahead."""
    return datetime.now(BERLIN).date() + timedelta(days=days)


def at(day: date, hh_mm: str, zone: ZoneInfo = BERLIN) -> datetime:
    return datetime.combine(day, time.fromisoformat(hh_mm), tzinfo=zone)


def attendee(email: str = "anna.schmidt@example.com", **overrides: Any) -> dict[str, Any]:
    return {"name": "Anna Schmidt", "email": email, "phone": "0171 2345678", **overrides}


async def book(
    client: httpx.AsyncClient,
    tenant: Tenant,
    calendar: dict[str, Any],
    start: datetime,
    *,
    key: str | None = None,
    role: str = OWNER,
    **extra: Any,
) -> httpx.Response:
    headers = tenant.headers(role)
    if key is not None:
        headers["Idempotency-Key"] = key
    body = {
        "calendar_id": calendar["id"],
        "start": start.isoformat(),
        "attendee": extra.pop("attendee", attendee()),
        **extra,
    }
    return await client.post(f"{API}/appointments", json=body, headers=headers)


async def slots(
    client: httpx.AsyncClient,
    tenant: Tenant,
    calendar: dict[str, Any],
    start: datetime,
    end: datetime,
    **params: str,
) -> list[dict[str, Any]]:
    response = await client.get(
        f"{API}/calendars/{calendar['id']}/slots",
        params={"from": start.isoformat(), "to": end.isoformat(), **params},
        headers=tenant.headers(OWNER),
    )
    assert response.status_code == 200, response.text
    return list(response.json()["slots"])


def starts(items: list[dict[str, Any]], zone: ZoneInfo = BERLIN) -> list[str]:
    """Slot starts as local HH:MM."""
    return [datetime.fromisoformat(i["start"]).astimezone(zone).strftime("%H:%M") for i in items]
