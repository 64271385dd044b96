"""Knowledge benchmark: ingest throughput, BM25 search latency and retrieval quality, on SQLite
and PostgreSQL, in-process (the service functions the API and the engine call).

- Ingest: Markdown sources of 50 passages each go through the real ingestion (chunking,
  normalisation, index triggers, progress commits; no embeddings) until the base holds 1k,
  10k and 100k chunks; chunks/s per step.
- Latency: p50/p95 of ``service.retrieve`` (index queries + BM25 ranking + duplicate collapse,
  k=5) for 200 evaluation questions, asked three times over (600 searches: one pass's p95 is
  its 10th-slowest question, too few to tell 15 ms from 16), against the base at each size;
  the first pass (the cold one: the per-process term statistics are still empty) is also
  shown on its own. After each ingest step
  the index is maintained as the platform does on its own: on PostgreSQL the chunks are
  vacuumed and analysed, as autovacuum would (``common.vacuum_analyze``); on SQLite the
  full-text index is merged, as the periodic job ``knowledge.compact_index`` would (``_compact``).
- Quality: recall@1 and recall@5 of the evaluation set (German and English questions,
  paraphrased, over generated passages; see ``corpus``), with and without the compound
  splitting of the normalisation; and, on the same set, the databases ranking alone, top 5
  (no normalisation of ours): PostgreSQL ``german``/``english`` (by the passage's and the
  question's language) and ``simple`` tsvectors with ``ts_rank_cd`` and ``ts_rank``; FTS5
  ``unicode61 remove_diacritics 2``, ``porter unicode61 remove_diacritics 2`` and ``trigram``
  with ``bm25()`` (scratch tables in the bench's fresh database; ``_native_postgres``,
  ``_native_sqlite``).

The corpus is generated deterministically: fictitious businesses (kind x family name x town)
with six facts each (prices, opening hours, address and parking, payment, booking, team), each
fact one passage under a heading. Questions name the business and ask for the fact in other
words than the passage uses ("Wie teuer ...", "Wann hat ... offen?").

    .venv/bin/python bench/knowledge.py [--sizes 1000,10000,100000] [--backends sqlite,postgres]
        [--pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/test] [--quality-only]

``--quality-only`` skips the ingest and latency steps (about a minute for both backends).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import common
from rich.console import Console
from rich.table import Table

SECTIONS_PER_SOURCE = 50
LATENCY_QUERIES = 200
LATENCY_PASSES = 3
EVAL_BUSINESSES = 180  # x 6 facts = 1,080 passages per language
EVAL_QUESTIONS = 200  # per language

SURNAMES = [
    "Albers",
    "Brandt",
    "Claussen",
    "Dietrich",
    "Ebert",
    "Fischer",
    "Grimm",
    "Hartmann",
    "Imhof",
    "Jansen",
    "Kellner",
    "Lorenz",
    "Mertens",
    "Neumann",
    "Oswald",
    "Peters",
    "Quast",
    "Roth",
    "Seidel",
    "Thiele",
    "Ulrich",
    "Vogel",
    "Winter",
    "Xander",
    "Young",
    "Zeller",
    "Arnold",
    "Bauer",
    "Conrad",
    "Decker",
    "Engel",
    "Frank",
    "Graf",
    "Hesse",
    "Iwan",
    "Jung",
    "Kraus",
    "Lange",
    "Maier",
    "Nagel",
]
TOWNS = [
    "Aachen",
    "Bremen",
    "Celle",
    "Dessau",
    "Erfurt",
    "Fulda",
    "Gera",
    "Hamm",
    "Jena",
    "Kiel",
    "Lahr",
    "Mainz",
]
KINDS_DE = (
    ("Zahnarztpraxis", "Zahnreinigung", "Füllung"),
    ("Friseursalon", "Haarschnitt", "Färben"),
    ("Autowerkstatt", "Ölwechsel", "Reifenwechsel"),
    ("Physiotherapie", "Massage", "Krankengymnastik"),
    ("Tierarztpraxis", "Impfung", "Kastration"),
    ("Fahrschule", "Fahrstunde", "Prüfungsgebühr"),
)
KINDS_EN = (
    ("Dental Clinic", "teeth cleaning", "filling"),
    ("Hair Salon", "haircut", "colouring"),
    ("Car Garage", "oil change", "tyre change"),
    ("Physio Studio", "massage", "physiotherapy session"),
    ("Vet Practice", "vaccination", "neutering"),
    ("Driving School", "driving lesson", "exam fee"),
)


@dataclass(frozen=True)
class Passage:
    key: str  # unique text inside the passage that identifies it
    heading: str
    text: str
    language: str


@dataclass(frozen=True)
class Question:
    text: str
    key: str
    language: str


def _business(i: int, kinds: tuple[tuple[str, str, str], ...]) -> tuple[str, str, str, str]:
    kind, service_a, service_b = kinds[i % len(kinds)]
    surname = SURNAMES[(i // len(kinds)) % len(SURNAMES)]
    town = TOWNS[(i // (len(kinds) * len(SURNAMES))) % len(TOWNS)]
    suffix = i // (len(kinds) * len(SURNAMES) * len(TOWNS))
    name = f"{kind} {surname} {town}" + (f" {suffix + 1}" if suffix else "")
    return name, service_a, service_b, surname


def german(i: int, rng: random.Random) -> tuple[list[Passage], list[Question]]:
    name, a, b, surname = _business(i, KINDS_DE)
    price_a, price_b = rng.randint(20, 300), rng.randint(20, 300)
    opens, closes = rng.choice((7, 8, 9)), rng.choice((17, 18, 19, 20))
    street, number = rng.choice(("Lindenstraße", "Hauptstraße", "Am Markt")), rng.randint(1, 99)
    phone = f"0{rng.randint(200, 999)} {rng.randint(100000, 999999)}"
    staff = rng.randint(3, 25)
    facts = [
        (
            f"Preise {name}",
            f"{a} bei {name}: {price_a} Euro. {b}: {price_b} Euro, jeweils inklusive MwSt.",
            [f"Wie teuer ist {a} bei {name}?", f"Was muss ich bei {name} für {a} bezahlen?"],
        ),
        (
            f"Öffnungszeiten {name}",
            f"{name} ist montags bis freitags von {opens} bis {closes} Uhr für Sie da.",
            [f"Wann hat {name} geöffnet?", f"Wie lange hat {name} offen?"],
        ),
        (
            f"Anfahrt {name}",
            f"Sie finden {name} in der {street} {number}. Parkplätze gibt es im Hof.",
            [f"Wo kann ich bei {name} parken?", f"In welcher Straße liegt {name}?"],
        ),
        (
            f"Bezahlung {name}",
            f"Bei {name} zahlen Sie bar, mit EC-Karte oder auf Rechnung.",
            [f"Kann ich bei {name} mit Karte zahlen?", f"Nimmt {name} Kartenzahlung?"],
        ),
        (
            f"Termine {name}",
            f"Termine bei {name} vereinbaren Sie telefonisch unter {phone} oder online.",
            [f"Wie bekomme ich einen Termin bei {name}?", f"Telefonnummer für Termine {name}?"],
        ),
        (
            f"Team {name}",
            f"Das Team von {name} zählt {staff} Mitarbeitende unter Leitung von {surname}.",
            [f"Wer leitet {name}?", f"Wie viele Mitarbeitende hat {name}?"],
        ),
    ]
    return _pack(facts, "de", rng)


def english(i: int, rng: random.Random) -> tuple[list[Passage], list[Question]]:
    name, a, b, surname = _business(i, KINDS_EN)
    price_a, price_b = rng.randint(20, 300), rng.randint(20, 300)
    opens, closes = rng.choice((7, 8, 9)), rng.choice((5, 6, 7, 8))
    street, number = rng.choice(("Linden Road", "High Street", "Market Square")), rng.randint(1, 99)
    phone = f"0{rng.randint(200, 999)} {rng.randint(100000, 999999)}"
    staff = rng.randint(3, 25)
    facts = [
        (
            f"Prices {name}",
            f"{a.capitalize()} at {name}: {price_a} dollars. {b.capitalize()}: {price_b} dollars.",
            [f"How much is a {a} at {name}?", f"What does {name} charge for a {a}?"],
        ),
        (
            f"Opening hours {name}",
            f"{name} is open Monday to Friday from {opens} am to {closes} pm.",
            [f"When is {name} open?", f"What are the opening hours of {name}?"],
        ),
        (
            f"Directions {name}",
            f"You find {name} at {number} {street}. Parking is available behind the building.",
            [f"Where can I park at {name}?", f"What is the street address of {name}?"],
        ),
        (
            f"Payment {name}",
            f"At {name} you can pay in cash, by card or by invoice.",
            [f"Can I pay by card at {name}?", f"Does {name} accept cards?"],
        ),
        (
            f"Appointments {name}",
            f"Book appointments with {name} by phone on {phone} or online.",
            [f"How do I book an appointment with {name}?", f"Phone number to book {name}?"],
        ),
        (
            f"Team {name}",
            f"The team of {name} has {staff} people and is led by {surname}.",
            [f"Who leads {name}?", f"How many people work at {name}?"],
        ),
    ]
    return _pack(facts, "en", rng)


def _pack(
    facts: list[tuple[str, str, list[str]]], language: str, rng: random.Random
) -> tuple[list[Passage], list[Question]]:
    passages = [Passage(text, heading, text, language) for heading, text, _ in facts]
    questions = [Question(rng.choice(asks), text, language) for _, text, asks in facts]
    return passages, questions


def corpus(count: int, seed: int = 7) -> list[Passage]:
    """``count`` passages, German and English businesses alternating."""
    rng = random.Random(seed)
    found: list[Passage] = []
    i = 0
    while len(found) < count:
        found += german(i, rng)[0] + english(i, rng)[0]
        i += 1
    return found[:count]


def evaluation(seed: int = 11) -> tuple[list[Passage], list[Question]]:
    rng = random.Random(seed)
    passages: list[Passage] = []
    questions: list[Question] = []
    for i in range(EVAL_BUSINESSES):
        for make in (german, english):
            found, asked = make(i, rng)
            passages += found
            questions += asked
    by_language = {
        lang: rng.sample([q for q in questions if q.language == lang], EVAL_QUESTIONS)
        for lang in ("de", "en")
    }
    return passages, by_language["de"] + by_language["en"]


def markdown(passages: list[Passage]) -> str:
    return "\n\n".join(f"## {p.heading}\n\n{p.text}" for p in passages)


# --- running -------------------------------------------------------------------------------


async def _setup(url: str) -> tuple[object, object, str, str]:
    from demandly.kit.context import Scope
    from demandly.kit.db import Database
    from demandly.knowledge.models import KnowledgeBase
    from demandly.tenancy.models import Agency, Client

    db = Database(url)
    async with db.session(Scope.for_system()) as session:
        agency = Agency(name="Bench", slug=f"bench-{time.time_ns()}", branding={})
        session.add(agency)
        await session.flush()
        client = Client(agency_id=agency.id, name="Bench client")
        session.add(client)
        await session.flush()
        base = KnowledgeBase(agency_id=agency.id, client_id=client.id, name="Bench", language="de")
        session.add(base)
        await session.commit()
        return db, Scope.for_agency(agency.id), base.id, client.id


async def _ingest(db, scope, kb_id: str, passages: list[Passage]) -> float:  # type: ignore[no-untyped-def]
    """Ingest the passages as Markdown sources; returns the seconds it took."""
    from demandly.knowledge import schemas, service
    from demandly.knowledge.tasks import ingest

    started = time.perf_counter()
    for start in range(0, len(passages), SECTIONS_PER_SOURCE):
        part = passages[start : start + SECTIONS_PER_SOURCE]
        async with db.session(scope) as session:
            base = await service.get_base(session, kb_id)
            data = schemas.MarkdownSourceCreate(kind="markdown", title="Bench", text=markdown(part))
            source = await service.add_source(session, base, data)
            await session.commit()
        result = await ingest(db, scope, source.id)
        assert result is not None and result.status == "ready", result
    return time.perf_counter() - started


async def _latencies(db, scope, kb_id: str, questions: list[Question]) -> list[float]:  # type: ignore[no-untyped-def]
    from demandly.knowledge import service

    timings = []
    for question in questions:
        async with db.session(scope) as session:
            started = time.perf_counter()
            await service.retrieve(session, [kb_id], question.text, 5)
            timings.append((time.perf_counter() - started) * 1000)
    return timings


async def _recall(db, scope, kb_id: str, questions: list[Question]) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from demandly.knowledge import service

    hits1 = {"de": 0, "en": 0}
    hits5 = {"de": 0, "en": 0}
    for question in questions:
        async with db.session(scope) as session:
            found = await service.retrieve(session, [kb_id], question.text, 5)
        ranks = [i for i, p in enumerate(found) if question.key in p.text]
        if ranks and ranks[0] == 0:
            hits1[question.language] += 1
        if ranks:
            hits5[question.language] += 1
    total = {lang: sum(q.language == lang for q in questions) for lang in hits1}
    return {
        **{f"recall@1 {lang}": hits1[lang] / total[lang] for lang in total},
        **{f"recall@5 {lang}": hits5[lang] / total[lang] for lang in total},
    }


async def _compact(db) -> None:  # type: ignore[no-untyped-def]
    """What the worker's periodic job ``knowledge.compact_index`` does within minutes of an
    ingestion, and the bench (no worker) would not: merge SQLite's full-text index into one
    segment (``index.compact``; nothing on PostgreSQL)."""
    from demandly.kit.context import Scope
    from demandly.knowledge import index

    async with db.session(Scope.for_system()) as session:
        await index.compact(session)
        await session.commit()


# --- database-native quality ---------------------------------------------------------------

# Ranking by the database alone, on the evaluation set, for comparison with the product's own
# normalisation + BM25 (``_recall``). Each variant: (label, how passages are indexed, how a
# question becomes a query, how hits are ordered).
PG_NATIVE = (
    # (label, config for German, config for English, rank function)
    ("PG german/english, ts_rank_cd", "german", "english", "ts_rank_cd"),
    ("PG german/english, ts_rank", "german", "english", "ts_rank"),
    ("PG simple, ts_rank_cd", "simple", "simple", "ts_rank_cd"),
    ("PG simple, ts_rank", "simple", "simple", "ts_rank"),
)
FTS5_NATIVE = (
    # (label, tokenize option, shortest query word)
    ("FTS5 unicode61 remove_diacritics 2, bm25", "unicode61 remove_diacritics 2", 1),
    ("FTS5 porter unicode61 remove_diacritics 2, bm25", "porter unicode61 remove_diacritics 2", 1),
    ("FTS5 trigram, bm25", "trigram", 3),
)
_WORD = re.compile(r"\w+")
QUALITY_COLUMNS = ("recall@1 de", "recall@1 en", "recall@5 de", "recall@5 en")


def _score(questions: list[Question], found: list[list[str]]) -> dict[str, float]:
    """recall@1 and recall@5 per language: ``found`` holds each question's top-5 passage texts."""
    hits1 = {"de": 0, "en": 0}
    hits5 = {"de": 0, "en": 0}
    for question, texts in zip(questions, found, strict=True):
        ranks = [i for i, text in enumerate(texts) if question.key in text]
        hits1[question.language] += bool(ranks and ranks[0] == 0)
        hits5[question.language] += bool(ranks)
    total = {lang: sum(q.language == lang for q in questions) for lang in hits1}
    return {
        **{f"recall@1 {lang}": hits1[lang] / total[lang] for lang in total},
        **{f"recall@5 {lang}": hits5[lang] / total[lang] for lang in total},
    }


def _native_postgres(url: str, passages: list[Passage], questions: list[Question]) -> dict:  # type: ignore[type-arg]
    """A scratch table in the bench's fresh database: each passage's ``heading || ' ' || text``
    as a tsvector of its language's configuration, GIN index; a question's lexemes (the same
    configuration's ``plainto_tsquery``) OR-ed; top 5 by the rank function (ties: insert
    order)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("+asyncpg", "+psycopg2"), isolation_level="AUTOCOMMIT")
    results = {}
    with engine.connect() as conn:
        for label, cfg_de, cfg_en, rank in PG_NATIVE:
            conn.execute(text("DROP TABLE IF EXISTS bench_native"))
            conn.execute(
                text("CREATE TABLE bench_native (id int PRIMARY KEY, body text, tsv tsvector)")
            )
            conn.execute(
                text(
                    "INSERT INTO bench_native VALUES "
                    "(:id, :body, to_tsvector(CAST(:cfg AS regconfig), :heading || ' ' || :body))"
                ),
                [
                    {
                        "id": i,
                        "body": p.text,
                        "heading": p.heading,
                        "cfg": cfg_de if p.language == "de" else cfg_en,
                    }
                    for i, p in enumerate(passages)
                ],
            )
            conn.execute(text("CREATE INDEX bench_native_tsv ON bench_native USING gin (tsv)"))
            conn.execute(text("VACUUM ANALYZE bench_native"))
            query = text(
                "WITH q AS (SELECT CAST(replace(CAST(plainto_tsquery(CAST(:cfg AS regconfig), :q)"
                " AS text), '&', '|') AS tsquery) AS q) "
                f"SELECT body FROM bench_native, q WHERE tsv @@ q.q "
                f"ORDER BY {rank}(tsv, q.q) DESC, id LIMIT 5"
            )
            found = [
                [
                    row[0]
                    for row in conn.execute(
                        query,
                        {"cfg": cfg_de if q.language == "de" else cfg_en, "q": q.text},
                    )
                ]
                for q in questions
            ]
            results[label] = _score(questions, found)
        conn.execute(text("DROP TABLE bench_native"))
    engine.dispose()
    return results


def _fts5_query(question: str, shortest: int) -> str:
    quoted = [
        '"' + w.replace('"', '""') + '"' for w in _WORD.findall(question) if len(w) >= shortest
    ]
    return " OR ".join(quoted)


def _native_sqlite(path: Path, passages: list[Passage], questions: list[Question]) -> dict:  # type: ignore[type-arg]
    """Scratch FTS5 tables in the bench's fresh SQLite file over the raw text (heading and
    passage, no normalisation of ours); a question's words OR-ed; top 5 by ``bm25()``."""
    import sqlite3

    results = {}
    conn = sqlite3.connect(path)
    try:
        for label, tokenize, shortest in FTS5_NATIVE:
            conn.execute("DROP TABLE IF EXISTS bench_native")
            conn.execute(
                f'CREATE VIRTUAL TABLE bench_native USING fts5(body, tokenize="{tokenize}")'
            )
            conn.executemany(
                "INSERT INTO bench_native (rowid, body) VALUES (?, ?)",
                [(i + 1, f"{p.heading} {p.text}") for i, p in enumerate(passages)],
            )
            conn.commit()
            texts = {i + 1: p.text for i, p in enumerate(passages)}
            found = []
            for q in questions:
                match = _fts5_query(q.text, shortest)
                rows = (
                    conn.execute(
                        "SELECT rowid FROM bench_native WHERE bench_native MATCH ? "
                        "ORDER BY bm25(bench_native), rowid LIMIT 5",
                        (match,),
                    ).fetchall()
                    if match
                    else []
                )
                found.append([texts[r[0]] for r in rows])
            results[label] = _score(questions, found)
        conn.execute("DROP TABLE bench_native")
        conn.commit()
    finally:
        conn.close()
    return results


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def bench_backend(backend: str, sizes: list[int]) -> tuple[list[dict], dict]:  # type: ignore[type-arg]
    """Latency rows for ``sizes`` (none if empty) and recall per variant: the product's
    pipeline with and without compound splitting, then the database-native variants."""
    from demandly.knowledge import index

    folder = Path(tempfile.mkdtemp(prefix=f"bench-kb-{backend}-"))
    url = common.fresh_database(backend, folder)
    rows = []
    quality: dict[str, dict[str, float]] = {}
    try:
        db, scope, kb_id, _ = await _setup(url)
        eval_passages, questions = evaluation()
        timing_questions = random.Random(3).sample(questions, LATENCY_QUERIES)
        passages = corpus(max(sizes, default=0))
        done = 0
        for size in sizes:
            seconds = await _ingest(db, scope, kb_id, passages[done:size])
            ingested = size - done
            done = size
            common.vacuum_analyze(url, "knowledge_chunks")
            await _compact(db)
            passes = [
                await _latencies(db, scope, kb_id, timing_questions) for _ in range(LATENCY_PASSES)
            ]
            timings = [ms for one_pass in passes for ms in one_pass]
            rows.append(
                {
                    "backend": backend,
                    "chunks": size,
                    "ingest chunks/s": round(ingested / seconds),
                    "p50 ms": round(statistics.median(timings), 2),
                    "p95 ms": round(_percentile(timings, 0.95), 2),
                    "first pass p95 ms": round(_percentile(passes[0], 0.95), 2),
                }
            )
        for variant in ("compounds", "no compounds"):
            if variant == "no compounds":
                index.COMPOUND_MIN = 10**6
                index._word_terms.cache_clear()
            _, eval_scope, eval_kb, _ = await _setup(url)
            await _ingest(db, eval_scope, eval_kb, eval_passages)
            common.vacuum_analyze(url, "knowledge_chunks")
            await _compact(db)
            quality[variant] = await _recall(db, eval_scope, eval_kb, questions)
        index.COMPOUND_MIN = 10
        index._word_terms.cache_clear()
        await db.dispose()  # type: ignore[attr-defined]
        if backend == "sqlite":
            native = _native_sqlite(folder / "bench.db", eval_passages, questions)
        else:
            native = _native_postgres(url, eval_passages, questions)
        quality |= native
    finally:
        common.drop_database(url)
    return rows, quality


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--pg-url", default=common.PG_URL)
    parser.add_argument(
        "--quality-only", action="store_true", help="only retrieval quality (no 1k/10k/100k)"
    )
    args = parser.parse_args()
    common.PG_URL = args.pg_url
    os.environ.setdefault("DEMANDLY_SECRET_KEY", common.SECRET)
    os.environ.setdefault("DEMANDLY_LOG_LEVEL", "WARNING")
    from demandly.app import configure_runtime
    from demandly.config import get_settings

    configure_runtime(get_settings())
    sizes = [] if args.quality_only else [int(s) for s in args.sizes.split(",")]
    console = Console(width=140)
    speed = Table(title="Knowledge: ingest and BM25 search (retrieve, k=5)")
    for column in ("backend", "chunks", "ingest chunks/s", "p50 ms", "p95 ms", "first pass p95 ms"):
        speed.add_column(column, justify="right")
    recall = Table(title="Retrieval quality, top 5 (400 questions over 2,160 passages)")
    recall.add_column("backend")
    recall.add_column("variant")
    for column in QUALITY_COLUMNS:
        recall.add_column(column, justify="right")
    for backend in args.backends.split(","):
        rows, quality = asyncio.run(bench_backend(backend, sizes))
        for row in rows:
            speed.add_row(*(str(v) for v in row.values()))
        for variant, metrics in quality.items():
            label = (
                f"own normalisation + BM25, {variant}" if variant.endswith("compounds") else variant
            )
            recall.add_row(backend, label, *(f"{metrics[c]:.3f}" for c in QUALITY_COLUMNS))
    if sizes:
        console.print(speed)
    console.print(recall)
    console.print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )


if __name__ == "__main__":
    main()
