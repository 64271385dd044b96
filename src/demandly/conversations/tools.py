"""The built-in conversation tools: save_lead_details, request_handoff, end_conversation."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from demandly.conversations import service
from demandly.engine.tools import ToolContext, tool

LeadValue = str | int | float | bool | None


class SaveLeadDetails(BaseModel):
    fields: dict[str, LeadValue] = Field(
        description='Qualification answers by field key, e.g. {"email": "a@b.de"}',
        max_length=50,
    )


class RequestHandoff(BaseModel):
    reason: str = Field("visitor asked for a person", max_length=200)


class EndConversation(BaseModel):
    reason: str = Field("finished", max_length=40)


@tool("save_lead_details", "Store the visitor's answers to the qualification questions.")
async def save_lead_details(ctx: ToolContext, args: SaveLeadDetails) -> dict[str, Any]:
    known = {f.key for f in ctx.agent.qualification}
    accepted = {k: v for k, v in args.fields.items() if not known or k in known}
    ignored = sorted(set(args.fields) - set(accepted))
    changed = service.merge_lead_fields(ctx.conversation, accepted)
    if changed:
        ctx.signal("lead_updated", fields=changed)
    missing = [
        f.key
        for f in ctx.agent.qualification
        if f.required and f.key not in ctx.conversation.lead_fields
    ]
    return {"saved": sorted(accepted), "ignored": ignored, "missing_required": missing}


@tool("request_handoff", "Hand the conversation to a person of the business.")
async def request_handoff(ctx: ToolContext, args: RequestHandoff) -> dict[str, Any]:
    await service.request_handoff(ctx.session, ctx.conversation, args.reason)
    ctx.signal("handoff", reason=args.reason)
    return {"handed_off": True}


@tool("end_conversation", "End the conversation after saying goodbye.")
async def end_conversation(ctx: ToolContext, args: EndConversation) -> dict[str, Any]:
    ctx.signal("end", reason=args.reason)
    return {"ending": True}
