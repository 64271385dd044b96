"""Appointment reminders by SMS: sent through the client's Twilio number when the attendee
agreed to be contacted, in the client's language with the calendar's time and the manage
link; not sent without consent or for a cancelled appointment; retried when Twilio fails."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from demandly.app import create_app
from demandly.config import Settings
from demandly.jobs.worker import Worker
from demandly.kit.db import Database
from tests.booking.helpers import API, OWNER, at, attendee, book, create_calendar, future_day
from tests.channels.phone.conftest import PUBLIC, PhoneAgent, make_phone_agent
from tests.channels.phone.twilio_rest import TwilioRest
from tests.factories import make_tenant
from tests.integrations.smtp import environment
from tests.jobs.helpers import Clock


@dataclass
class Setup:
    api: httpx.AsyncClient
    db: Database
    agent: PhoneAgent
    calendar: dict[str, Any]


@pytest.fixture
async def setup(
    fresh_db: tuple[Database, Settings], twilio: TwilioRest, tmp_path: Path
) -> AsyncIterator[Setup]:
    """A database of its own (the worker runs with a clock days ahead), a phone agent whose
    number can text, and a calendar of the same client reminding 60 minutes ahead."""
    db, settings = fresh_db
    settings = settings.model_copy(update={"base_url": PUBLIC, "twilio_api_base_url": twilio.url})
    env = {
        "DEMANDLY_BASE_URL": PUBLIC,
        "DEMANDLY_TWILIO_API_BASE_URL": twilio.url,
        "DEMANDLY_SMTP_URL": None,
        "DEMANDLY_DATA_DIR": str(tmp_path),
    }
    with environment(**env):
        transport = httpx.ASGITransport(app=create_app(settings, database=db))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as api:
            tenant = await make_tenant(db)
            agent = await make_phone_agent(api, db, twilio, tenant=tenant)
            calendar = await create_calendar(api, tenant, reminder_offsets_minutes=[60])
            yield Setup(api, db, agent, calendar)


async def _book(setup: Setup, day: Any, consent: bool, **person: str) -> dict[str, Any]:
    tenant = setup.agent.tenant
    who = attendee(**person)
    booked = await book(setup.api, tenant, setup.calendar, at(day, "10:00"), attendee=who)
    assert booked.status_code == 201, booked.text
    appointment = booked.json()
    if consent:
        patched = await setup.api.patch(
            f"{API}/contacts/{appointment['contact_id']}",
            json={"consent_contact": True},
            headers=tenant.headers(OWNER),
        )
        assert patched.status_code == 200, patched.text
    return appointment


async def _run_jobs(db: Database, clock: Clock) -> None:
    for _ in range(3):  # the reminder, then the SMS it queued
        await Worker(db, clock=clock).run_until_idle()


async def test_a_consenting_attendee_gets_the_reminder_by_sms(
    setup: Setup, twilio: TwilioRest
) -> None:
    day = future_day(34)
    appointment = await _book(setup, day, consent=True)
    await _run_jobs(setup.db, Clock(at(day, "09:01")))
    [sent] = twilio.of(setup.agent.account, "POST", "/Messages.json")
    assert sent.form["To"] == "+491712345678" and sent.form["From"] == setup.agent.number
    body = sent.form["Body"]
    assert body.startswith("Erinnerung an Ihren Termin")
    assert "10:00 Uhr (Europe/Berlin)" in body
    assert appointment["manage_url"] in body


async def test_no_sms_without_consent_or_for_a_cancelled_appointment(
    setup: Setup, twilio: TwilioRest
) -> None:
    day = future_day(35)
    await _book(setup, day, consent=False)
    other = {"email": "bernd@example.com", "phone": "0171 7654321"}
    cancelled = await _book(setup, future_day(36), consent=True, **other)
    await setup.api.post(
        f"{API}/appointments/{cancelled['id']}/cancel",
        json={},
        headers=setup.agent.tenant.headers(OWNER),
    )
    await _run_jobs(setup.db, Clock(at(future_day(36), "09:30")))
    assert twilio.of(setup.agent.account, "POST", "/Messages.json") == []


async def test_twilio_failing_is_retried_by_the_job(setup: Setup, twilio: TwilioRest) -> None:
    day = future_day(37)
    await _book(setup, day, consent=True)
    twilio.refuse_messages = 503
    try:
        await _run_jobs(setup.db, Clock(at(day, "09:01")))
    finally:
        twilio.refuse_messages = None
    assert len(twilio.of(setup.agent.account, "POST", "/Messages.json")) >= 1
    await _run_jobs(setup.db, Clock(at(day, "09:20")))  # after the job's backoff
    texts = twilio.of(setup.agent.account, "POST", "/Messages.json")
    assert "Erinnerung" in texts[-1].form["Body"]
    assert len([t for t in texts if t.form.get("Body")]) >= 2
