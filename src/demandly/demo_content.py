"""What makes the demo practice useful to try: its calendar, its knowledge base (the practice's
website under /demo/site/ and a PDF price list) and where its lead e-mails go.

The website is read from the files the app itself serves under ``/demo/site/`` with the same
extractor a crawl uses: at seed time no server is running yet to crawl. A refresh of that
source crawls the pages over HTTP (the host must then be allowed for fetching, see
docs/knowledge.md).
"""

from __future__ import annotations

from fpdf import FPDF
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.booking import schemas as booking_schemas
from demandly.booking import service as booking
from demandly.booking.models import Calendar
from demandly.channels.web.pages import site_page_paths
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.knowledge import schemas as knowledge_schemas
from demandly.knowledge import service as knowledge
from demandly.knowledge.chunking import chunk_document
from demandly.knowledge.extract import extract_html
from demandly.knowledge.models import KnowledgeBase, KnowledgeSource
from demandly.knowledge.tasks import ingest
from demandly.leads import schemas as lead_schemas
from demandly.leads import service as leads
from demandly.tenancy.models import Client

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
