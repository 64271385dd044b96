"""Platform bootstrap for the CLI: the first platform admin and the demo agency."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from demandly import demo_content
from demandly.agents import schemas as agent_schemas
from demandly.agents import service as agent_service
from demandly.agents.models import Agent, AgentStatus
from demandly.agents.repository import AgentRepository
from demandly.app import configure_runtime, create_database
from demandly.config import Settings
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.kit.errors import DemandlyError
from demandly.kit.ids import random_token
from demandly.kit.time import utcnow
from demandly.tenancy import schemas, service
from demandly.tenancy.models import Agency, AgencyDomain, Client, Role, User
from demandly.tenancy.repository import TenancyRepository

DEMO_SLUG = "nordlicht"
# The demo agency's own domain for its white-label dashboard: every *.localhost name is this
# machine in browsers, so it works without DNS (and is marked verified: there is no TXT to check).
DEMO_DOMAIN = "nordlicht.localhost"
DEMO_PRACTICE = "Zahnarztpraxis Dr. Sommer"
DEMO_CRAFTSMAN = "Elektro Krause GmbH"
HISTORY_CONVERSATIONS = {DEMO_PRACTICE: 32, DEMO_CRAFTSMAN: 20}
DEFAULT_BASE_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class DemoLogin:
    role: str
    email: str
    password: str


# Demo passwords are printed on purpose: the demo is for trying the product locally.
DEMO_LOGINS = (
    DemoLogin("platform_admin", "admin@demandly.example", "demo-platform-2026-lighthouse"),
    DemoLogin("agency_owner", "owner@nordlicht.example", "demo-nordlicht-2026-harbour"),
    DemoLogin("client_admin", "praxis@zahnarzt-sommer.example", "demo-sommer-2026-smile"),
)

DEMO_BRANDING = schemas.Branding(
    display_name="Nordlicht Digital",
    primary_color="#0f4c81",
    accent_color="#f2a541",
    support_email="support@nordlicht.example",
    sender_name="Nordlicht Digital",
    privacy_policy_url="https://nordlicht.example/datenschutz",
    imprint_url="https://nordlicht.example/impressum",
)


async def create_platform_admin(settings: Settings, email: str, password: str, name: str) -> str:
    """Returns the new admin's id; ValueError with a readable reason when refused."""
    configure_runtime(settings)
    db = create_database(settings)
    try:
        async with db.session(Scope.for_system()) as session:
            try:
                user = await service.create_user(
                    session, email, password, name, is_platform_admin=True
                )
            except DemandlyError as exc:
                raise ValueError(exc.message) from exc
            await session.commit()
            return user.id
    finally:
        await db.dispose()


async def seed_demo(settings: Settings) -> tuple[DemoLogin, ...]:
    """The demo agency "Nordlicht Digital" with two clients and a login per role. Idempotent:
    a second run finds what the first made."""
    configure_runtime(settings)
    db = create_database(settings)
    try:
        await _seed(db, settings.base_url)
    finally:
        await db.dispose()
    return DEMO_LOGINS


async def _seed(db: Database, base_url: str = DEFAULT_BASE_URL) -> None:
    async with db.session(Scope.for_system()) as session:
        repo = TenancyRepository(session)
        agency = await repo.agency_by_slug(DEMO_SLUG)
        if agency is None:
            agency = (
                await service.create_agency(
                    session,
                    schemas.AgencyCreate(
                        name="Nordlicht Digital", slug=DEMO_SLUG, branding=DEMO_BRANDING
                    ),
                )
            ).agency
            session.add(
                AgencyDomain(
                    agency_id=agency.id,
                    domain=DEMO_DOMAIN,
                    verification_token=random_token(),
                    verified_at=utcnow(),
                )
            )
            practice = await _client(session, agency, DEMO_PRACTICE)
            await _client(session, agency, DEMO_CRAFTSMAN)
        else:
            practice = None
        users = {login.role: await _user(session, login) for login in DEMO_LOGINS}
        if practice is not None:
            await service.add_membership(
                session, users["agency_owner"].id, Role.AGENCY_OWNER, agency.id
            )
            await service.add_membership(
                session, users["client_admin"].id, Role.CLIENT_ADMIN, agency.id, practice.id
            )
        practice = await _practice(session, agency)
        if practice is not None:
            await _demo_content(session, practice, base_url)
        krause = await _client_named(session, agency, DEMO_CRAFTSMAN)
        if krause is not None:
            await _craftsman_content(session, krause)
        await session.commit()
    if practice is not None:
        await demo_content.ingest_waiting_sources(db, practice)


async def _demo_content(session: AsyncSession, practice: Client, base_url: str) -> None:
    """The practice's calendar, knowledge base, lead e-mails and its agent Lena using them."""
    calendar = await demo_content.demo_calendar(session, practice)
    kb_id = await demo_content.demo_knowledge_base(session, practice, base_url)
    await demo_content.demo_lead_notifications(session, practice, DEMO_LOGINS[2].email)
    agent = await _demo_agent(session, practice, base_url, kb_id, calendar.id)
    await demo_content.demo_history(
        session,
        practice,
        agent,
        demo_content.PRACTICE_SCENES,
        HISTORY_CONVERSATIONS[DEMO_PRACTICE],
        demo_content.PRACTICE_SCORING,
        calendar=calendar,
    )


async def _craftsman_content(session: AsyncSession, krause: Client) -> None:
    """Max, the electrician's phone agent, and the week of calls and chats he had."""
    existing = AgentRepository(session).agents(client_id=krause.id, kind="phone")
    agent = (await session.execute(existing)).scalars().first()
    if agent is None:
        data = agent_schemas.AgentCreate.model_validate({**CRAFTSMAN_AGENT, "client_id": krause.id})
        agent = await agent_service.create_agent(session, krause, data)
        await agent_service.publish(session, agent)
    await demo_content.demo_history(
        session,
        krause,
        agent,
        demo_content.KRAUSE_SCENES,
        HISTORY_CONVERSATIONS[DEMO_CRAFTSMAN],
        demo_content.KRAUSE_SCORING,
    )


async def _practice(session: AsyncSession, agency: Agency) -> Client | None:
    return await _client_named(session, agency, DEMO_PRACTICE)


async def _client_named(session: AsyncSession, agency: Agency, name: str) -> Client | None:
    statement = TenancyRepository(session).clients(agency.id).where(Client.name == name)
    return (await session.execute(statement)).scalars().first()


async def _demo_agent(
    session: AsyncSession, practice: Client, base_url: str, kb_id: str, calendar_id: str
) -> Agent:
    """Lena, the practice's published chat agent on the offline engine; made only when the
    practice has no chat agent yet (an agent edited in the dashboard is left alone)."""
    existing = AgentRepository(session).agents(client_id=practice.id, kind="chat")
    found = (await session.execute(existing)).scalars().first()
    if found is not None:
        return found
    data = agent_schemas.AgentCreate.model_validate(
        {
            **DEMO_AGENT,
            "client_id": practice.id,
            "widget": _demo_widget(base_url),
            "knowledge_base_ids": [kb_id],
            "calendar_id": calendar_id,
        }
    )
    agent = await agent_service.create_agent(session, practice, data)
    await agent_service.publish(session, agent)
    return agent


async def demo_public_key(session: AsyncSession) -> str | None:
    """The public key of the demo practice's published chat agent (the /demo page embeds it);
    None when the demo is not seeded. Needs a system-scoped session."""
    agency = await TenancyRepository(session).agency_by_slug(DEMO_SLUG)
    practice = None if agency is None else await _practice(session, agency)
    if practice is None:
        return None
    statement = (
        AgentRepository(session)
        .agents(client_id=practice.id, kind="chat", status=AgentStatus.PUBLISHED)
        .order_by(Agent.created_at)
    )
    agent = (await session.execute(statement)).scalars().first()
    return None if agent is None else agent.public_key


def _demo_widget(base_url: str) -> dict[str, object]:
    """The platform's own origin may embed the demo agent, under both names of a local host
    (a browser on http://localhost:8000 sends that origin, not 127.0.0.1)."""
    parts = urlsplit(base_url)
    origins = [f"{parts.scheme}://{parts.netloc}"]
    twins = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}
    host = parts.hostname or ""
    if host in twins:
        origins.append(origins[0].replace(host, twins[host], 1))
    return {**DEMO_WIDGET, "allowed_origins": origins}


DEMO_WIDGET: dict[str, object] = {
    "primary_color": "#0b6e69",
    "accent_color": "#f2a541",
    "position": "bottom-right",
    "privacy_notice": (
        "Wenn Sie den Chat starten, verarbeitet die Zahnarztpraxis Dr. Sommer Ihre Nachrichten "
        "und Angaben (etwa Name und Telefonnummer), um Ihre Anfrage zu beantworten und einen "
        "Termin mit Ihnen abzustimmen. Bitte nennen Sie hier keine Gesundheitsdaten, die über "
        "Ihr Anliegen hinausgehen."
    ),
}

DEMO_AGENT: dict[str, object] = {
    "name": DEMO_PRACTICE,
    "kind": "chat",
    "language": "de",
    "persona_name": "Lena",
    "greeting": (
        "Guten Tag, hier ist Lena von der Zahnarztpraxis Dr. Sommer. Möchten Sie einen Termin "
        "vereinbaren, oder haben Sie eine Frage an uns?"
    ),
    "instructions": (
        "Du bist Lena, die freundliche Empfangskraft der Zahnarztpraxis Dr. Sommer in "
        "Hamburg-Eppendorf. Sprich die Patienten mit „Sie“ an, antworte kurz und herzlich. "
        "Nimm Terminwünsche auf (Name, Telefonnummer, Anliegen), beantworte Fragen nur aus den "
        "FAQ, Öffnungszeiten und Preisangaben und stelle keine Diagnosen. Bei Schmerzen oder "
        "einem Notfall bitte um einen Anruf unter 040 123 456 70."
    ),
    "qualification": [
        {"key": "name", "label": {"de": "Name", "en": "Name"}, "type": "text"},
        {
            "key": "phone",
            "label": {"de": "Telefonnummer", "en": "Phone number"},
            "type": "phone",
            "hint": "Für den Rückruf zur Terminabstimmung.",
        },
        {
            "key": "email",
            "label": {"de": "E-Mail-Adresse", "en": "E-mail address"},
            "type": "email",
            "required": False,
        },
        {
            "key": "concern",
            "label": {"de": "Anliegen", "en": "Concern"},
            "type": "choice",
            "options": ["Kontrolle", "Zahnreinigung", "Schmerzen", "Beratung Implantat"],
        },
    ],
    "faq": [
        {
            "question": "Was kostet eine professionelle Zahnreinigung?",
            "answer": (
                "Die professionelle Zahnreinigung kostet bei uns 89 Euro und dauert etwa eine "
                "Stunde. Viele Zusatzversicherungen erstatten die Kosten ganz oder teilweise."
            ),
        },
        {
            "question": "Gibt es Parkplätze bei der Praxis?",
            "answer": (
                "Ja, hinter dem Haus stehen vier Patientenparkplätze. Außerdem ist das Parkhaus "
                "am Eppendorfer Marktplatz drei Gehminuten entfernt."
            ),
        },
        {
            "question": "Behandeln Sie auch Kassenpatienten?",
            "answer": (
                "Ja, wir behandeln Kassenpatienten genauso gern wie Privatpatienten. Bringen Sie "
                "zum Termin bitte Ihre Versichertenkarte mit."
            ),
        },
        {
            "question": "Behandeln Sie auch Angstpatienten?",
            "answer": (
                "Ja. Sagen Sie uns bei der Terminvereinbarung einfach Bescheid, dann planen wir "
                "mehr Zeit ein und besprechen jeden Schritt vorher mit Ihnen."
            ),
        },
    ],
    "business_hours": {
        "timezone": "Europe/Berlin",
        "weekly": [
            *({"weekday": day, "opens": "08:00", "closes": "18:00"} for day in range(4)),
            {"weekday": 4, "opens": "08:00", "closes": "14:00"},
        ],
        "out_of_hours_message": (
            "Die Praxis ist gerade geschlossen. Ich nehme Ihr Anliegen gern auf, und wir rufen "
            "Sie am nächsten Werktag zurück. Bei starken Schmerzen wenden Sie sich bitte an den "
            "zahnärztlichen Notdienst unter 01805 05 05 18."
        ),
    },
    "price_info": (
        "Die Kontrolluntersuchung ist für Kassenpatienten zweimal im Jahr kostenfrei, die "
        "professionelle Zahnreinigung kostet 89 Euro, und das Beratungsgespräch zu Implantaten "
        "ist kostenlos; einen Kostenvoranschlag erstellen wir nach der Untersuchung."
    ),
    "handoff": {"keywords": ["Notfall", "Mitarbeiter sprechen"]},
    "tools": [
        "save_lead_details",
        "request_handoff",
        "end_conversation",
        "search_knowledge",
        "check_availability",
        "book_appointment",
        "reschedule_appointment",
        "cancel_appointment",
    ],
}


async def _client(session: AsyncSession, agency: Agency, name: str) -> Client:
    return await service.create_client(
        session,
        schemas.ClientCreate(
            agency_id=agency.id,
            name=name,
            privacy_policy_url="https://nordlicht.example/datenschutz",
        ),
    )


async def _user(session: AsyncSession, login: DemoLogin) -> User:
    existing = await TenancyRepository(session).user_by_email(login.email)
    if existing is not None:
        return existing
    return await service.create_user(
        session,
        login.email,
        login.password,
        login.role.replace("_", " ").title(),
        is_platform_admin=login.role == "platform_admin",
    )


CRAFTSMAN_AGENT: dict[str, object] = {
    "name": "Max (Telefon)",
    "kind": "phone",
    "language": "de",
    "persona_name": "Max",
    "greeting": "Elektro Krause, hier ist Max. Wie kann ich helfen?",
    "instructions": (
        "Du bist Max, der Telefonassistent von Elektro Krause, einem Elektrobetrieb in Hamburg. "
        "Nimm Störungsmeldungen und Anfragen auf (Name, Telefonnummer, Einsatzort, Art des "
        "Auftrags). Bei Stromausfall mit Brandgeruch: sofort den Notdienst 040 555 012 399 "
        "nennen. Preise nur aus den FAQ."
    ),
    "qualification": [
        {"key": "name", "label": {"de": "Name", "en": "Name"}, "type": "text"},
        {"key": "phone", "label": {"de": "Telefonnummer", "en": "Phone number"}, "type": "phone"},
        {
            "key": "email",
            "label": {"de": "E-Mail-Adresse", "en": "E-mail address"},
            "type": "email",
            "required": False,
        },
        {
            "key": "job",
            "label": {"de": "Auftrag", "en": "Job"},
            "type": "choice",
            "options": ["Störung", "Neuinstallation", "Wallbox", "Photovoltaik", "E-Check"],
        },
        {
            "key": "city",
            "label": {"de": "Einsatzort", "en": "Location"},
            "type": "text",
            "required": False,
        },
    ],
    "faq": [
        {
            "question": "Was kostet ein E-Check?",
            "answer": "Der E-Check für eine Wohnung kostet ab 149 Euro, je nach Zahl der Räume.",
        },
        {
            "question": "Haben Sie einen Notdienst?",
            "answer": "Ja, rund um die Uhr unter 040 555 012 399 (Anfahrt nachts 89 Euro).",
        },
    ],
    "business_hours": {
        "timezone": "Europe/Berlin",
        "weekly": [{"weekday": day, "opens": "07:00", "closes": "17:00"} for day in range(5)],
    },
    "handoff": {"keywords": ["Mitarbeiter", "Rechnung"]},
    "phone": {"voice_mode": "gather", "record_calls": False},
    "tools": ["save_lead_details", "request_handoff", "end_conversation"],
}
