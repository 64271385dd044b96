"""Dense retrieval with the bundled all-MiniLM-L6-v2 (``DEMANDLY_EMBEDDINGS_BASE_URL=local``,
the ``local-embeddings`` extra): no endpoint, nothing downloaded, the same fusion with the
full-text ranking."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from demandly.config import reset_settings_cache
from demandly.kit.db import Database
from demandly.knowledge.embeddings import LOCAL, Embedder, cosine
from demandly.knowledge.index import NOT_KNOWN_BELOW
from tests.factories import Tenant
from tests.knowledge.conftest import add_source, create_base, run_jobs, search

PASSAGES = (
    ("Access", "The practice has an elevator to the third floor."),
    ("Animals", "Dogs are welcome in the waiting room."),
    ("Payment", "We take cards and cash."),
)


@pytest.fixture
def local_embeddings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DEMANDLY_EMBEDDINGS_BASE_URL", LOCAL)
    reset_settings_cache()
    yield
    monkeypatch.delenv("DEMANDLY_EMBEDDINGS_BASE_URL")
    reset_settings_cache()


async def test_the_local_model_puts_meaning_before_words() -> None:
    embedder = Embedder(base_url=LOCAL, api_key=None, model="all-MiniLM-L6-v2")
    lift, elevator, dogs = await embedder.embed(
        ["Is there a lift?", PASSAGES[0][1], PASSAGES[1][1]]
    )
    assert len(lift) == 384
    assert cosine(lift, elevator) > cosine(lift, dogs) + 0.2


async def test_search_finds_what_shares_no_word_with_the_local_model(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, local_embeddings: None
) -> None:
    base = await create_base(client, tenant, "en")
    for title, text in PASSAGES:
        await add_source(client, tenant, base["id"], {"kind": "text", "title": title, "text": text})
    await run_jobs(db)
    [best, *_] = await search(client, tenant, base["id"], "Is there a lift?", k=3)
    assert "elevator" in best["text"]
    assert best["score"] < NOT_KNOWN_BELOW  # the score stays the full-text one
    [paid, *_] = await search(client, tenant, base["id"], "Do you take cards?", k=3)
    assert "cards" in paid["text"] and paid["score"] >= NOT_KNOWN_BELOW
