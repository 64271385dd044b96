"""Every kind of source through the API into search results; results never cross tenants;
near-duplicates are collapsed."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from demandly.config import reset_settings_cache
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.knowledge import index, service
from demandly.knowledge.index import NOT_KNOWN_BELOW
from tests.factories import Tenant, World
from tests.knowledge.conftest import (
    add_source,
    create_base,
    run_jobs,
    search,
    sources,
    upload,
)
from tests.knowledge.embeddings_stub import EmbeddingsStub, serve_embeddings
from tests.knowledge.site import make_docx, make_pdf

HTML_PAGE = """<!doctype html><html lang="de"><head><meta charset="utf-8">
<title>Anfahrt | Praxis</title></head><body>
<nav><a href="/">Start</a> <a href="/team">Team</a></nav>
<div class="cookie-banner">Wir verwenden Cookies. Akzeptieren?</div>
<main><h1>Anfahrt</h1>
<p>Die Praxis liegt direkt am Marktplatz. Mit der Straßenbahn Linie 4 bis Haltestelle Rathaus,
von dort sind es zwei Minuten zu Fuß.</p></main>
<footer>Impressum Datenschutz</footer></body></html>""".encode()

FILES = [
    ("preise.pdf", make_pdf, "application/pdf", "Wie viel kostet Bleaching?", "Bleaching"),
    (
        "handbuch.docx",
        make_docx,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "Bekommen Schmerzpatienten schnell einen Termin?",
        "Schmerzpatienten",
    ),
    (
        "anfahrt.html",
        lambda: HTML_PAGE,
        "text/html",
        "Welche Straßenbahn fährt zur Praxis?",
        "Linie 4",
    ),
    (
        "hinweise.txt",
        lambda: (
            "Hunde sind in der Praxis leider nicht erlaubt.\n\nRollstuhlgerechter Eingang "
            "auf der Rückseite.".encode()
        ),
        "text/plain",
        "Darf ich meinen Hund mitbringen?",
        "Hunde",
    ),
    (
        "faq.md",
        lambda: b"# FAQ\n\n## Kinder\n\nKinder behandeln wir ab dem dritten Lebensjahr.\n",
        "text/markdown",
        "Ab welchem Alter behandeln Sie Kinder?",
        "dritten Lebensjahr",
    ),
]


@pytest.mark.parametrize(("name", "make", "content_type", "question", "expected"), FILES)
async def test_every_file_type_is_searchable(
    client: httpx.AsyncClient,
    tenant: Tenant,
    db: Database,
    name: str,
    make,  # type: ignore[no-untyped-def]
    content_type: str,
    question: str,
    expected: str,
) -> None:
    base = await create_base(client, tenant)
    response = await upload(client, tenant, base["id"], name, make(), content_type)
    assert response.status_code == 201, response.text
    await run_jobs(db)
    [source] = await sources(client, tenant, base["id"])
    assert source["status"] == "ready", source
    assert source["chunks_indexed"] >= 1 and source["documents_done"] == 1
    hits = await search(client, tenant, base["id"], question, k=3)
    assert hits and expected in hits[0]["text"], hits[:1]
    assert hits[0]["source_id"] == source["id"]
    if name.endswith(".html"):
        assert all("Cookies" not in hit["text"] for hit in hits)


async def test_an_unreadable_file_fails_with_a_reason(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    base = await create_base(client, tenant)
    response = await upload(
        client, tenant, base["id"], "bild.png", b"\x89PNG\r\n\x1a\n" + b"0" * 64
    )
    assert response.status_code == 201
    await run_jobs(db)
    [source] = await sources(client, tenant, base["id"])
    assert source["status"] == "failed" and source["error"]
    assert source["chunks_indexed"] == 0


async def test_text_and_qa_sources_carry_title_heading_and_source(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    base = await create_base(client, tenant, "en")
    qa = await add_source(
        client,
        tenant,
        base["id"],
        {
            "kind": "qa",
            "title": "Questions",
            "pairs": [{"question": "Do you treat children?", "answer": "Yes, from age three."}],
        },
    )
    await add_source(
        client,
        tenant,
        base["id"],
        {"kind": "text", "title": "Payment", "text": "We accept cards, cash and invoices."},
    )
    await run_jobs(db)
    [hit] = await search(client, tenant, base["id"], "Do you treat children?", k=1)
    assert hit["source_id"] == qa["id"] and hit["title"] == "Questions"
    assert hit["heading"] == "Do you treat children?" and "age three" in hit["text"]
    assert hit["score"] > 0.9
    [paid] = await search(client, tenant, base["id"], "Can I pay by card?", k=1)
    assert "cards" in paid["text"]


async def test_near_duplicates_are_collapsed(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    base = await create_base(client, tenant)
    text = "Die Praxis ist barrierefrei und hat einen Aufzug."
    for title in ("Seite A", "Seite B"):
        await add_source(client, tenant, base["id"], {"kind": "text", "title": title, "text": text})
    await run_jobs(db)
    hits = await search(client, tenant, base["id"], "Gibt es einen Aufzug?")
    assert len(hits) == 1


async def test_retrieval_never_returns_another_tenants_passages(
    client: httpx.AsyncClient, tenant: Tenant, world: World, db: Database
) -> None:
    mine = await create_base(client, tenant)
    await add_source(
        client, tenant, mine["id"], {"kind": "text", "title": "Geheim", "text": "Tresorcode 4711"}
    )
    await run_jobs(db)
    # The other agency, asking for this base's id with the very words: nothing.
    async with db.session(Scope.for_agency(world.b.agency.id)) as session:
        assert await service.retrieve(session, [mine["id"]], "Tresorcode 4711") == []
    # The other client of the same agency: nothing either.
    async with db.session(Scope.for_client(tenant.agency.id, tenant.clients[1].id)) as session:
        assert await service.retrieve(session, [mine["id"]], "Tresorcode 4711") == []
    async with db.session(Scope.for_client(tenant.agency.id, tenant.clients[0].id)) as session:
        [passage] = await service.retrieve(session, [mine["id"]], "Tresorcode 4711")
    assert passage.text == "Tresorcode 4711" and passage.answers


async def test_the_index_search_applies_each_sessions_scope(
    client: httpx.AsyncClient, tenant: Tenant, world: World, db: Database
) -> None:
    """The search's statements are built once per process; the scope of each session must
    still apply to them. Past the visibility check of ``retrieve`` (given another agency's
    base id directly), the index search finds nothing for the other agency."""
    mine = await create_base(client, tenant)
    await add_source(
        client, tenant, mine["id"], {"kind": "text", "title": "Geheim", "text": "Tresorcode 4711"}
    )
    await run_jobs(db)
    groups = index.query_groups("Tresorcode 4711")
    async with db.session(Scope.for_agency(tenant.agency.id)) as session:
        [hit] = await index.search(session, [mine["id"]], groups, 5)
    assert hit.chunk.text == "Tresorcode 4711" and hit.coverage == 1.0
    async with db.session(Scope.for_agency(world.b.agency.id)) as session:
        assert await index.search(session, [mine["id"]], groups, 5) == []


async def test_a_search_of_one_base_sees_no_other_base(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    first = await create_base(client, tenant)
    second = await create_base(client, tenant)
    await add_source(
        client, tenant, second["id"], {"kind": "text", "title": "t", "text": "Lachgas-Sedierung"}
    )
    await run_jobs(db)
    assert await search(client, tenant, first["id"], "Lachgas-Sedierung") == []
    assert len(await search(client, tenant, second["id"], "Lachgas-Sedierung")) == 1


@pytest.fixture
def embeddings(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddingsStub]:
    """The worker and the API use a local embeddings endpoint."""
    with serve_embeddings() as stub:
        monkeypatch.setenv("DEMANDLY_EMBEDDINGS_BASE_URL", stub.base_url)
        monkeypatch.setenv("DEMANDLY_EMBEDDINGS_MODEL", "stub-embeddings")
        reset_settings_cache()
        yield stub
    monkeypatch.delenv("DEMANDLY_EMBEDDINGS_BASE_URL")
    reset_settings_cache()


async def test_embeddings_find_what_shares_no_word(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, embeddings: EmbeddingsStub
) -> None:
    base = await create_base(client, tenant, "en")
    for title, text in (
        ("Access", "The practice has an elevator to the third floor."),
        ("Animals", "Dogs are welcome in the waiting room."),
        ("Payment", "We take cards and cash."),
    ):
        await add_source(client, tenant, base["id"], {"kind": "text", "title": title, "text": text})
    await run_jobs(db)
    assert any("elevator" in text for text in embeddings.inputs)

    [best, *_] = await search(client, tenant, base["id"], "Is there a lift?", k=3)
    assert "elevator" in best["text"]
    # The score stays the full-text one: no word of the question is in the passage.
    assert best["score"] < NOT_KNOWN_BELOW
    # A question the full text answers keeps its passage first.
    [paid, *_] = await search(client, tenant, base["id"], "Do you take cards?", k=3)
    assert "cards" in paid["text"] and paid["score"] >= NOT_KNOWN_BELOW


async def test_a_failing_embeddings_endpoint_leaves_full_text_search(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, embeddings: EmbeddingsStub
) -> None:
    embeddings.failing = True
    base = await create_base(client, tenant, "en")
    await add_source(
        client, tenant, base["id"], {"kind": "text", "title": "t", "text": "We take cards."}
    )
    await run_jobs(db)
    [source] = await sources(client, tenant, base["id"])
    assert source["status"] == "ready"
    [hit] = await search(client, tenant, base["id"], "Do you take cards?")
    assert "cards" in hit["text"]
    assert await search(client, tenant, base["id"], "Is there a lift?") == []
