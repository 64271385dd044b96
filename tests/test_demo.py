"""The demo practice is alive after seeding: Lena answers from the practice's website and
price list, books into its calendar, and seeding twice changes nothing."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select

from demandly.app import configure_runtime, create_app
from demandly.booking.models import Appointment, Calendar
from demandly.bootstrap import (
    DEMO_CRAFTSMAN,
    DEMO_DOMAIN,
    DEMO_LOGINS,
    DEMO_PRACTICE,
    _seed,
    demo_public_key,
)
from demandly.channels.phone.models import Call
from demandly.config import Settings
from demandly.conversations.models import Conversation
from demandly.demo_content import PEOPLE
from demandly.jobs.models import Job
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.kit.time import ensure_utc
from demandly.knowledge.models import KnowledgeBase, KnowledgeChunk, KnowledgeSource
from demandly.leads.models import Lead
from demandly.tenancy.models import Client

BASE = "http://127.0.0.1:8000"


async def _counts(db: Database) -> tuple[int, int, int, int]:
    async with db.session(Scope.for_system()) as session:
        counted = [
            await session.scalar(select(func.count()).select_from(model))
            for model in (Calendar, KnowledgeBase, KnowledgeSource, KnowledgeChunk)
        ]
    return tuple(int(c or 0) for c in counted)  # type: ignore[return-value]


async def test_the_demo_practice_has_a_calendar_and_an_indexed_knowledge_base(
    fresh_db: tuple[Database, Settings],
) -> None:
    db, settings = fresh_db
    configure_runtime(settings)  # the history's e-mails are sealed with the keyring
    await _seed(db, BASE)
    calendars, bases, sources, chunks = await _counts(db)
    assert (calendars, bases, sources) == (1, 1, 2)
    assert chunks >= 6
    async with db.session(Scope.for_system()) as session:
        states = (await session.execute(select(KnowledgeSource.status))).scalars().all()
        assert set(states) == {"ready"}
    await _seed(db, BASE)
    assert await _counts(db) == (calendars, bases, sources, chunks)


async def test_lena_answers_from_the_practice_website_with_its_source(
    fresh_db: tuple[Database, Settings],
) -> None:
    db, settings = fresh_db
    configure_runtime(settings)
    await _seed(db, BASE)
    async with db.session(Scope.for_system()) as session:
        public_key = await demo_public_key(session)
    app = create_app(settings, database=db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        started = await http.post(
            f"/api/v1/public/agents/{public_key}/conversations", json={"consent": True}
        )
        assert started.status_code == 201, started.text
        token = started.json()["token"]
        answer = await http.post(
            f"/api/v1/public/conversations/{started.json()['conversation_id']}/messages",
            json={"text": "Wie lange hält ein Implantat?"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 200, answer.text
    [reply] = [m for m in answer.json()["messages"] if m["role"] == "assistant"]
    assert "zwanzig Jahre" in reply["content"]
    assert any(s["url"] == f"{BASE}/demo/site/implantate.html" for s in reply["sources"])


async def _signed_in_owner(http: httpx.AsyncClient) -> None:
    owner = next(login for login in DEMO_LOGINS if login.role == "agency_owner")
    response = await http.post(
        "/login", data={"email": owner.email, "password": owner.password, "next": "/app"}
    )
    assert response.status_code == 303, response.text


async def _client_ids(db: Database) -> dict[str, str]:
    async with db.session(Scope.for_system()) as session:
        rows = (await session.execute(select(Client.name, Client.id))).all()
    return {name: client_id for name, client_id in rows}


async def test_the_demo_has_a_week_of_history_in_the_dashboard(
    fresh_db: tuple[Database, Settings],
) -> None:
    db, settings = fresh_db
    configure_runtime(settings)
    await _seed(db, BASE)
    ids = await _client_ids(db)
    practice, krause = ids[DEMO_PRACTICE], ids[DEMO_CRAFTSMAN]
    app = create_app(settings, database=db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        await _signed_in_owner(http)
        home = await http.get("/app")
        assert DEMO_PRACTICE in home.text and DEMO_CRAFTSMAN in home.text
        for client_id in (practice, krause):
            inbox = await http.get(f"/app/clients/{client_id}/inbox")
            assert inbox.status_code == 200
            assert len(set(re.findall(r"/inbox/(conv_[a-z0-9]+)", inbox.text))) >= 15
            leads = await http.get(f"/app/clients/{client_id}/leads")
            assert leads.status_code == 200
            assert sum(person.name in leads.text for person in PEOPLE) >= 3
        this_week = await http.get(f"/app/clients/{practice}/calendar")
        monday = re.search(r"week=(\d{4}-\d{2}-\d{2})", this_week.text)
        weeks = [this_week.text]
        for week in set(re.findall(r"week=(\d{4}-\d{2}-\d{2})", this_week.text)):
            weeks.append((await http.get(f"/app/clients/{practice}/calendar?week={week}")).text)
        assert monday is not None
        assert any(person.name in text for text in weeks for person in PEOPLE)
        calls = await http.get(f"/app/clients/{krause}/phone/calls")
        assert calls.status_code == 200
        assert len(set(re.findall(r"/phone/calls/(call_[a-z0-9]+)", calls.text))) >= 10
    async with httpx.AsyncClient(
        transport=transport, base_url=f"http://{DEMO_DOMAIN}:8000"
    ) as portal:
        login = await portal.get("/login")
        assert "Nordlicht Digital" in login.text and "Demandly" not in login.text


async def test_the_history_is_spread_over_the_week_and_made_once(
    fresh_db: tuple[Database, Settings],
) -> None:
    db, settings = fresh_db
    configure_runtime(settings)
    await _seed(db, BASE)
    counted = await _history_counts(db)
    await _seed(db, BASE)
    assert await _history_counts(db) == counted
    conversations, leads, appointments, calls, queued = counted
    assert 40 <= conversations <= 70 and leads >= 15 and appointments >= 8 and calls >= 10
    assert queued == 0  # no e-mails about last week's leads
    async with db.session(Scope.for_system()) as session:
        times = (await session.execute(select(Conversation.created_at))).scalars().all()
        statuses = set((await session.execute(select(Lead.status))).scalars())
        booked = set((await session.execute(select(Appointment.status))).scalars())
    now = datetime.now(UTC)
    assert all(now - timedelta(days=8) < ensure_utc(t) <= now for t in times)
    assert len({ensure_utc(t).date() for t in times}) >= 5
    assert {"new", "qualified", "won", "contacted"} <= statuses
    assert {"confirmed", "cancelled", "completed"} <= booked


async def _history_counts(db: Database) -> tuple[int, ...]:
    async with db.session(Scope.for_system()) as session:
        counted = [
            await session.scalar(select(func.count()).select_from(model))
            for model in (Conversation, Lead, Appointment, Call)
        ]
        queued = await session.scalar(
            select(func.count()).select_from(Job).where(Job.status == "queued")
        )
    return (*(int(c or 0) for c in counted), int(queued or 0))
