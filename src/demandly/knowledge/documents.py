"""Data types shared by extraction, chunking, crawling and the knowledge index."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    """One heading's worth of text (``heading`` is None for text before the first heading)."""

    heading: str | None
    text: str


@dataclass(frozen=True)
class Document:
    """Readable text of one source, split into sections."""

    title: str
    sections: tuple[Section, ...]
    url: str | None = None
    content_type: str = "text/plain"


@dataclass(frozen=True)
class ChunkDraft:
    """One piece of a document, ready to be indexed."""

    text: str  # what is indexed and shown (heading context may be prefixed)
    title: str  # document title
    heading: str | None
    url: str | None
    position: int  # 0-based order within the document


class ExtractionError(ValueError):
    """Unreadable or unsupported content; the message is shown to the user."""
