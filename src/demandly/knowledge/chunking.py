"""Documents to index-sized chunks: along headings, then paragraphs, then sentences.

Every chunk stays within ``max_chars`` (heading prefix included). Consecutive chunks of one
section share up to ``overlap_chars`` of text, so a sentence cut at a boundary is still found
whole in one of them. A section that fits (a Q&A pair, a short page part) stays one chunk.
Work is linear in the text length.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterator

from demandly.knowledge.documents import ChunkDraft, Document, Section

# A heading longer than this share of max_chars is not repeated in front of each chunk.
_MAX_PREFIX_SHARE = 3
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# Sentence ends: . ! ? … followed by space and a capital, digit or opening quote/bracket.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'»“”)\]]?\s+(?=[\"'„“«(\[]?[A-ZÄÖÜ0-9])")
_ABBREVIATIONS = frozenset(
    re.findall(
        r"\S+",
        "z.b u.a d.h bzw ca dr prof nr str tel inkl ggf evtl usw vgl ff abs mr mrs ms e.g i.e "
        "etc vs no st jan feb mär apr jun jul aug sep sept okt oct nov dez dec mo di mi do fr sa "
        "so",
    )
)


def chunk_document(
    doc: Document, *, max_chars: int = 1200, overlap_chars: int = 150
) -> list[ChunkDraft]:
    """The document's chunks in reading order, positions 0, 1, 2 …"""
    if max_chars < 50:
        raise ValueError("max_chars must be at least 50")
    overlap_chars = max(0, min(overlap_chars, max_chars // 3))
    chunks: list[ChunkDraft] = []
    for section in doc.sections:
        for text in _section_chunks(section, max_chars, overlap_chars):
            chunks.append(
                ChunkDraft(
                    text=text,
                    title=doc.title,
                    heading=section.heading,
                    url=doc.url,
                    position=len(chunks),
                )
            )
    return chunks


def _section_chunks(section: Section, max_chars: int, overlap_chars: int) -> Iterator[str]:
    body = section.text.strip()
    heading = (section.heading or "").strip()
    if not body:
        if heading:
            yield _hard_cut(heading, max_chars)
        return
    prefix = f"{heading}\n\n" if heading and len(heading) <= max_chars // _MAX_PREFIX_SHARE else ""
    if len(prefix) + len(body) <= max_chars:
        yield prefix + body
        return
    budget = max_chars - len(prefix)
    for text in _pack(_units(body, budget), budget, overlap_chars):
        yield prefix + text


def _units(body: str, budget: int) -> Iterator[tuple[str, bool]]:
    """Pieces no longer than ``budget``: (text, starts_paragraph)."""
    for paragraph in _PARAGRAPH_BREAK.split(body):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if len(paragraph) <= budget:
            yield paragraph, True
            continue
        first = True
        for sentence in split_sentences(paragraph):
            for piece in _split_long(sentence, budget):
                yield piece, first
                first = False


def _pack(units: Iterator[tuple[str, bool]], budget: int, overlap_chars: int) -> Iterator[str]:
    """Greedy packing; each new chunk opens with the tail of the previous one."""
    parts: list[str] = []
    length = 0
    for unit, new_paragraph in units:
        joiner = "\n\n" if new_paragraph else " "
        added = len(unit) + (len(joiner) if parts else 0)
        if parts and length + added > budget:
            chunk = "".join(parts)
            yield chunk
            tail = _tail(chunk, overlap_chars)
            if tail and len(tail) + len(joiner) + len(unit) <= budget:
                parts, length = [tail], len(tail)
            else:
                parts, length = [], 0
                added = len(unit)
        if parts:
            parts.append(joiner)
        parts.append(unit)
        length += added
    if parts:
        yield "".join(parts)


def _tail(text: str, limit: int) -> str:
    """The end of ``text``, at most ``limit`` chars, starting at a sentence or word start."""
    if limit <= 0:
        return ""
    if len(text) <= limit:
        window = text
    else:
        window = text[-limit:]
        space = re.search(r"\s", window)
        window = window[space.end() :] if space else ""
    sentence = _SENTENCE_END.search(window)
    if sentence and len(window) - sentence.end() >= limit // 3:
        window = window[sentence.end() :]
    return window.strip()


def split_sentences(text: str) -> list[str]:
    """Sentences of a paragraph; common German/English abbreviations do not end one."""
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        candidate = text[start : match.start()]
        last_word = candidate.rsplit(None, 1)[-1] if candidate.strip() else ""
        word = last_word.rstrip(".!?…\"'»“”)]").lower()
        if word in _ABBREVIATIONS or len(word) == 1 or (word.isdigit() and len(word) <= 2):
            continue
        sentences.append(text[start : match.start() + len(match.group(0))].strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


def _split_long(text: str, budget: int) -> Iterator[str]:
    """A sentence longer than the budget, cut at spaces (or mid-word if it must be)."""
    while len(text) > budget:
        cut = text.rfind(" ", 0, budget + 1)
        if cut <= budget // 2:
            cut = budget
        yield text[:cut].strip()
        text = text[cut:].strip()
    if text:
        yield text


def _hard_cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip()


_WORD = re.compile(r"\w+")


def near_duplicate_key(text: str) -> str:
    """A fingerprint equal for texts that differ only in case, punctuation, spacing or
    markup (e.g. one FAQ answer on many pages); K2 collapses chunks that share it."""
    normal = unicodedata.normalize("NFKC", text).casefold()
    words = _WORD.findall(normal)
    return hashlib.blake2b(" ".join(words).encode("utf-8"), digest_size=16).hexdigest()
