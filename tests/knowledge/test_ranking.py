"""How the search collects and ranks candidates (index.search): a word every passage holds does
not crowd out the rare word of a question, the nearest passage comes back even when it does
not answer, a word no passage holds does not hide the others, and a word that arrives with a
new source is found at once (remembered document frequencies never say "nowhere")."""

from __future__ import annotations

import httpx

from demandly.kit.db import Database
from demandly.knowledge import index
from demandly.knowledge.index import NOT_KNOWN_BELOW
from tests.factories import Tenant
from tests.knowledge.conftest import add_source, create_base, run_jobs, search

# More passages with the common word than a round reads from the index.
FILLERS = index.CANDIDATES + 50


def _filler(i: int) -> dict[str, str]:
    room = "".join("bcdfghklmnprstvz"[(i >> shift) % 16] + "aeiou"[i % 5] for shift in (0, 4))
    return {
        "question": f"Raum {room.capitalize()}?",
        "answer": f"Die Praxis hat den Raum {room.capitalize()} mit Stühlen und Tischen.",
    }


async def test_a_common_word_does_not_crowd_out_a_rare_one(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    base = await create_base(client, tenant)
    pairs = [_filler(i) for i in range(FILLERS)]
    await add_source(client, tenant, base["id"], {"kind": "qa", "title": "Räume", "pairs": pairs})
    # Added last: an index read in its own order up to a cap would stop before it.
    await add_source(
        client, tenant, base["id"], {"kind": "text", "title": "Keller", "text": "Tresor im Keller."}
    )
    await run_jobs(db)
    hits = await search(client, tenant, base["id"], "Gibt es einen Tresor in der Praxis?")
    # Half the question's words: the nearest passage, first, but it does not answer.
    assert hits[0]["text"] == "Tresor im Keller."
    assert 0 < hits[0]["score"] < NOT_KNOWN_BELOW
    assert len(hits) == 5


async def test_a_word_no_passage_holds_does_not_hide_the_answer(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    base = await create_base(client, tenant)
    await add_source(
        client,
        tenant,
        base["id"],
        {
            "kind": "text",
            "title": "Zeiten",
            "text": "Samstags ist die Praxis von 9 bis 12 Uhr offen.",
        },
    )
    await run_jobs(db)
    [hit] = await search(client, tenant, base["id"], "Hat die Praxis samstags Quarkbrötchen?")
    assert "Samstags" in hit["text"] and hit["score"] >= NOT_KNOWN_BELOW


async def test_a_new_word_is_found_right_after_its_source_is_read(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    base = await create_base(client, tenant)
    await add_source(
        client,
        tenant,
        base["id"],
        {"kind": "text", "title": "a", "text": "Wir haben ein Aquarium."},
    )
    await run_jobs(db)
    question = "Gibt es Zebrafische im Aquarium?"
    assert "Zebrafische" not in (await search(client, tenant, base["id"], question))[0]["text"]
    await add_source(
        client,
        tenant,
        base["id"],
        {"kind": "text", "title": "b", "text": "Im Aquarium schwimmen Zebrafische."},
    )
    await run_jobs(db)
    [best, *_] = await search(client, tenant, base["id"], question)
    assert "Zebrafische" in best["text"] and best["score"] >= NOT_KNOWN_BELOW


def test_the_rounds_widen_from_every_word_to_any_word() -> None:
    groups = index.query_groups("Tresor Keller Praxis Markt")
    rounds = index._rounds(groups)
    assert [len(r) for r in rounds] == [1, 4, 6, 4]
    assert [len(r[0]) for r in rounds] == [4, 3, 2, 1]


def test_fts5_totals_are_read_as_sqlite_varints() -> None:
    # 100000 rows, 2925756 tokens in the body, 100000 in the kb column.
    assert index._varints(b"\x86\x8d \x81\xb2\xc9<\x86\x8d ") == [100000, 2925756, 100000]
