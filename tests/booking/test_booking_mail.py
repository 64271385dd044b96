"""The booking e-mails speak for the agency and in the client's language, whichever way the
appointment changes (the calendar, its client and agency are read together with the booking:
these tests hold that nothing of them is lost)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from demandly.app import create_app
from demandly.config import Settings
from demandly.jobs.worker import Worker
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.tenancy.models import Agency, Client
from tests.booking.helpers import API, OWNER, at, attendee, book, create_calendar, future_day
from tests.factories import Tenant, make_tenant, unique
from tests.integrations.smtp import SmtpServer

BRANDING = {
    "display_name": "Nordlicht Digital",
    "sender_name": "Nordlicht Termine",
    "primary_color": "#0b6e69",
}


@pytest.fixture
async def branded(
    fresh_db: tuple[Database, Settings],
) -> AsyncIterator[tuple[httpx.AsyncClient, Database, Tenant]]:
    """An app on a database of its own (the worker runs every queued job), for an agency
    with its own brand and a client that speaks English."""
    db, settings = fresh_db
    tenant = await make_tenant(db)
    async with db.session(Scope.for_system()) as session:
        agency = await session.get(Agency, tenant.agency.id)
        client = await session.get(Client, tenant.clients[0].id)
        assert agency is not None and client is not None
        agency.branding = BRANDING
        client.locale = "en"
        await session.commit()
    transport = httpx.ASGITransport(app=create_app(settings, database=db))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client, db, tenant


async def test_every_booking_mail_comes_from_the_agency_in_the_clients_language(
    branded: tuple[httpx.AsyncClient, Database, Tenant], use_smtp: SmtpServer
) -> None:
    client, db, tenant = branded
    email = f"{unique('lena').lower()}@example.com"
    calendar = await create_calendar(client, tenant)
    day = future_day(34)
    booked = await book(client, tenant, calendar, at(day, "10:00"), attendee=attendee(email))
    assert booked.status_code == 201, booked.text
    appointment = booked.json()
    moved = await client.post(
        f"{API}/appointments/{appointment['id']}/reschedule",
        json={"start": at(day, "15:00").isoformat()},
        headers=tenant.headers(OWNER),
    )
    assert moved.status_code == 200, moved.text
    cancelled = await client.post(
        f"{API}/appointments/{appointment['id']}/cancel", json={}, headers=tenant.headers(OWNER)
    )
    assert cancelled.status_code == 200, cancelled.text
    await Worker(db).run_until_idle()

    mails = use_smtp.to(email)
    subjects = [str(m["Subject"]) for m in mails]
    assert [s.split(":")[0].strip() for s in subjects] == [
        "Appointment confirmed",
        "Appointment moved",
        "Appointment cancelled",
    ]
    for mail in mails:
        assert mail["From"].addresses[0].display_name == "Nordlicht Termine"
        page = mail.get_body(("html",)).get_content()
        assert "Nordlicht Digital" in page and "#0b6e69" in page
        assert "Hello" in mail.get_body(("plain",)).get_content()


async def test_a_repeated_request_gets_the_first_booking_and_no_second_mail(
    branded: tuple[httpx.AsyncClient, Database, Tenant], use_smtp: SmtpServer
) -> None:
    client, db, tenant = branded
    email = f"{unique('timo').lower()}@example.com"
    calendar = await create_calendar(client, tenant)
    start = at(future_day(35), "11:00")
    first = await book(client, tenant, calendar, start, attendee=attendee(email), key="k-1")
    again = await book(client, tenant, calendar, start, attendee=attendee(email), key="k-1")
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    await Worker(db).run_until_idle()
    assert len(use_smtp.to(email)) == 1
