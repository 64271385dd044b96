"""Answering from the agent's FAQ pairs by fuzzy matching the visitor's question."""

from __future__ import annotations

from functools import lru_cache

from demandly.engine.offline.language import content_stems, sentences
from demandly.engine.providers.base import FaqPair

# Dice overlap of content stems needed to count as the same question: "Nehmen Sie neue
# Patienten?" matches "Nehmen Sie neue Patienten auf?", "Wie lange dauert eine Zahnreinigung?"
# does not match "Was kostet eine Zahnreinigung?".
THRESHOLD = 0.5


def _dice(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return 2 * len(a & b) / (len(a) + len(b))


@lru_cache(maxsize=2048)
def _question_stems(question: str) -> frozenset[str]:
    return content_stems(question)


def best_match(faq: tuple[FaqPair, ...], text: str) -> tuple[FaqPair, float] | None:
    """The best FAQ pair for the message (or one of its sentences), if it clears the bar."""
    candidates = [content_stems(text)] + [content_stems(s) for s in sentences(text)]
    best: tuple[FaqPair, float] | None = None
    for pair in faq:
        question = _question_stems(pair.question)
        score = max(_dice(question, said) for said in candidates)
        if score >= THRESHOLD and (best is None or score > best[1]):
            best = (pair, score)
    return best
