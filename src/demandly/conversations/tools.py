"""The built-in conversation tools: request_handoff and end_conversation (save_lead_details
lives with the leads, in leads/tools.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from demandly.conversations import service
from demandly.engine.tools import ToolContext, tool


class RequestHandoff(BaseModel):
    reason: str = Field("visitor asked for a person", max_length=200)


class EndConversation(BaseModel):
    reason: str = Field("finished", max_length=40)


@tool("request_handoff", "Hand the conversation to a person of the business.")
async def request_handoff(ctx: ToolContext, args: RequestHandoff) -> dict[str, Any]:
    await service.request_handoff(ctx.session, ctx.conversation, args.reason)
    ctx.signal("handoff", reason=args.reason)
    return {"handed_off": True}


@tool("end_conversation", "End the conversation after saying goodbye.")
async def end_conversation(ctx: ToolContext, args: EndConversation) -> dict[str, Any]:
    ctx.signal("end", reason=args.reason)
    return {"ending": True}
