"""Answering from knowledge: the sentences of the best passage that answer the question.

``search_knowledge`` returns whole chunks (often several paragraphs); reading one out would bury
the answer. The offline engine instead scores each sentence of the best passage by how many of
the question's content words it contains - matched by stem and by German compound parts, so
"Zahnreinigung" answers "Reinigung der Zähne" - and answers with the one to three best
sentences in their original order, plus the passage's source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from demandly.engine.offline.language import STOP_WORDS, SYNONYMS, fold_spelling, stem, words
from demandly.engine.providers.base import Source

# Below this relevance (search_knowledge scores run 0..1) the engine says it does not know;
# the tool's result names the knowledge index's own threshold (``not_known_below``), this is
# only the fallback (the same value as knowledge.index.NOT_KNOWN_BELOW).
DEFAULT_THRESHOLD = 0.5
MAX_SENTENCES = 3
# A sentence joins the answer when it scores at least this share of the best sentence's score.
_KEEP_SHARE = 0.6
# Weight of a question word that names the passage's topic (in its title or a heading).
_TOPIC_WEIGHT = 0.25
# Compound parts shorter than this are not matched inside words ("bei" in "Arbeit").
_MIN_PART = 4
_ABBREVIATIONS = (
    "z. B.", "z.B.", "u. a.", "d. h.", "bzw.", "ca.", "Dr.", "Nr.", "inkl.", "evtl.", "ggf.",
    "usw.", "Str.", "Tel.", "e.g.", "i.e.", "etc.", "Mr.", "Mrs.", "Ms.", "St.", "vs.", "approx.",
)  # fmt: skip
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[\"„“(]?[A-ZÄÖÜ0-9])|\n+")
_LIST_MARK = re.compile(r"^\s*(?:[#>*\-•]+|\d+[.)])\s*")
_PLACEHOLDER = "\u0000"
_MONEY = re.compile(r"\d\s*(?:€|eur\b|euros?\b|\$|usd\b|chf\b)|(?:€|\$)\s*\d", re.IGNORECASE)
PRICE = "preis"  # the token language.SYNONYMS maps price and cost words to


@dataclass(frozen=True)
class Passage:
    text: str
    score: float
    title: str
    heading: str | None
    url: str | None


@dataclass(frozen=True)
class KnowledgeAnswer:
    text: str
    sources: tuple[Source, ...]


def passages_of(result: dict[str, Any]) -> list[Passage]:
    """The passages of a ``search_knowledge`` result (knowledge/tools.py), best first."""
    raw = result.get("passages")
    found = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            continue
        score = item.get("score")
        heading, url = item.get("heading"), item.get("url")
        found.append(
            Passage(
                text=item["text"],
                score=float(score) if isinstance(score, int | float) else 0.0,
                title=str(item.get("title") or ""),
                heading=heading if isinstance(heading, str) else None,
                url=url if isinstance(url, str) else None,
            )
        )
    return sorted(found, key=lambda p: -p.score)


def threshold_of(result: dict[str, Any]) -> float:
    value = result.get("not_known_below")
    return float(value) if isinstance(value, int | float) else DEFAULT_THRESHOLD


def answer_from(result: dict[str, Any], question: str) -> KnowledgeAnswer | None:
    """The answer to ``question`` from a search result, or None when nothing clears the bar."""
    if result.get("ok") is False or result.get("known") is False:
        return None
    passages = [p for p in passages_of(result) if p.score >= threshold_of(result)]
    if not passages:
        return None
    best = passages[0]
    text = answer_sentences(best.text, question, " ".join(filter(None, (best.title, best.heading))))
    if not text:
        return None
    title = best.title or best.url or ""
    return KnowledgeAnswer(text=text, sources=(Source(title=title, url=best.url),) if title else ())


def split_sentences(text: str) -> list[str]:
    """Sentences and list items of a passage, with markdown marks and headings' '#' removed;
    abbreviations such as "z. B." or "Dr." do not end a sentence."""
    protected = text
    for abbreviation in _ABBREVIATIONS:
        protected = protected.replace(abbreviation, abbreviation.replace(".", _PLACEHOLDER))
    parts = []
    for raw in _SENTENCE_BREAK.split(protected):
        sentence = _LIST_MARK.sub("", raw.replace(_PLACEHOLDER, ".")).strip()
        if sentence:
            parts.append(sentence)
    return parts


def _stems(text: str) -> set[str]:
    found = set()
    for token in words(text):
        if token in STOP_WORDS or len(token) < 2:
            continue
        spelled = fold_spelling(token)
        stemmed = stem(spelled)
        found.add(SYNONYMS.get(stemmed, SYNONYMS.get(spelled, stemmed)))
    if _MONEY.search(text):
        found.add(PRICE)  # "89 Euro" answers "Was kostet ...?"
    return found


def _match(wanted: str, said: set[str]) -> float:
    """1 for the same stem; 0.7 for a compound part ("reinigung" in "zahnreinigung")."""
    if wanted in said:
        return 1.0
    if len(wanted) < _MIN_PART:
        return 0.0
    for token in said:
        if len(token) >= _MIN_PART and (wanted in token or token in wanted):
            return 0.7
    return 0.0


def _is_heading(sentence: str) -> bool:
    return not sentence.rstrip().endswith((".", "!", "?", ":")) and len(sentence.split()) <= 5


def answer_sentences(passage: str, question: str, title: str = "") -> str:
    """One to three sentences of the passage that best answer the question, in order.

    A question word counts less the more sentences contain it, and much less when it names
    what the whole passage is about (its title and headings): in a passage on "Zahnreinigung"
    it is "dauert" that picks the sentence answering "Wie lange dauert eine Zahnreinigung?"."""
    sentences = [s for s in split_sentences(passage) if not _is_heading(s)]
    if not sentences:
        sentences = split_sentences(passage)
    if not sentences:
        return ""
    said = [_stems(s) for s in sentences]
    topic = _stems(" ".join([title, *(s for s in split_sentences(passage) if _is_heading(s))]))
    matches = {word: [_match(word, stems) for stems in said] for word in _stems(question)}
    weights = {
        word: (_TOPIC_WEIGHT if _match(word, topic) else 1.0) / count
        for word, row in matches.items()
        if (count := sum(1 for m in row if m))
    }
    scores = [
        sum(weights[word] * row[index] for word, row in matches.items() if word in weights)
        for index in range(len(sentences))
    ]
    top = max(scores)
    if top <= 0:
        return sentences[0]  # relevant by the search's measure, but no shared words: the lead
    ranked = sorted(range(len(sentences)), key=lambda i: (-scores[i], i))
    chosen = [i for i in ranked[:MAX_SENTENCES] if scores[i] >= top * _KEEP_SHARE]
    return " ".join(sentences[i] for i in sorted(chosen))
