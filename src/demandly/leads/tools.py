"""The agent's lead tools: save_lead_details (answers to the qualification form, which also
make the conversation's contact and lead) and qualify_lead (the agent's verdict)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from demandly.conversations import service as conversations
from demandly.engine.tools import ToolContext, tool
from demandly.kit.logging import get_logger
from demandly.leads import service

log = get_logger(__name__)

LeadValue = str | int | float | bool | None


class SaveLeadDetails(BaseModel):
    fields: dict[str, LeadValue] = Field(
        description='Qualification answers by field key, e.g. {"email": "a@b.de"}',
        max_length=50,
    )


class QualifyLead(BaseModel):
    status: Literal["qualified", "disqualified"]
    reason: str = Field(description="Why, in a few words.", min_length=1, max_length=200)


@tool("save_lead_details", "Store the visitor's answers to the qualification questions.")
async def save_lead_details(ctx: ToolContext, args: SaveLeadDetails) -> dict[str, Any]:
    known = {f.key for f in ctx.agent.qualification}
    accepted = {k: v for k, v in args.fields.items() if not known or k in known}
    ignored = sorted(set(args.fields) - set(accepted))
    changed = await conversations.save_lead_fields(ctx.session, ctx.conversation, accepted)
    if changed:
        ctx.signal("lead_updated", fields=changed)
        await _capture(ctx)
    missing = [
        f.key
        for f in ctx.agent.qualification
        if f.required and f.key not in ctx.conversation.lead_fields
    ]
    return {"saved": sorted(accepted), "ignored": ignored, "missing_required": missing}


async def _capture(ctx: ToolContext) -> None:
    """Make the contact and lead; if that fails, the answers stay on the conversation (the
    next answer tries again) and the visitor's turn goes on."""
    try:
        await service.capture(ctx.session, ctx.conversation, ctx.agent.phone_region)
    except Exception as exc:
        log.warning(
            "lead_capture_failed",
            conversation_id=ctx.conversation.id,
            error_type=type(exc).__name__,
        )


@tool("qualify_lead", "Mark the visitor's enquiry as qualified or not, with the reason.")
async def qualify_lead(ctx: ToolContext, args: QualifyLead) -> dict[str, Any]:
    lead = await service.qualify_from_conversation(
        ctx.session, ctx.conversation, args.status, args.reason
    )
    return {"status": lead.status, "score": lead.score}
