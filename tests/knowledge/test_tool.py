"""The search_knowledge tool: passages with citations, from the agent's bases only."""

from __future__ import annotations

from typing import Any

import httpx

from demandly.engine.providers.base import AgentContext, ToolCall
from demandly.engine.tools import ToolContext, run_tool
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.knowledge.index import NOT_KNOWN_BELOW
from tests.factories import Tenant
from tests.knowledge.conftest import add_source, create_base, run_jobs

ENABLED = frozenset({"search_knowledge"})


async def ask(db: Database, tenant: Tenant, kb_ids: list[str], query: str) -> dict[str, Any]:
    """One tool call as the turn loop makes it: in the conversation's client scope."""
    scope = Scope.for_client(tenant.agency.id, tenant.clients[0].id)
    async with db.session(scope) as session:
        ctx = ToolContext(
            session=session,
            conversation=None,
            agent=AgentContext(language="de", knowledge_base_ids=tuple(kb_ids)),
        )
        call = ToolCall(id="call_1", name="search_knowledge", arguments={"query": query})
        return await run_tool(ctx, call, ENABLED)


async def test_the_tool_answers_with_citations_from_the_agents_bases(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    listed = await create_base(client, tenant)
    unlisted = await create_base(client, tenant)
    source = await add_source(
        client,
        tenant,
        listed["id"],
        {"kind": "markdown", "title": "Preisliste", "text": "## Prophylaxe\nZahnreinigung: 89 €"},
    )
    await add_source(
        client,
        tenant,
        unlisted["id"],
        {"kind": "text", "title": "Intern", "text": "Zahnreinigung für Mitarbeiter: 0 €"},
    )
    await run_jobs(db)

    result = await ask(db, tenant, [listed["id"]], "Was kostet eine Zahnreinigung?")
    assert result["ok"] and result["known"] and result["not_known_below"] == NOT_KNOWN_BELOW
    [passage] = result["passages"]
    assert "89 €" in passage["text"] and passage["title"] == "Preisliste"
    assert passage["source_id"] == source["id"] and passage["score"] >= NOT_KNOWN_BELOW


async def test_unknown_questions_are_marked_not_known(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    base = await create_base(client, tenant)
    await add_source(
        client, tenant, base["id"], {"kind": "text", "title": "t", "text": "Zahnreinigung: 89 €"}
    )
    await run_jobs(db)
    result = await ask(db, tenant, [base["id"]], "Wann fährt der nächste Bus nach Hamburg?")
    assert result["ok"] and not result["known"]


async def test_bases_of_another_client_are_not_searched(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    other_client = await create_base(client, tenant, client_index=1)
    await add_source(
        client,
        tenant,
        other_client["id"],
        {"kind": "text", "title": "Fremd", "text": "Zahnreinigung: 19 €"},
    )
    await run_jobs(db)
    # Even if an agent definition named it, the conversation's client scope finds nothing.
    result = await ask(db, tenant, [other_client["id"]], "Was kostet eine Zahnreinigung?")
    assert result["ok"] and result["passages"] == [] and not result["known"]
