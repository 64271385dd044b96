"""Appointment reminders by SMS, through the client's Twilio number (Messages.json).

Booking's reminder job queues one ``phone.reminder_sms`` job per reminder, in its own
transaction; that job reads what it needs in a short transaction of its own, then asks Twilio
with no transaction open. It texts only when everything holds at that moment:

- the appointment is still confirmed, ahead, and of the sequence the reminder was queued for
  (a moved or cancelled appointment withdraws its reminder jobs; one claimed before the change
  finds the sequence changed and does nothing, like the e-mail);
- the attendee is a contact with a phone number who agreed to be contacted
  (``consent_contact``) and is not restricted (Art. 18 GDPR);
- the client has a number with SMS capability: its own, or an unassigned number of an
  agency-wide connection of its agency.

Twilio failing (unreachable, 5xx, 429, refused credentials) raises: the job system retries
with backoff. A number Twilio rejects for good (other 4xx) is logged and given up. Logs name
the appointment only: never the number or the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from demandly.booking import service as booking
from demandly.booking.models import Appointment, AppointmentStatus
from demandly.booking.repository import BookingRepository
from demandly.channels.phone.models import PhoneNumber, TwilioConnection
from demandly.channels.phone.repository import PhoneRepository
from demandly.channels.phone.twilio_client import TwilioUnavailable, twilio_client
from demandly.config import Settings
from demandly.jobs.service import enqueue
from demandly.kit.context import Scope
from demandly.kit.db import Database, system_scope
from demandly.kit.logging import get_logger
from demandly.kit.time import utcnow
from demandly.leads.models import Contact
from demandly.tenancy.models import Client

log = get_logger(__name__)

REMINDER_SMS_TASK = "phone.reminder_sms"
MAX_BODY_CHARS = 1600  # Twilio's limit for one message (it splits into segments itself)
# Twilio statuses worth another try: credentials may be fixed, rate limits pass.
RETRY_STATUSES = frozenset({401, 403, 429})

TEXTS = {
    "de": "Erinnerung an Ihren Termin bei {business}: {when}. Verschieben oder absagen: {link}",
    "en": "Reminder of your appointment with {business}: {when}. Reschedule or cancel: {link}",
}


async def queue_reminder(
    session: AsyncSession, payload: dict[str, Any], *, agency_id: str | None, client_id: str | None
) -> None:
    """The SMS job for one reminder (booking's reminder job calls this; once per reminder)."""
    appointment_id = str(payload.get("appointment_id"))
    key = f"{REMINDER_SMS_TASK}:{appointment_id}:{payload.get('sequence')}"
    await enqueue(
        session,
        REMINDER_SMS_TASK,
        {
            "appointment_id": appointment_id,
            "sequence": payload.get("sequence"),
            "offset_minutes": payload.get("offset_minutes"),
        },
        agency_id=agency_id,
        client_id=client_id,
        idempotency_key=f"{key}:{payload.get('offset_minutes')}",
    )


@dataclass(frozen=True)
class ReminderSms:
    """One text to send, and the account to send it with."""

    to: str
    sender: str
    body: str
    connection: TwilioConnection


async def send_reminder(db: Database, settings: Settings, payload: dict[str, Any]) -> bool:
    """Text the reminder if everything holds now (see the module). True if Twilio took it."""
    appointment_id = str(payload.get("appointment_id"))
    async with db.session(Scope.for_system()) as session:
        message = await reminder_sms(session, appointment_id, payload.get("sequence"))
    if message is None:
        return False
    connection = message.connection
    try:
        async with twilio_client(
            settings,
            connection.account_sid,
            auth_token=connection.auth_token,
            api_key_sid=connection.api_key_sid,
            api_key_secret=connection.api_key_secret,
        ) as client:
            await client.messages.create_async(
                to=message.to, from_=message.sender, body=message.body
            )
    except TwilioUnavailable as exc:
        if exc.status is None or exc.status >= 500 or exc.status in RETRY_STATUSES:
            raise  # the job is retried
        log.warning("reminder_sms_refused", appointment_id=appointment_id, status=exc.status)
        return False
    return True


async def reminder_sms(
    session: AsyncSession, appointment_id: str, sequence: Any, now: datetime | None = None
) -> ReminderSms | None:
    """The reminder text for the appointment, or None when none is to be sent."""
    appt = await BookingRepository(session).appointment(appointment_id)
    if appt is None or not _current(appt, sequence, now or utcnow()):
        return None
    to = await _consenting_phone(session, appt)
    if to is None:
        return None
    sender = await _sender(session, appt)
    if sender is None:
        return None
    connection = await PhoneRepository(session).connection(sender.connection_id)
    if connection is None:
        return None
    body = await _body(session, appt)
    return ReminderSms(to=to, sender=sender.number, body=body, connection=connection)


def _current(appt: Appointment, sequence: Any, now: datetime) -> bool:
    return (
        appt.status == AppointmentStatus.CONFIRMED
        and appt.sequence == sequence
        and appt.start_at > now
    )


async def _consenting_phone(session: AsyncSession, appt: Appointment) -> str | None:
    if appt.contact_id is None:
        return None
    contact = await session.get(Contact, appt.contact_id)
    if contact is None or not contact.consent_contact or contact.processing_restricted:
        return None
    return contact.phone or None


def can_text(number: PhoneNumber) -> bool:
    """Twilio's capabilities say ``sms`` (numbers) or ``SMS`` (number searches)."""
    return any(key.lower() == "sms" and bool(on) for key, on in (number.capabilities or {}).items())


async def _sender(session: AsyncSession, appt: Appointment) -> PhoneNumber | None:
    async with system_scope(session):  # the agency's numbers are not rows of the client
        numbers = await PhoneRepository(session).sms_senders(appt.agency_id, appt.client_id)
    return next((n for n in numbers if can_text(n)), None)


async def _body(session: AsyncSession, appt: Appointment) -> str:
    """In the client's language, the time in the calendar's zone, with the manage link."""
    client = await session.get(Client, appt.client_id)
    language = client.locale if client is not None and client.locale in TEXTS else "de"
    calendar = await booking.get_calendar(session, appt.calendar_id)
    text = TEXTS[language].format(
        business=client.name if client is not None else "",
        when=booking.format_when(appt.start_at, calendar.timezone, language),
        link=booking.manage_url(appt),
    )
    return text[:MAX_BODY_CHARS]
