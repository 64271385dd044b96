"""Booking an appointment by phone: the same engine and booking tools as the chat, through
gather-mode TwiML, ending in a real appointment and the call's outcome."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from demandly.channels.phone.models import Call
from demandly.kit.context import Scope
from demandly.kit.db import Database
from tests.booking.helpers import create_calendar
from tests.channels.phone.conftest import API, Caller, make_phone_agent
from tests.channels.phone.twilio_rest import TwilioRest
from tests.factories import make_tenant


async def test_a_caller_books_an_appointment(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    # The calendar must belong to the agent's client: make the tenant first.
    tenant = await make_tenant(db)
    calendar = await create_calendar(api, tenant)
    agent = await make_phone_agent(
        api,
        db,
        twilio,
        tenant=tenant,
        calendar_id=calendar["id"],
        tools=["save_lead_details", "request_handoff", "end_conversation",
               "check_availability", "book_appointment"],
    )  # fmt: skip
    caller = Caller(api, agent)
    await caller.dial_in()
    heard = await caller.say("Ich hätte gern einen Termin übermorgen vormittags.")
    assert "Name" in heard.text
    await caller.say("Max Muster")
    offer = await caller.say("max.muster@example.com")
    assert "frei" in offer.text, offer.text
    confirm = await caller.say("den ersten")
    assert "buchen" in confirm.text, confirm.text
    booked = await caller.say("Ja, gerne")
    assert "gebucht" in booked.text and booked.action == "gather", booked.text

    appointments = await api.get(
        f"{API}/appointments", params={"calendar_id": calendar["id"]}, headers=agent.owner
    )
    assert appointments.status_code == 200, appointments.text
    items = appointments.json()["items"]
    assert len(items) == 1
    assert (await caller.status("completed", 6, CallDuration="95")).status_code == 204
    async with db.session(Scope.for_system()) as session:
        statement = select(Call).where(Call.twilio_call_sid == caller.call_sid)
        call = (await session.execute(statement)).scalar_one()
    assert call.outcome == "appointment"
