"""The full-text index: one normalisation for both databases, and the SQL of each.

Text is normalised in Python before either database sees it (``terms``): folded (lower case,
umlauts and accents without marks, ``ß`` -> ``ss``), stop words dropped, crudely stemmed with
the offline engine's rules, price and cost words unified, and long German compounds also
indexed by their tails (``zahnreinigung`` -> ``reinigung`` ...). The databases then only split
on spaces and rank: SQLite with FTS5's BM25 (``knowledge_fts``, kept in step with
``knowledge_chunks`` by triggers), PostgreSQL with ``ts_rank`` over a ``simple`` tsvector (a
trigger fills ``tsv``; GIN index). Why this and not the databases' own German configuration:
see docs/knowledge.md (measured with bench/knowledge.py).

Scores: the databases' ranks are not comparable across queries, so every hit also gets a
*coverage*: the share of the question's words the passage contains. ``score`` (0..1) blends
both; below ``NOT_KNOWN_BELOW`` the passage does not answer the question.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from sqlalchemy import bindparam, func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.engine.offline.language import STOP_WORDS, SYNONYMS, fold_spelling, stem, words
from demandly.knowledge.models import KnowledgeChunk

# The best passage of an answerable question scores at least this: about two thirds of the
# question's words must be in it (see docs/knowledge.md).
NOT_KNOWN_BELOW = 0.6
# Compounds: tokens at least this long are also indexed by their tails of at least
# COMPOUND_TAIL characters that start COMPOUND_HEAD characters in or later.
COMPOUND_MIN = 10
COMPOUND_HEAD = 4
COMPOUND_TAIL = 5
# A passage with an amount of money answers "what does it cost".
PRICE_TERM = "preis"
_PRICE = re.compile(r"\d\s*(?:€|eur\b|euro\b|\$|usd\b|chf\b)|(?:€|\$)\s*\d", re.IGNORECASE)
# How much of the score the database's relevance may take away (coverage makes the rest).
RANK_WEIGHT = 0.25


# Words of business questions that name the same thing (after folding and stemming), on top of
# the offline engine's synonyms.
_SYNONYMS = {
    "sprechzeit": "offnungszeit",
    "sprechstund": "offnungszeit",
    "offnungszeit": "offnungszeit",
    "opening": "offnungszeit",
    "teur": "preis",
    "expensiv": "preis",
    "charg": "preis",
}


# Plural endings the engine's stemmer strips whole while it keeps the singular's
# (``fullungen`` -> ``full`` but ``fullung`` -> ``fullung``): only their ``en`` goes.
_PLURALS = ("ungen", "heiten", "keiten")


def _stem(word: str) -> str:
    return word[:-2] if word.endswith(_PLURALS) else stem(word)


def _canonical(term: str) -> str:
    return _SYNONYMS.get(term) or SYNONYMS.get(term, term)


@lru_cache(maxsize=65536)
def _word_terms(token: str) -> tuple[str, ...]:
    """The index terms of one folded word: its stem, and for a long word (a German compound,
    most likely) its heads and stemmed tails, so ``angst`` finds ``angstpatienten`` and
    ``reinigung`` finds ``zahnreinigung``."""
    if token in STOP_WORDS or len(token) < 2:
        return ()
    spelled = fold_spelling(token)
    base = _stem(spelled)
    main = _canonical(base) if base != spelled else _canonical(spelled)
    if main == base and spelled in SYNONYMS:
        main = SYNONYMS[spelled]
    if len(spelled) < COMPOUND_MIN or not spelled.isalpha():
        return (main,)
    cuts = range(COMPOUND_HEAD, len(spelled) - COMPOUND_TAIL + 1)
    tails = (_canonical(_stem(spelled[i:])) for i in cuts)
    parts = {spelled[:i] for i in cuts} | {t for t in tails if len(t) >= COMPOUND_TAIL}
    return (main, *sorted(parts - {main}))


def terms(content: str) -> list[str]:
    """The normalised terms of a text, in order, repeats kept (BM25 counts them)."""
    found = [term for token in words(content) for term in _word_terms(token)]
    if _PRICE.search(content):
        found.append(PRICE_TERM)
    return found


def normalise(content: str) -> str:
    """What is indexed for a passage (``search_text``)."""
    return " ".join(terms(content))


class Group(NamedTuple):
    """One word of a question: its own term, and every term that matches it."""

    main: str
    terms: frozenset[str]


def query_groups(question: str) -> list[Group]:
    """The question's words, each with the set of terms any one of which matches it."""
    groups: dict[frozenset[str], Group] = {}
    for token in words(question):
        found = _word_terms(token)
        if found:
            groups.setdefault(frozenset(found), Group(found[0], frozenset(found)))
    return list(groups.values())


def coverage(groups: Sequence[Group], search_text: str) -> float:
    """Share of the question's words found in a passage."""
    if not groups:
        return 0.0
    present = set(search_text.split())
    return sum(1 for group in groups if group.terms & present) / len(groups)


@dataclass(frozen=True)
class Hit:
    chunk: KnowledgeChunk
    rank: float  # the database's relevance, larger is better


async def search(
    session: AsyncSession,
    kb_ids: Sequence[str],
    groups: Sequence[Group],
    limit: int,
    needed: int = 1,
) -> list[Hit]:
    """Up to ``limit`` chunks of the bases for the question, in widening rounds while fewer
    than ``needed`` are found: chunks holding every word of the question; every word but
    one; any of the question's own words (without compound parts). The first two are
    intersections, which the indexes answer fast; the last ranks every chunk sharing a word
    with the question, which costs time in proportion to the base. Chunks are loaded
    through the chunk model, so the session's tenant scope applies to them."""
    if not kb_ids or not groups:
        return []
    run = _search_postgres if session.get_bind().dialect.name == "postgresql" else _search_sqlite
    hits: list[Hit] = []
    for alternatives in _rounds(groups):
        seen = {hit.chunk.id for hit in hits}
        found = await run(session, kb_ids, alternatives, limit)
        hits += [hit for hit in found if hit.chunk.id not in seen][: limit - len(hits)]
        if len(hits) >= needed:
            break
    return hits


Alternatives = list[list[frozenset[str]]]


def _rounds(groups: Sequence[Group]) -> list[Alternatives]:
    """The rounds of a search; each a list of alternatives, each a list of term sets a chunk
    must hold one term of each."""
    every = [[g.terms for g in groups]]
    if len(groups) == 1:
        return [every]
    but_one = [[g.terms for j, g in enumerate(groups) if j != i] for i in range(len(groups))]
    if len(groups) == 2:
        return [every, but_one]
    return [every, but_one, [[frozenset({g.main})] for g in groups]]


def _fts_match(kb_ids: Sequence[str], alternatives: Alternatives) -> str:
    def any_of(terms: Iterable[str]) -> str:
        return "(" + " OR ".join(f'"{term}"' for term in sorted(terms)) + ")"

    def all_of(alternative: list[frozenset[str]]) -> str:
        return "(" + " AND ".join(any_of(g) for g in alternative) + ")"

    wanted = " OR ".join(all_of(a) for a in alternatives)
    return f"kb : {any_of(kb_ids)} AND body : ({wanted})"


def _tsquery(alternatives: Alternatives) -> str:
    def all_of(alternative: list[frozenset[str]]) -> str:
        return "(" + " & ".join("(" + " | ".join(sorted(g)) + ")" for g in alternative) + ")"

    return " | ".join(all_of(a) for a in alternatives)


async def _search_sqlite(
    session: AsyncSession,
    kb_ids: Sequence[str],
    alternatives: Alternatives,
    limit: int,
) -> list[Hit]:
    # Rank inside the index alone (bm25() is lower for better matches; the kb column does
    # not count), then load the few chunks: sorting whole chunk rows costs more than ranking.
    ranked = await session.execute(
        text(
            "SELECT rowid, bm25(knowledge_fts, 1.0, 0.0) AS rank FROM knowledge_fts "
            "WHERE knowledge_fts MATCH :match ORDER BY rank LIMIT :limit"
        ),
        {"match": _fts_match(kb_ids, alternatives), "limit": limit},
    )
    ranks = {int(row.rowid): -float(row.rank) for row in ranked}
    if not ranks:
        return []
    rows = await session.execute(
        select(KnowledgeChunk).where(KnowledgeChunk.index_rowid.in_(list(ranks)))
    )
    hits = [Hit(chunk, ranks[chunk.index_rowid]) for chunk in rows.scalars()]
    return sorted(hits, key=lambda hit: -hit.rank)


async def _search_postgres(
    session: AsyncSession,
    kb_ids: Sequence[str],
    alternatives: Alternatives,
    limit: int,
) -> list[Hit]:
    query = func.to_tsquery(literal_column("'simple'::regconfig"), _tsquery(alternatives))
    # Normalisation 1: divide by 1 + log(length), as BM25 dampens long passages.
    rank = func.ts_rank(KnowledgeChunk.tsv, query, 1)
    statement = (
        select(KnowledgeChunk, rank.label("rank"))
        .where(
            KnowledgeChunk.knowledge_base_id.in_(list(kb_ids)),
            KnowledgeChunk.tsv.op("@@")(query),
        )
        .order_by(rank.desc())
        .limit(limit)
    )
    rows = await session.execute(statement)
    return [Hit(chunk, float(value)) for chunk, value in rows.all()]


async def next_rowids(session: AsyncSession, count: int) -> list[int] | None:
    """Rowids for ``count`` new rows of knowledge_fts (SQLite: the writer holds the database
    lock, so nobody takes them meanwhile); None on PostgreSQL, which needs none."""
    if session.get_bind().dialect.name != "sqlite":
        return None
    top = (
        await session.execute(text("SELECT coalesce(max(rowid), 0) FROM knowledge_fts"))
    ).scalar()
    start = int(top or 0) + 1
    return list(range(start, start + count))


async def index_rows(session: AsyncSession, kb_ids: Sequence[str]) -> int:
    """How many full-text index rows the bases have, looked up in the index itself: on SQLite
    an index row without its chunk counts too (for tests and the benchmark)."""
    if not kb_ids:
        return 0
    if session.get_bind().dialect.name == "sqlite":
        statement = text("SELECT count(*) FROM knowledge_fts WHERE kb IN :ids")
    else:
        statement = text(
            "SELECT count(*) FROM knowledge_chunks WHERE tsv IS NOT NULL "
            "AND knowledge_base_id IN :ids"
        )
    statement = statement.bindparams(bindparam("ids", expanding=True))
    result = await session.execute(statement, {"ids": list(kb_ids)})
    return int(result.scalar() or 0)


def score(cover: float, rank: float, best_rank: float) -> float:
    """The 0..1 score of a hit: its coverage, lowered by up to RANK_WEIGHT when the database
    ranks it below the best hit."""
    relative = max(0.0, min(1.0, rank / best_rank)) if best_rank > 0 else 0.0
    return round(cover * (1 - RANK_WEIGHT + RANK_WEIGHT * relative), 4)
