"""The full-text index: one normalisation for both databases, and the SQL of each.

Text is normalised in Python before either database sees it (``terms``): folded (lower case,
umlauts and accents without marks, ``ß`` -> ``ss``), stop words dropped, crudely stemmed with
the offline engine's rules, price and cost words unified, and long German compounds also
indexed by their tails (``zahnreinigung`` -> ``reinigung`` ...). The databases then only split
on spaces and find: SQLite an FTS5 table (``knowledge_fts``, kept in step with
``knowledge_chunks`` by triggers), PostgreSQL a ``simple`` tsvector (a trigger fills ``tsv``;
GIN index). Neither ranks: ``search`` collects a capped set of candidates in widening rounds
and ranks them here with BM25 (docs/knowledge.md, "Ranking and score"). Why this and not the
databases' own German configuration: see docs/knowledge.md (measured with bench/knowledge.py).

Scores: BM25 is not comparable across questions, so every hit also gets a *coverage*: the
share of the question's words the passage contains. ``score`` (0..1) blends both; below
``NOT_KNOWN_BELOW`` the passage does not answer the question.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import combinations
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Integer, Select, bindparam, func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.engine.offline.language import STOP_WORDS, SYNONYMS, fold_spelling, stem, words
from demandly.kit.db import ScopedQuery, TenantFilter
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
# How much of the score BM25 may take away (coverage makes the rest).
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
    rank: float  # BM25 of the passage for the question, larger is better
    coverage: float  # share of the question's words in the passage (``coverage``)


# A round reads at most this many matching passages from the index, unranked (in the index's
# own order, which lets it stop early); they are ranked here. See docs/knowledge.md.
CANDIDATES = 100
# A round that holds more than CANDIDATES chunks runs its most specific alternatives one by
# one, at most this many (each is one index query).
ONE_BY_ONE = 8
# Beyond this many words, "every word but two" has too many alternatives to be worth it.
BUT_TWO_MAX = 8
# BM25's parameters (FTS5's own).
BM25_K1 = 1.2
BM25_B = 0.75
# Document frequencies change slowly: each is looked up once per this many seconds (and
# whenever the index's row count changes) and kept in memory.
DF_SECONDS = 300.0


async def search(
    session: AsyncSession,
    kb_ids: Sequence[str],
    groups: Sequence[Group],
    limit: int,
    needed: int = 1,
) -> list[Hit]:
    """Up to ``limit`` chunks of the bases for the question, best first. The search widens
    in rounds while fewer than ``needed`` are found (``_rounds``: every word of the question,
    every word but one, ...). Each round only collects candidates, unranked, at most
    CANDIDATES of them (``_round``); they are ranked here with BM25 (``_Ranker``), so that the
    database never ranks every chunk that shares a common word with the question. Words no
    chunk holds are left out of the rounds. Chunks are loaded through the chunk model, so the
    session's tenant scope applies to them."""
    if not kb_ids or not groups:
        return []
    backend: _Backend = _Postgres(kb_ids) if _dialect(session) == "postgresql" else _Sqlite()
    stats = await backend.stats(session, {g.main for g in groups})
    # A word whose own term no chunk holds may still match by a compound part.
    stats.df |= await backend.frequencies(
        session, {t for g in groups if not stats.holds(g.main) for t in g.terms}
    )
    found: dict[Key, str] = {}
    asked: set[frozenset[frozenset[str]]] = set()
    for alternatives in _rounds(groups):
        # Leave out what no chunk can match and what an earlier round asked already.
        alternatives = [a for a in alternatives if stats.possible(a) and frozenset(a) not in asked]
        asked |= {frozenset(a) for a in alternatives}
        if alternatives:
            found |= await _round(session, backend, stats, kb_ids, alternatives, found, limit)
        if len(found) >= needed:
            break
    if not found:
        return []
    ranker = await _Ranker.of(session, backend, stats, groups, found)
    measured = {key: ranker.measure(counts) for key, counts in ranker.counted.items()}
    # Most of the question's words first, then BM25.
    best = sorted(measured, key=lambda key: (-measured[key][0], -measured[key][1]))[:limit]
    chunks = await backend.load(session, best)
    return [Hit(chunks[key], measured[key][1], measured[key][0]) for key in best if key in chunks]


async def _round(
    session: AsyncSession,
    backend: _Backend,
    stats: _Stats,
    kb_ids: Sequence[str],
    alternatives: Alternatives,
    found: dict[Key, str],
    limit: int,
) -> dict[Key, str]:
    """The new candidates of a round. The whole round is one query when it looks small; when
    it holds more than CANDIDATES chunks (which ones the index stops at is arbitrary), its
    alternatives run one by one, the most specific first, until ``limit`` new ones are in, so
    that the best matches are among those read. Chunks of earlier rounds come again: each
    query reads past them."""
    count = CANDIDATES + len(found)
    if len(alternatives) == 1 or stats.at_most(alternatives) <= CANDIDATES:
        more = await backend.candidates(session, kb_ids, alternatives, count)
        if len(more) < count or len(alternatives) == 1:
            return {key: body for key, body in more.items() if key not in found}
    more = {}
    for alternative in sorted(alternatives, key=stats.selectivity)[:ONE_BY_ONE]:
        more |= await backend.candidates(session, kb_ids, [alternative], count)
        if len(more.keys() - found.keys()) >= min(limit, CANDIDATES):
            break
    return {key: body for key, body in more.items() if key not in found}


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


Alternatives = list[list[frozenset[str]]]


def _rounds(groups: Sequence[Group]) -> list[Alternatives]:
    """The rounds of a search; each a list of alternatives, each a list of term sets a chunk
    must hold one term of each: every word; every word but one; every word but two (questions
    of four to BUT_TWO_MAX words); any one of the question's own words (without compound
    parts). A new candidate of a round that leaves out m of n words covers (n - m) / n of the
    question: only the last rounds find passages that may not answer it."""
    terms = [g.terms for g in groups]
    rounds = [[terms]]
    if len(groups) >= 2:
        rounds.append([list(c) for c in combinations(terms, len(terms) - 1)])
    if 4 <= len(groups) <= BUT_TWO_MAX:
        rounds.append([list(c) for c in combinations(terms, len(terms) - 2)])
    if len(groups) >= 3:
        rounds.append([[frozenset({g.main})] for g in groups])
    return rounds


@dataclass
class _Stats:
    """What the search knows of the index: its row count and average passage length (0 when
    unknown: BM25 then weighs every term alike), and the document frequencies looked up so
    far (a term missing from ``df`` is in no chunk, or was not looked up)."""

    rows: int
    average_length: float
    df: dict[str, int] = field(default_factory=dict)

    def holds(self, term: str) -> bool:
        return self.df.get(term, 0) > 0

    def possible(self, alternative: list[frozenset[str]]) -> bool:
        return all(any(self.holds(t) for t in group) for group in alternative)

    def selectivity(self, alternative: list[frozenset[str]]) -> float:
        """Sort key of alternatives, the most specific first: the product of their words'
        frequencies (a word by its most common term), as if the words were independent."""
        product = 1.0
        for group in alternative:
            product *= max(1, *(self.df.get(t, 0) for t in group))
        return product

    def at_most(self, alternatives: Alternatives) -> float:
        """How many chunks a round can match at most: per alternative, as many as hold its
        rarest word (the words of names and places go together far more often than not)."""
        return sum(min(self._df(g) for g in alternative) for alternative in alternatives)

    def _df(self, group: frozenset[str]) -> int:
        return sum(self.df.get(t, 0) for t in group)

    def idf(self, term: str) -> float:
        """FTS5's BM25 inverse document frequency; 1 when the row count is unknown."""
        if not self.rows:
            return 1.0
        n = self.df.get(term, 1)
        return max(1e-6, math.log((self.rows - n + 0.5) / (n + 0.5)))


@dataclass
class _Ranker:
    """Ranks the candidates of a search: each one's words are counted once (``counted``), and
    the inverse document frequencies of the question's terms are taken once (``idf``)."""

    groups: Sequence[Group]
    stats: _Stats
    counted: dict[Key, Counter[str]]
    terms: frozenset[str] = frozenset()
    idf: dict[str, float] = field(default_factory=dict)

    @classmethod
    async def of(
        cls,
        session: AsyncSession,
        backend: _Backend,
        stats: _Stats,
        groups: Sequence[Group],
        found: dict[Key, str],
    ) -> _Ranker:
        """A ranker with the document frequencies of the question's terms that occur in the
        candidates (the others add nothing to any score)."""
        wanted = frozenset().union(*(g.terms for g in groups))
        counted = {key: Counter(body.split()) for key, body in found.items()}
        present = {t for counts in counted.values() for t in wanted & counts.keys()}
        if not stats.average_length:
            lengths = [counts.total() for counts in counted.values()]
            stats.average_length = sum(lengths) / len(lengths)
        if stats.rows:
            stats.df |= await backend.frequencies(session, present - stats.df.keys())
        idf = {term: stats.idf(term) for term in present}
        return cls(groups, stats, counted, wanted, idf)

    def measure(self, counts: Counter[str]) -> tuple[float, float]:
        """A candidate's coverage of the question and its BM25 (from its counted words)."""
        covered = sum(1 for group in self.groups if any(t in counts for t in group.terms))
        return covered / len(self.groups), self.bm25(counts)

    def bm25(self, counts: Counter[str]) -> float:
        """BM25 of a passage over the question's terms, as FTS5 computes it: a passage that
        holds a whole compound of the question (and so every part of it) outranks one that
        holds only a part."""
        length = counts.total()
        norm = BM25_K1 * (1 - BM25_B + BM25_B * length / max(self.stats.average_length, 1.0))
        total = 0.0
        for term in self.terms & counts.keys():
            tf = counts[term]
            total += self.idf[term] * tf * (BM25_K1 + 1) / (tf + norm)
        return total


Key = int | str  # a candidate: its chunk's rowid (SQLite) or id (PostgreSQL)


class _Backend(Protocol):
    """The database-specific part of a search (``_Sqlite``, ``_Postgres``)."""

    async def stats(self, session: AsyncSession, terms: set[str]) -> _Stats:
        """The index's statistics, with the document frequencies of ``terms`` (if known)."""
        ...

    async def frequencies(self, session: AsyncSession, terms: set[str]) -> dict[str, int]: ...

    async def candidates(
        self,
        session: AsyncSession,
        kb_ids: Sequence[str],
        alternatives: Alternatives,
        count: int,
    ) -> dict[Key, str]:
        """Up to ``count`` chunks matching any alternative, unranked: key -> search_text."""
        ...

    async def load(self, session: AsyncSession, keys: list[Key]) -> dict[Key, KnowledgeChunk]: ...


# Two records of the FTS5 table's data: 1 holds its running totals (row count, then tokens per
# column, as SQLite varints; reading it costs nothing, counting rows would); 10 its structure,
# which every write to the index changes (it carries a write counter).
_FTS_TOTALS = "SELECT id, block FROM knowledge_fts_data WHERE id IN (1, 10)"
# Document frequencies come from an fts5vocab table over the index, made per connection (a
# temp table: nothing in the schema).
_FTS_VOCAB = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.knowledge_fts_vocab "
    "USING fts5vocab(main, knowledge_fts, row)"
)


def _varints(data: bytes) -> list[int]:
    values: list[int] = []
    i = 0
    while i < len(data):
        value = 0
        for n in range(9):
            byte = data[i + n]
            if n == 8:
                value = (value << 8) | byte
                break
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        values.append(value)
        i += n + 1
    return values


class _DfCache:
    """Document frequencies already looked up, per database and state of the index (SQLite)
    or bases (PostgreSQL), for DF_SECONDS. A frequency of 0 may only be remembered while the
    index is unchanged: a word no chunk held may come with the next ingestion, and must then
    be found at once."""

    def __init__(self) -> None:
        self._entries: dict[tuple[object, ...], tuple[float, dict[str, int]]] = {}

    def get(self, key: tuple[object, ...]) -> dict[str, int]:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is None or now - entry[0] > DF_SECONDS:
            if len(self._entries) > 1000:
                self._entries.clear()
            entry = (now, {})
            self._entries[key] = entry
        return entry[1]


_df_cache = _DfCache()


def _cache_key(session: AsyncSession, *more: object) -> tuple[object, ...] | None:
    url = session.get_bind().url
    # An in-memory database has no name to keep its frequencies under.
    if url.database in (None, "", ":memory:"):
        return None
    return (str(url), *more)


class _Sqlite:
    """Exact statistics: the row count and average length from FTS5's own totals, document
    frequencies from fts5vocab (over the whole index, as FTS5's bm25() takes them). They are
    remembered, 0 included, until the next write to the index changes its structure record."""

    def __init__(self) -> None:
        self._known: dict[str, int] = {}

    async def stats(self, session: AsyncSession, terms: set[str]) -> _Stats:
        records = {int(i): block for i, block in (await session.execute(text(_FTS_TOTALS))).all()}
        totals = _varints(records[1]) if records.get(1) else []
        rows = totals[0] if totals else 0
        average = totals[1] / rows if rows and len(totals) > 1 else 0.0
        key = _cache_key(session, bytes(records.get(10) or b""))
        self._known = _df_cache.get(key) if key else {}
        return _Stats(rows, average, await self.frequencies(session, terms))

    async def frequencies(self, session: AsyncSession, terms: set[str]) -> dict[str, int]:
        missing = sorted(terms - self._known.keys())
        if missing:
            # Per connection, and again in every transaction: a rollback takes it back.
            await session.execute(text(_FTS_VOCAB))
            statement = text(
                "SELECT term, doc FROM temp.knowledge_fts_vocab WHERE term IN :terms"
            ).bindparams(bindparam("terms", expanding=True))
            rows = await session.execute(statement, {"terms": missing})
            self._known |= dict.fromkeys(missing, 0) | {r.term: int(r.doc) for r in rows}
        return {t: n for t in terms if (n := self._known.get(t, 0))}

    async def candidates(
        self,
        session: AsyncSession,
        kb_ids: Sequence[str],
        alternatives: Alternatives,
        count: int,
    ) -> dict[Key, str]:
        rows = await session.execute(
            _SQLITE_CANDIDATES.statement(session),
            {"match": _fts_match(kb_ids, alternatives), "count": count},
        )
        return {int(rowid): str(body) for rowid, body in rows.all()}

    async def load(self, session: AsyncSession, keys: list[Key]) -> dict[Key, KnowledgeChunk]:
        rows = await session.execute(_SQLITE_LOAD.statement(session), {"keys": keys})
        return {int(rowid): chunk for rowid, chunk in rows.all()}


_CHUNK_ROWID = literal_column("knowledge_chunks.rowid")


# The statements of every search are built once per scope (building one costs about as much
# as running it, and so does the session hook's scoping; ``ScopedQuery`` writes the same
# criteria in); only their parameters change.


def _sqlite_candidates(tenant: TenantFilter) -> Select[Any]:
    """The index's matches (no ORDER BY: FTS5 then streams them by rowid and stops at the
    limit) joined to their chunks by the unique index_rowid, so that the candidates are chunks
    the session's scope lets through, and ``load`` needs no second look-up. The matches are a
    subquery because with a plain join SQLite's planner (no statistics) walks the agency's
    chunks and probes the index for each (seconds at 100k)."""
    matches = (
        select(literal_column("rowid").label("rowid"))
        .select_from(text("knowledge_fts"))
        .where(text("knowledge_fts MATCH :match"))
        .limit(bindparam("count", type_=Integer))
        .subquery("matches")
    )
    return (
        select(_CHUNK_ROWID, KnowledgeChunk.search_text)
        .join_from(matches, KnowledgeChunk, KnowledgeChunk.index_rowid == matches.c.rowid)
        .where(tenant(KnowledgeChunk))
    )


def _sqlite_load(tenant: TenantFilter) -> Select[Any]:
    """Chunks by their own rowids, which SQLite seeks next to the scope's ``agency_id = ?``
    (given ``index_rowid IN (...)`` instead, its planner walks the agency's index)."""
    return select(_CHUNK_ROWID, KnowledgeChunk).where(
        _CHUNK_ROWID.in_(bindparam("keys", expanding=True)), tenant(KnowledgeChunk)
    )


def _pg_candidates(tenant: TenantFilter) -> Select[Any]:
    query = func.to_tsquery(literal_column("'simple'::regconfig"), bindparam("query"))
    return (
        select(KnowledgeChunk.id, KnowledgeChunk.search_text)
        .where(
            KnowledgeChunk.knowledge_base_id.in_(bindparam("kbs", expanding=True)),
            KnowledgeChunk.tsv.op("@@")(query),
            tenant(KnowledgeChunk),
        )
        .limit(bindparam("count", type_=Integer))
    )


def _pg_load(tenant: TenantFilter) -> Select[Any]:
    return select(KnowledgeChunk).where(
        KnowledgeChunk.id.in_(bindparam("keys", expanding=True)), tenant(KnowledgeChunk)
    )


_SQLITE_CANDIDATES = ScopedQuery(_sqlite_candidates)
_SQLITE_LOAD = ScopedQuery(_sqlite_load)
_PG_CANDIDATES = ScopedQuery(_pg_candidates)
_PG_LOAD = ScopedQuery(_pg_load)


# Frequencies on PostgreSQL are counted in the searched bases up to this (enough to tell
# a rare word from a common one, and a round that fits CANDIDATES from one that does not).
PG_DF_CAP = CANDIDATES + 1
_PG_FREQUENCIES = (
    "SELECT t.term, (SELECT count(*) FROM (SELECT 1 FROM knowledge_chunks c "
    "WHERE c.knowledge_base_id = ANY(:kbs) AND c.tsv @@ to_tsquery('simple', t.term) "
    "LIMIT :cap) AS s) AS docs FROM unnest(CAST(:terms AS text[])) AS t(term)"
)


class _Postgres:
    """PostgreSQL keeps no document frequencies a tenant may read (the planner's statistics
    are hidden under row-level security): they are counted in the searched bases, capped at
    PG_DF_CAP (a few GIN look-ups), and BM25 weighs every term alike, as ``ts_rank`` did."""

    def __init__(self, kb_ids: Sequence[str]) -> None:
        self._kb_ids = sorted(kb_ids)
        self._known: dict[str, int] = {}

    async def stats(self, session: AsyncSession, terms: set[str]) -> _Stats:
        key = _cache_key(session, *self._kb_ids)
        self._known = _df_cache.get(key) if key else {}
        return _Stats(0, 0.0, await self.frequencies(session, terms))

    async def frequencies(self, session: AsyncSession, terms: set[str]) -> dict[str, int]:
        missing = sorted(terms - self._known.keys())
        if missing:
            rows = await session.execute(
                text(_PG_FREQUENCIES),
                {"kbs": self._kb_ids, "terms": missing, "cap": PG_DF_CAP},
            )
            self._known |= {row.term: int(row.docs) for row in rows if row.docs}
        return {t: self._known[t] for t in terms if t in self._known}

    async def candidates(
        self,
        session: AsyncSession,
        kb_ids: Sequence[str],
        alternatives: Alternatives,
        count: int,
    ) -> dict[Key, str]:
        rows = await session.execute(
            _PG_CANDIDATES.statement(session),
            {"kbs": list(kb_ids), "query": _tsquery(alternatives), "count": count},
        )
        return {chunk_id: search_text for chunk_id, search_text in rows.all()}

    async def load(self, session: AsyncSession, keys: list[Key]) -> dict[Key, KnowledgeChunk]:
        rows = await session.execute(_PG_LOAD.statement(session), {"keys": keys})
        return {chunk.id: chunk for chunk in rows.scalars()}


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


# FTS5 merges its segments as the index grows (``automerge``), yet a bulk ingestion of
# many sources leaves a dozen or more, and a query looks each of its terms up in every one:
# at 100k chunks the candidate queries read one segment three to four times faster than
# twenty. ``optimize`` merges them all into one (on one segment it does nothing).
_FTS_OPTIMIZE = "INSERT INTO knowledge_fts (knowledge_fts) VALUES ('optimize')"


async def compact(session: AsyncSession) -> None:
    """Merge the SQLite index into one segment, in the caller's transaction (at 100k chunks
    well under a second, holding the write lock). PostgreSQL: nothing to do, its GIN index
    is kept by (auto)vacuum."""
    if _dialect(session) == "sqlite":
        await session.execute(text(_FTS_OPTIMIZE))


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
    """The 0..1 score of a hit: its coverage, lowered by up to RANK_WEIGHT when its BM25 is
    below the best hit's."""
    relative = max(0.0, min(1.0, rank / best_rank)) if best_rank > 0 else 0.0
    return round(cover * (1 - RANK_WEIGHT + RANK_WEIGHT * relative), 4)
