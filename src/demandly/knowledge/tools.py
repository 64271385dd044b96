"""The ``search_knowledge`` tool: passages of the agent's knowledge bases, with citations."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from demandly.engine.tools import ToolContext, tool
from demandly.knowledge import index, service

PASSAGES = 4


class SearchKnowledge(BaseModel):
    query: str = Field(
        min_length=1, max_length=1000, description="The visitor's question, in their words."
    )


@tool(
    "search_knowledge",
    "Search the business's knowledge base. Answer only from passages scoring at least "
    "not_known_below, and cite their title and url; if none does, say you do not know.",
)
async def search_knowledge(ctx: ToolContext, args: SearchKnowledge) -> dict[str, Any]:
    """Searches only the bases the agent lists, within the conversation's client (the
    session's scope): a base id of another client finds nothing."""
    passages = await service.retrieve(
        ctx.session, ctx.agent.knowledge_base_ids, args.query, PASSAGES
    )
    return {
        "passages": [
            {
                "text": p.text,
                "score": p.score,
                "title": p.title,
                "heading": p.heading,
                "url": p.url,
                "source_id": p.source_id,
                "chunk_id": p.chunk_id,
            }
            for p in passages
        ],
        "known": any(p.answers for p in passages),
        "not_known_below": index.NOT_KNOWN_BELOW,
    }
