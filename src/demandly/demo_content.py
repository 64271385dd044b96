"""What makes the demo practice useful to try: its calendar, its knowledge base (the practice's
website under /demo/site/ and a PDF price list) and where its lead e-mails go.

The website is read from the files the app itself serves under ``/demo/site/`` with the same
extractor a crawl uses: at seed time no server is running yet to crawl. A refresh of that
source crawls the pages over HTTP (the host must then be allowed for fetching, see
docs/knowledge.md).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fpdf import FPDF
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.agents.models import Agent
from demandly.booking import schemas as booking_schemas
from demandly.booking import service as booking
from demandly.booking.models import Calendar, EventType
from demandly.channels.phone.models import Call
from demandly.channels.web.pages import site_page_paths
from demandly.conversations import service as conversations
from demandly.conversations.models import Channel, Conversation, MessageRole
from demandly.jobs.models import DomainEvent, Job
from demandly.jobs.service import emit
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.kit.errors import DemandlyError
from demandly.kit.time import utcnow
from demandly.knowledge import schemas as knowledge_schemas
from demandly.knowledge import service as knowledge
from demandly.knowledge.chunking import chunk_document
from demandly.knowledge.extract import extract_html
from demandly.knowledge.models import KnowledgeBase, KnowledgeSource
from demandly.knowledge.tasks import ingest
from demandly.leads import schemas as lead_schemas
from demandly.leads import service as leads
from demandly.leads.models import Lead
from demandly.tenancy.models import Client

BERLIN = ZoneInfo("Europe/Berlin")
CALENDAR_SLUG = "zahnarzt-sommer"
KNOWLEDGE_BASE = "Praxiswissen"
PRICE_LIST = (
    ("Kontrolluntersuchung (Kassenpatienten, zweimal im Jahr)", "kostenfrei"),
    ("Professionelle Zahnreinigung, etwa 60 Minuten", "89 EUR"),
    ("Bleaching in der Praxis, beide Kiefer", "390 EUR"),
    ("Fissurenversiegelung je Zahn (Erwachsene)", "25 EUR"),
    ("Beratung zu Implantaten mit Kostenvoranschlag", "kostenfrei"),
    ("Behandlung unter Lachgas, je angefangene 30 Minuten", "60 EUR"),
)
WEEK = [
    *({"weekday": day, "start": "08:00", "end": "18:00"} for day in range(4)),
    {"weekday": 4, "start": "08:00", "end": "14:00"},
]


async def demo_calendar(session: AsyncSession, practice: Client) -> Calendar:
    """The practice's treatment calendar (made once, found by its slug afterwards)."""
    found = await session.execute(select(Calendar).where(Calendar.client_id == practice.id))
    existing = found.scalars().first()
    if existing is not None:
        return existing
    data = booking_schemas.CalendarCreate.model_validate(
        {
            "client_id": practice.id,
            "name": "Behandlungstermine",
            "slug": CALENDAR_SLUG,
            "timezone": "Europe/Berlin",
            "event_types": [
                {"name": "Kontrolluntersuchung", "duration_minutes": 30},
                {"name": "Professionelle Zahnreinigung", "duration_minutes": 60},
            ],
            "weekly_hours": WEEK,
            "holiday_region": "HH",
            "buffer_after_minutes": 10,
            "minimum_notice_minutes": 120,
            "booking_window_days": 60,
            "slot_interval_minutes": 30,
        }
    )
    return await booking.create_calendar(session, practice, data)


async def demo_knowledge_base(session: AsyncSession, practice: Client, base_url: str) -> str:
    """The practice's knowledge base with its website already indexed and the price list
    waiting to be read (``ingest_price_list`` after the transaction commits)."""
    found = await session.execute(
        select(KnowledgeBase).where(
            KnowledgeBase.client_id == practice.id, KnowledgeBase.name == KNOWLEDGE_BASE
        )
    )
    existing = found.scalars().first()
    if existing is not None:
        return existing.id
    base = await knowledge.create_base(
        session,
        practice,
        knowledge_schemas.KnowledgeBaseCreate(
            client_id=practice.id, name=KNOWLEDGE_BASE, language="de"
        ),
    )
    site = await knowledge.add_source(
        session,
        base,
        knowledge_schemas.WebsiteSourceCreate(
            kind="website", title="Praxis-Website", url=f"{base_url.rstrip('/')}/demo/site/"
        ),
        queue=False,
    )
    drafts = []
    for path, file in site_page_paths():
        document = extract_html(file.read_bytes(), f"{base_url.rstrip('/')}{path}")
        drafts.extend(chunk_document(document))
    indexed = await knowledge.replace_chunks(session, site, drafts)
    await knowledge.mark_ready(session, site, indexed, [])
    await knowledge.add_file(
        session,
        base,
        "preisliste-2026.pdf",
        "application/pdf",
        price_list_pdf(),
        "Preisliste 2026",
        queue=False,
    )
    return base.id


async def ingest_waiting_sources(db: Database, practice: Client) -> None:
    """Read the sources the seed left waiting (the PDF price list), each in transactions of
    its own (never inside another session: SQLite has one connection)."""
    scope = Scope.for_client(practice.agency_id, practice.id)
    async with db.session(scope) as session:
        waiting = await session.execute(
            select(KnowledgeSource.id).where(
                KnowledgeSource.client_id == practice.id, KnowledgeSource.status == "queued"
            )
        )
        source_ids = list(waiting.scalars())
    for source_id in source_ids:
        await ingest(db, scope, source_id)


async def demo_lead_notifications(session: AsyncSession, practice: Client, email: str) -> None:
    await leads.put_notifications(
        session,
        practice,
        lead_schemas.LeadNotifications(notify_emails=[email], notify_on=["created", "qualified"]),
    )


def price_list_pdf() -> bytes:
    """The practice's price list as a PDF, the kind of file a client uploads."""
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 12, "Preisliste 2026 - Zahnarztpraxis Dr. Sommer", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    pdf.multi_cell(
        0,
        6,
        "Alle Preise gelten für Selbstzahler und Privatpatienten. Kassenpatienten zahlen nur "
        "Leistungen, die ihre Krankenkasse nicht trägt.",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 13)
    pdf.cell(0, 9, "Leistungen und Preise", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    for item, price in PRICE_LIST:
        pdf.multi_cell(0, 7, f"{item}: {price}.", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


# --- a week of history -------------------------------------------------------------------
#
# Conversations, leads, appointments and calls of the last seven days, so that the dashboard
# looks like a working week. Made through the domain services (events, contacts, scores and
# lead statuses hold), then dated back; always the same (a fixed seed), relative to "now".
# Notifications such history would have sent at the time are withdrawn: nobody is e-mailed
# about last week's leads.

HISTORY_SEED = 20260105
HISTORY_DAYS = 7


@dataclass(frozen=True)
class Person:
    name: str
    phone: str
    email: str | None
    language: str = "de"

    @property
    def first(self) -> str:
        return self.name.split()[0]


@dataclass(frozen=True)
class Scene:
    """One kind of conversation: its lines (``{first}``, ``{name}``, ``{phone}``, ``{email}``
    filled in per person), the answers it captures and how it ends."""

    channel: str
    lines: tuple[tuple[str, str], ...]
    answers: tuple[tuple[str, str], ...] = ()
    end: str = "ended"  # ended | handoff | open
    lead_status: str | None = None  # None: as scoring leaves it
    booking: str | None = None  # event type (practice only)
    language: str = "de"


PEOPLE = (
    Person("Anna Schneider", "+4915112345601", "anna.schneider@example.de"),
    Person("Jonas Becker", "+4917623456702", None),
    Person("Miriam Hoffmann", "+4916034567803", "m.hoffmann@example.de"),
    Person("Thomas Wagner", "+4915145678904", "thomas.wagner@example.de"),
    Person("Leonie Schulz", "+4917656789005", None),
    Person("Mehmet Yilmaz", "+4915767890106", "mehmet.yilmaz@example.de"),
    Person("Katharina Braun", "+4916298901207", "k.braun@example.de"),
    Person("Felix Zimmermann", "+4915190123408", None),
    Person("Sophie Krüger", "+4917601234509", "sophie.krueger@example.de"),
    Person("Lukas Hartmann", "+4915212345610", "lukas.hartmann@example.de"),
    Person("Hannah Lange", "+4917723456711", None),
    Person("Paul Schmitt", "+4916334567812", "paul.schmitt@example.de"),
    Person("Emily Carter", "+447700900113", "emily.carter@example.co.uk", "en"),
    Person("James Miller", "+447700900214", "james.miller@example.com", "en"),
    Person("Olivia Brooks", "+14155550115", "olivia.brooks@example.com", "en"),
    Person("Daniel Novak", "+4915134567816", "daniel.novak@example.de", "en"),
)

U, A, H = "user", "assistant", "human"

PRACTICE_SCENES = (
    Scene(
        "web",
        (
            (U, "Hallo, ich hätte gern einen Termin zur Zahnreinigung."),
            (A, "Sehr gern! Darf ich Ihren Namen und eine Telefonnummer für Rückfragen haben?"),
            (U, "{name}, {phone}"),
            (A, "Danke, {first}. Passt Ihnen ein Termin in der kommenden Woche am Vormittag?"),
            (U, "Ja, vormittags ist gut."),
            (A, "Ich habe Ihnen die professionelle Zahnreinigung eingetragen. Bis bald!"),
        ),
        (("name", "{name}"), ("phone", "{phone}"), ("concern", "Zahnreinigung")),
        booking="Professionelle Zahnreinigung",
        lead_status="won",
    ),
    Scene(
        "web",
        (
            (U, "Ich habe seit gestern starke Zahnschmerzen unten links."),
            (A, "Das tut mir leid. Wie heißen Sie, und unter welcher Nummer erreichen wir Sie?"),
            (U, "{name}, Telefon {phone}"),
            (A, "Danke. Bei starken Schmerzen gebe ich Sie direkt an das Praxisteam weiter."),
            (H, "Hallo {first}, hier ist Frau Kaya vom Empfang. Kommen Sie heute um 16 Uhr?"),
            (U, "Ja, vielen Dank, das schaffe ich."),
        ),
        (("name", "{name}"), ("phone", "{phone}"), ("concern", "Schmerzen")),
        end="handoff",
        lead_status="contacted",
    ),
    Scene(
        "web",
        (
            (U, "Was kostet eine professionelle Zahnreinigung?"),
            (
                A,
                "Die professionelle Zahnreinigung kostet bei uns 89 Euro und dauert etwa eine "
                "Stunde. Viele Zusatzversicherungen erstatten die Kosten.",
            ),
            (U, "Danke, ich melde mich."),
            (A, "Gern! Sie erreichen uns auch telefonisch unter 040 123 456 70."),
        ),
    ),
    Scene(
        "web",
        (
            (U, "Ich interessiere mich für ein Implantat. Machen Sie eine Beratung?"),
            (A, "Ja, das Beratungsgespräch zu Implantaten ist kostenlos. Wie heißen Sie?"),
            (U, "{name}"),
            (A, "Und Ihre E-Mail-Adresse oder Telefonnummer?"),
            (U, "{email}, gern auch {phone}"),
            (A, "Danke, {first}! Ich habe Ihnen einen Beratungstermin eingetragen."),
        ),
        (
            ("name", "{name}"),
            ("phone", "{phone}"),
            ("email", "{email}"),
            ("concern", "Beratung Implantat"),
        ),
        booking="Kontrolluntersuchung",
    ),
    Scene(
        "web",
        (
            (U, "Gibt es Parkplätze bei Ihnen?"),
            (
                A,
                "Ja, hinter dem Haus stehen vier Patientenparkplätze. Das Parkhaus am "
                "Eppendorfer Marktplatz ist drei Gehminuten entfernt.",
            ),
        ),
    ),
    Scene(
        "web",
        (
            (U, "Ich möchte zur Kontrolle kommen, bin Kassenpatient."),
            (A, "Sehr gern. Die Kontrolle ist zweimal im Jahr kostenfrei. Wie heißen Sie?"),
            (U, "{name}, {phone}"),
            (A, "Danke! Ich habe Ihnen die Kontrolluntersuchung eingetragen."),
        ),
        (("name", "{name}"), ("phone", "{phone}"), ("concern", "Kontrolle")),
        booking="Kontrolluntersuchung",
    ),
    Scene(
        "web",
        (
            (U, "Hello, do you speak English? I need a check-up."),
            (A, "Of course! May I have your name and a phone number?"),
            (U, "{name}, {phone}"),
            (A, "Thank you, {first}. I have booked a check-up for you. See you soon!"),
        ),
        (("name", "{name}"), ("phone", "{phone}"), ("concern", "Kontrolle")),
        booking="Kontrolluntersuchung",
        language="en",
    ),
    Scene(
        "web",
        (
            (U, "Hi, how much is teeth whitening?"),
            (A, "In-office bleaching for both jaws costs 390 euros."),
            (U, "That's more than I hoped. Thanks anyway. My number is {phone}."),
            (A, "Thank you! We will keep your number in case you want to come back to it."),
        ),
        (("phone", "{phone}"),),
        lead_status="lost",
        language="en",
    ),
    Scene(
        "web",
        (
            (U, "Behandeln Sie auch Angstpatienten?"),
            (
                A,
                "Ja. Sagen Sie uns bei der Terminvereinbarung Bescheid, dann planen wir mehr "
                "Zeit ein. Möchten Sie einen Termin?",
            ),
            (U, "Vielleicht später, danke."),
        ),
        end="open",
    ),
    Scene(
        "test",
        (
            (U, "Test: Öffnungszeiten am Freitag?"),
            (A, "Freitags sind wir von 8 bis 14 Uhr für Sie da."),
        ),
    ),
    Scene(
        "web",
        (
            (U, "Ich möchte meinen Termin absagen, ich bin krank."),
            (A, "Gute Besserung! Wie ist Ihr Name?"),
            (U, "{name}"),
            (
                A,
                "Ich habe Ihren Termin storniert. Melden Sie sich gern, wenn es Ihnen besser geht.",
            ),
        ),
        (("name", "{name}"), ("phone", "{phone}"), ("concern", "Kontrolle")),
        booking="cancelled:Kontrolluntersuchung",
        lead_status="disqualified",
    ),
)

KRAUSE_SCENES = (
    Scene(
        "phone",
        (
            (A, "Elektro Krause, hier ist Max. Wie kann ich helfen?"),
            (U, "Bei mir ist seit heute früh in der Küche der Strom weg, die Sicherung fliegt."),
            (A, "Verstehe. Wie ist Ihr Name und wo ist der Einsatzort?"),
            (U, "{name}, in Hamburg-Barmbek."),
            (A, "Danke, {first}. Ein Kollege ruft Sie in der nächsten Stunde unter {phone} an."),
        ),
        (("name", "{name}"), ("phone", "{phone}"), ("job", "Störung"), ("city", "Hamburg")),
        lead_status="contacted",
    ),
    Scene(
        "phone",
        (
            (A, "Elektro Krause, hier ist Max. Wie kann ich helfen?"),
            (U, "Ich hätte gern ein Angebot für eine Wallbox in der Garage."),
            (A, "Sehr gern. Haben Sie schon ein E-Auto, und wie weit ist der Zählerschrank?"),
            (U, "Ja, seit einem Monat. Der Zählerschrank ist direkt hinter der Garage."),
            (A, "Prima. Darf ich Ihren Namen und Ihre E-Mail für das Angebot haben?"),
            (U, "{name}, {email}"),
            (A, "Danke! Sie bekommen das Angebot bis Freitag."),
        ),
        (
            ("name", "{name}"),
            ("phone", "{phone}"),
            ("email", "{email}"),
            ("job", "Wallbox"),
            ("city", "Hamburg"),
        ),
        lead_status="won",
    ),
    Scene(
        "phone",
        (
            (A, "Elektro Krause, hier ist Max. Wie kann ich helfen?"),
            (U, "Wir wollen eine Photovoltaikanlage aufs Dach, machen Sie das?"),
            (A, "Ja, inklusive Speicher. Wie groß ist die Dachfläche ungefähr?"),
            (U, "Etwa 60 Quadratmeter, Süddach. Ich bin {name}."),
            (A, "Danke, {first}. Ich lege das für einen Vor-Ort-Termin an."),
        ),
        (
            ("name", "{name}"),
            ("phone", "{phone}"),
            ("job", "Photovoltaik"),
            ("city", "Norderstedt"),
        ),
    ),
    Scene(
        "phone",
        (
            (A, "Elektro Krause, hier ist Max. Wie kann ich helfen?"),
            (U, "Ich möchte mit einem Mitarbeiter sprechen, es geht um eine Rechnung."),
            (A, "Ich verbinde Sie mit dem Büro."),
        ),
        end="handoff",
    ),
    Scene(
        "web",
        (
            (U, "Brauche einen E-Check für meine Vermietung, was kostet das?"),
            (A, "Der E-Check für eine Wohnung kostet ab 149 Euro. Wie heißen Sie?"),
            (U, "{name}, {email}"),
            (A, "Danke! Wir melden uns mit einem Terminvorschlag."),
        ),
        (("name", "{name}"), ("email", "{email}"), ("job", "E-Check"), ("city", "Hamburg")),
    ),
    Scene(
        "web",
        (
            (U, "Hi, can you install new sockets in my flat? I'm moving in next month."),
            (A, "Sure! How many sockets, and which part of Hamburg?"),
            (U, "About six, in Altona. I'm {name}, {phone}."),
            (A, "Thanks, {first}! We'll call you to arrange a visit."),
        ),
        (("name", "{name}"), ("phone", "{phone}"), ("job", "Neuinstallation"), ("city", "Hamburg")),
        language="en",
    ),
    Scene(
        "phone",
        (
            (A, "Elektro Krause, hier ist Max. Wie kann ich helfen?"),
            (U, "Falsch verbunden, Entschuldigung."),
            (A, "Kein Problem, einen schönen Tag noch!"),
        ),
    ),
)

PRACTICE_SCORING = {
    "rules": [
        {"field": "concern", "op": "equals", "value": "Schmerzen", "points": 40},
        {"field": "concern", "op": "equals", "value": "Beratung Implantat", "points": 50},
        {"field": "concern", "op": "in", "value": ["Kontrolle", "Zahnreinigung"], "points": 20},
        {"field": "email", "op": "exists", "points": 10},
    ],
    "qualify_at": 30,
}
KRAUSE_SCORING = {
    "rules": [
        {"field": "job", "op": "in", "value": ["Photovoltaik", "Wallbox"], "points": 60},
        {"field": "job", "op": "equals", "value": "Störung", "points": 30},
        {"field": "email", "op": "exists", "points": 10},
    ],
    "qualify_at": 50,
}


@dataclass
class _Dates:
    """What was made, and when it happened: every domain event gets its entity's time."""

    at: dict[str, datetime] = field(default_factory=dict)
    busy: list[tuple[datetime, datetime]] = field(default_factory=list)  # booked times

    def mark(self, entity: Any, when: datetime) -> None:
        entity.created_at = when
        self.at[entity.id] = when


async def demo_history(
    session: AsyncSession,
    client: Client,
    agent: Agent,
    scenes: tuple[Scene, ...],
    count: int,
    scoring: dict[str, Any],
    calendar: Calendar | None = None,
    now: datetime | None = None,
) -> None:
    """``count`` conversations of the last week for ``client`` (once: a client that has any
    conversation keeps what it has)."""
    exists = select(Conversation.id).where(Conversation.client_id == client.id).limit(1)
    if (await session.execute(exists)).first() is not None or agent.current_version_id is None:
        return
    now = now or utcnow()
    began = utcnow()
    rng = random.Random(f"{HISTORY_SEED}:{client.name}")
    await leads.put_scoring(session, client, lead_schemas.LeadScoring.model_validate(scoring))
    kinds = {k.name: k for k in await booking.event_types(session, calendar)} if calendar else {}
    dates = _Dates()
    moments = sorted(_moment(rng, now) for _ in range(count))
    for index, at in enumerate(moments):
        scene = scenes[index % len(scenes)]
        people = [p for p in PEOPLE if p.language == scene.language]
        person = people[rng.randrange(len(people))]
        conversation, lead = await _history_conversation(
            session, client, agent, scene, person, at, rng, dates
        )
        if scene.booking and calendar is not None:
            await _history_booking(
                session, calendar, kinds, scene.booking, person, conversation, lead, rng, now, dates
            )
        if scene.channel == "phone":
            await _history_call(session, client, agent, conversation, person, lead, dates)
    if agent.kind == "phone":
        for index, when in enumerate(moments[:: max(1, count // 3)]):
            await _history_outbound_call(session, client, agent, PEOPLE[index], when, index, dates)
    await _date_events(session, dates)
    await _withdraw_notifications(session, client.agency_id, began)


def _moment(rng: random.Random, now: datetime) -> datetime:
    """A time in the last week when people write to a business: 7:00 to 21:00, Berlin."""
    local_now = now.astimezone(BERLIN)
    day = local_now.date() - timedelta(days=rng.randint(0, HISTORY_DAYS - 1))
    at = datetime.combine(day, time(rng.randint(7, 20), rng.randrange(0, 60)), tzinfo=BERLIN)
    if at > local_now - timedelta(minutes=30):
        at -= timedelta(days=1)
    return at.astimezone(UTC)


def _fill(text: str, person: Person) -> str:
    return text.format(
        name=person.name, first=person.first, phone=person.phone, email=person.email or ""
    )


async def _history_conversation(
    session: AsyncSession,
    client: Client,
    agent: Agent,
    scene: Scene,
    person: Person,
    at: datetime,
    rng: random.Random,
    dates: _Dates,
) -> tuple[Conversation, Lead | None]:
    lines = list(scene.lines)
    if scene.channel == "phone" and lines and lines[0][0] == A:
        greeting = _fill(lines.pop(0)[1], person)
    else:
        persona = agent.definition.get("persona_name") or "Lena"
        greeting = conversations.greeting_text(None, scene.language, persona, client.name)
    conversation, _, _ = await conversations.start(
        session,
        agency_id=client.agency_id,
        client_id=client.id,
        agent_id=agent.id,
        agent_version_id=agent.current_version_id or "",
        channel=Channel(scene.channel),
        language=scene.language,
        greeting=greeting,
        consent=True,
    )
    dates.mark(conversation, at)
    conversation.consent_at = at
    written = [
        message
        for message in (await conversations.messages(session, conversation.id))
        if message.seq == 1
    ]
    when = at
    for role, text in lines:
        if role == H:
            await conversations.request_handoff(session, conversation, "Bitte um Rückruf")
        message = await conversations.append(
            session, conversation, MessageRole(role), _fill(text, person)
        )
        written.append(message)
    for message in written:
        message.created_at = when
        when += timedelta(seconds=rng.randint(15, 75))
    last = when
    conversation.last_activity_at = last
    lead = await _history_lead(session, conversation, scene, person, last, dates)
    if scene.end == "handoff":
        await conversations.request_handoff(session, conversation, "Bitte um Rückruf")
    elif scene.end == "ended":
        await conversations.end(
            session, conversation, "hangup" if scene.channel == "phone" else "idle"
        )
        conversation.ended_at = last + timedelta(minutes=2 if scene.channel == "phone" else 30)
    await session.flush()
    return conversation, lead


async def _history_lead(
    session: AsyncSession,
    conversation: Conversation,
    scene: Scene,
    person: Person,
    at: datetime,
    dates: _Dates,
) -> Lead | None:
    answers = {key: _fill(value, person) for key, value in scene.answers}
    answers = {key: value for key, value in answers.items() if value}
    if not answers:
        return None
    await conversations.save_lead_fields(session, conversation, answers)
    captured = await leads.capture(session, conversation, "DE")
    lead = captured.lead
    if lead is None:
        return None
    if scene.lead_status is not None:
        await leads.set_status(session, lead, scene.lead_status, "Demo")
    if captured.created:
        dates.mark(lead, at)
        if lead.qualified_at is not None:
            lead.qualified_at = at
    return lead


async def _history_booking(
    session: AsyncSession,
    calendar: Calendar,
    kinds: dict[str, EventType],
    wanted: str,
    person: Person,
    conversation: Conversation,
    lead: Lead | None,
    rng: random.Random,
    now: datetime,
    dates: _Dates,
) -> None:
    """An appointment one to eight days after the conversation: taken place (completed),
    coming up, or cancelled. A time that is not bookable is skipped for the next one."""
    cancelled, _, name = wanted.rpartition(":")
    kind = kinds.get(name)
    if kind is None:
        return
    asked = conversation.created_at
    attendee = booking_schemas.AttendeeIn(name=person.name, email=person.email, phone=person.phone)
    length = timedelta(minutes=kind.duration_minutes + (calendar.buffer_after_minutes or 0))
    for start in _candidate_starts(asked, rng):
        if any(start < end and begin < start + length for begin, end in dates.busy):
            continue
        try:
            appointment = await booking.book(
                session,
                calendar,
                start=start,
                event_type_id=kind.id,
                attendee=attendee,
                notes=None,
                source="chat",
                conversation_id=conversation.id,
                contact_id=lead.contact_id if lead else None,
                now=asked,
            )
        except DemandlyError:
            continue
        dates.mark(appointment, conversation.last_activity_at)
        dates.busy.append((start, start + length))
        if cancelled:
            later = conversation.last_activity_at + timedelta(days=1)
            await booking.cancel(session, appointment, "Krank", now=min(later, now))
        elif appointment.end_at < now:
            outcome = "no_show" if rng.random() < 0.15 else "completed"
            update = booking_schemas.AppointmentUpdate(status=outcome)
            await booking.update_appointment(session, appointment, update)
        return


def _candidate_starts(asked: datetime, rng: random.Random) -> list[datetime]:
    local = asked.astimezone(BERLIN)
    starts = []
    for days in range(rng.randint(1, 6), 15):
        day = local.date() + timedelta(days=days)
        if day.weekday() > 4:
            continue
        # Within the practice's hours even for the longest treatment and its buffer.
        hours = [8, 9, 10, 11, 12] if day.weekday() == 4 else [8, 9, 10, 11, 14, 15, 16]
        for hour in rng.sample(hours, len(hours)):
            minute = rng.choice((0, 30))
            starts.append(datetime.combine(day, time(hour, minute), tzinfo=BERLIN))
    return starts


DEMO_LINE = "+4940555012300"


async def _history_call(
    session: AsyncSession,
    client: Client,
    agent: Agent,
    conversation: Conversation,
    person: Person,
    lead: Lead | None,
    dates: _Dates,
) -> None:
    ended = conversation.ended_at or conversation.last_activity_at
    duration = int((conversation.last_activity_at - conversation.created_at).total_seconds()) + 8
    outcome = "lead" if lead else ("transfer" if scene_handoff(conversation) else None)
    call = Call(
        agency_id=client.agency_id,
        client_id=client.id,
        agent_id=agent.id,
        agent_version_id=agent.current_version_id,
        conversation_id=conversation.id,
        direction="inbound",
        mode="gather",
        from_number=person.phone,
        to_number=DEMO_LINE,
        status="completed",
        started_at=conversation.created_at,
        answered_at=conversation.created_at,
        ended_at=ended,
        duration_seconds=duration,
        end_reason="transfer" if outcome == "transfer" else "hangup",
        recording_consent=False,
        outcome=outcome,
        summary=_summary(conversation, person),
    )
    session.add(call)
    await session.flush()
    dates.mark(call, conversation.created_at)
    await _call_completed(session, call)


def scene_handoff(conversation: Conversation) -> bool:
    return conversation.status == "handoff"


def _summary(conversation: Conversation, person: Person) -> str:
    answers = conversation.lead_fields or {}
    if conversation.language == "en":
        return f"{person.name} called about: {answers.get('job', 'a question')}."
    return f"{person.name} rief an wegen: {answers.get('job', 'einer Frage')}."


async def _history_outbound_call(
    session: AsyncSession,
    client: Client,
    agent: Agent,
    person: Person,
    at: datetime,
    index: int,
    dates: _Dates,
) -> None:
    """Call-backs of the week: some nobody picked up."""
    status, duration = (("no-answer", None), ("busy", None), ("completed", 96))[index % 3]
    call = Call(
        agency_id=client.agency_id,
        client_id=client.id,
        agent_id=agent.id,
        agent_version_id=agent.current_version_id,
        direction="outbound",
        mode="gather",
        from_number=DEMO_LINE,
        to_number=person.phone,
        status=status,
        started_at=at + timedelta(hours=2),
        answered_at=at + timedelta(hours=2) if duration else None,
        ended_at=at + timedelta(hours=2, seconds=duration or 25),
        duration_seconds=duration,
        end_reason="hangup" if duration else status,
        outcome=None,
    )
    session.add(call)
    await session.flush()
    dates.mark(call, at + timedelta(hours=2))
    await _call_completed(session, call)


async def _call_completed(session: AsyncSession, call: Call) -> None:
    await emit(
        session,
        "call.completed",
        agency_id=call.agency_id,
        client_id=call.client_id,
        entity_type="call",
        entity_id=call.id,
        payload={
            "agent_id": call.agent_id,
            "status": call.status,
            "direction": call.direction,
            "duration_seconds": call.duration_seconds,
            "outcome": call.outcome,
        },
    )


async def _date_events(session: AsyncSession, dates: _Dates) -> None:
    """Each event of the history at its entity's time (the home page's activity reads them)."""
    by_time: dict[datetime, list[str]] = {}
    for entity_id, when in dates.at.items():
        by_time.setdefault(when, []).append(entity_id)
    for when, ids in by_time.items():
        await session.execute(
            update(DomainEvent).where(DomainEvent.entity_id.in_(ids)).values(created_at=when)
        )


async def _withdraw_notifications(session: AsyncSession, agency_id: str, since: datetime) -> None:
    """The jobs the history queued (lead e-mails, reminders, webhooks) never run."""
    await session.execute(
        update(Job)
        .where(Job.agency_id == agency_id, Job.status == "queued", Job.created_at >= since)
        .values(status="cancelled", finished_at=utcnow())
    )
