"""Request and response bodies of the knowledge API: bases, sources, search."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from demandly.agents.schemas import Text
from demandly.tenancy.schemas import Id, Name, PlainText, WebUrl

Language = Literal["de", "en"]
MAX_TEXT = 2_000_000
MAX_PAIRS = 1000


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --- knowledge bases -----------------------------------------------------------------------


class KnowledgeBaseCreate(_Input):
    client_id: Id
    name: Name
    language: Language = Field(description="The language of the content: de or en.")


class KnowledgeBaseUpdate(_Input):
    name: Name | None = None
    language: Language | None = None

    @field_validator("name", "language", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null")
        return value


class KnowledgeBase(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    agency_id: str
    client_id: str
    name: str
    language: str
    created_at: datetime
    updated_at: datetime | None = None


# --- sources -------------------------------------------------------------------------------

Title = Annotated[PlainText, Field(min_length=1, max_length=300)]


class QAPair(_Input):
    question: Annotated[Text, Field(min_length=1, max_length=1000)]
    answer: Annotated[Text, Field(min_length=1, max_length=10_000)]


class CrawlLimits(_Input):
    max_pages: int = Field(50, ge=1, le=1000)
    max_depth: int = Field(3, ge=0, le=10)


class TextSourceCreate(_Input):
    kind: Literal["text"]
    title: Title
    text: Annotated[Text, Field(min_length=1, max_length=MAX_TEXT)]


class MarkdownSourceCreate(_Input):
    kind: Literal["markdown"]
    title: Title
    text: Annotated[Text, Field(min_length=1, max_length=MAX_TEXT, description="Markdown.")]


class QASourceCreate(_Input):
    kind: Literal["qa"]
    title: Title
    pairs: Annotated[list[QAPair], Field(min_length=1, max_length=MAX_PAIRS)]


class UrlSourceCreate(_Input):
    kind: Literal["url"]
    title: Title | None = None
    url: WebUrl


class WebsiteSourceCreate(_Input):
    kind: Literal["website"]
    title: Title | None = None
    url: WebUrl = Field(description="The start page; only pages of its host are crawled.")
    limits: CrawlLimits = Field(default_factory=CrawlLimits)
    recrawl_every_days: int | None = Field(
        None, ge=1, le=365, description="Crawl again every so many days; null: never."
    )


SourceCreate = Annotated[
    TextSourceCreate
    | MarkdownSourceCreate
    | QASourceCreate
    | UrlSourceCreate
    | WebsiteSourceCreate,
    Field(discriminator="kind"),
]


class SourceFailure(BaseModel):
    where: str = Field(description="The page URL or document that could not be read.")
    reason: str


class Source(BaseModel):
    id: str
    knowledge_base_id: str
    kind: str
    title: str | None
    url: str | None
    file_name: str | None
    status: Literal["queued", "running", "ready", "failed"]
    documents_done: int = Field(description="Documents or pages read so far.")
    documents_total: int | None = Field(description="When known in advance.")
    chunks_indexed: int
    failures: list[SourceFailure] = Field(description="Pages or files skipped, with reasons.")
    error: str | None = Field(description="Why the whole source failed.")
    recrawl_every_days: int | None
    next_crawl_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime
    updated_at: datetime | None = None


# --- search --------------------------------------------------------------------------------


class SearchRequest(_Input):
    query: Annotated[PlainText, Field(min_length=1, max_length=1000)]
    k: int = Field(5, ge=1, le=50)


class SearchHit(BaseModel):
    chunk_id: str
    source_id: str
    score: float = Field(description="0..1; below `not_known_below` it does not answer.")
    text: str
    title: str
    heading: str | None
    url: str | None


class SearchResult(BaseModel):
    items: list[SearchHit]
    not_known_below: float = Field(description="The score threshold of an answer.")
