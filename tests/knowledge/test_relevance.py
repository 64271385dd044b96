"""Questions phrased differently from the text find the right passage; unrelated questions
fall below the threshold (German and English)."""

from __future__ import annotations

import httpx
import pytest

from demandly.kit.db import Database
from demandly.knowledge.index import NOT_KNOWN_BELOW
from tests.factories import Tenant
from tests.knowledge.conftest import add_source, create_base, run_jobs, search

PRAXIS_DE = """# Zahnarztpraxis Dr. Sommer

## Leistungen und Preise
Professionelle Zahnreinigung: 89 €. Bleaching der Zähne ab 250 €.
Kunststofffüllungen kosten je nach Größe zwischen 60 und 120 €.

## Sprechzeiten
Montag bis Donnerstag von 8 bis 18 Uhr, freitags von 8 bis 13 Uhr.

## Anfahrt und Parken
Sie finden uns in der Lindenstraße 12 in Köln. Parkplätze gibt es im Hof hinter dem Haus.

## Angstpatienten
Wir behandeln Angstpatienten besonders behutsam, auf Wunsch unter Vollnarkose.
"""

QA_EN = [
    {
        "question": "Do you offer emergency appointments?",
        "answer": "Yes. Patients in pain are seen on the same day; call us before 10 am.",
    },
    {
        "question": "Which insurance plans do you accept?",
        "answer": "We bill all public and private health insurers directly.",
    },
    {
        "question": "Where can I park my car?",
        "answer": "Free parking spaces are in the courtyard behind the building.",
    },
]


@pytest.fixture
async def german(client: httpx.AsyncClient, tenant: Tenant, db: Database) -> str:
    base = await create_base(client, tenant, "de")
    await add_source(
        client, tenant, base["id"], {"kind": "markdown", "title": "Praxis", "text": PRAXIS_DE}
    )
    await run_jobs(db)
    return base["id"]


@pytest.fixture
async def english(client: httpx.AsyncClient, tenant: Tenant, db: Database) -> str:
    base = await create_base(client, tenant, "en")
    await add_source(client, tenant, base["id"], {"kind": "qa", "title": "FAQ", "pairs": QA_EN})
    await run_jobs(db)
    return base["id"]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Was kostet eine Zahnreinigung?", "Professionelle Zahnreinigung: 89 €"),
        ("Wie teuer ist eine Füllung?", "Kunststofffüllungen"),
        ("Wann haben Sie geöffnet?", "Montag bis Donnerstag"),
        ("Kann man bei Ihnen parken?", "Parkplätze gibt es im Hof"),
        ("Ich habe große Angst vor dem Zahnarzt", "Angstpatienten"),
    ],
)
async def test_german_questions_find_the_passage(
    client: httpx.AsyncClient, tenant: Tenant, german: str, question: str, expected: str
) -> None:
    hits = await search(client, tenant, german, question, k=3)
    assert hits and expected in hits[0]["text"], (question, hits[:1])
    assert hits[0]["score"] >= NOT_KNOWN_BELOW
    assert hits[0]["heading"] and hits[0]["title"] == "Zahnarztpraxis Dr. Sommer"


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("I am in pain, could you see me on the same day?", "same day"),
        ("Is my private insurance accepted?", "private health insurers"),
        ("Where do I park?", "courtyard"),
    ],
)
async def test_english_questions_find_the_passage(
    client: httpx.AsyncClient, tenant: Tenant, english: str, question: str, expected: str
) -> None:
    hits = await search(client, tenant, english, question, k=3)
    assert hits and expected in hits[0]["text"], (question, hits[:1])
    assert hits[0]["score"] >= NOT_KNOWN_BELOW


@pytest.mark.parametrize(
    "question",
    [
        "Wie wird das Wetter morgen in Berlin?",
        "Verkaufen Sie auch Autoreifen?",
        "Was kostet ein Flug nach Mallorca?",
    ],
)
async def test_unrelated_german_questions_fall_below_the_threshold(
    client: httpx.AsyncClient, tenant: Tenant, german: str, question: str
) -> None:
    hits = await search(client, tenant, german, question)
    assert all(hit["score"] < NOT_KNOWN_BELOW for hit in hits), hits[:1]


@pytest.mark.parametrize(
    "question", ["Who won the football match yesterday?", "How much is a flight to London?"]
)
async def test_unrelated_english_questions_fall_below_the_threshold(
    client: httpx.AsyncClient, tenant: Tenant, english: str, question: str
) -> None:
    hits = await search(client, tenant, english, question)
    assert all(hit["score"] < NOT_KNOWN_BELOW for hit in hits), hits[:1]
