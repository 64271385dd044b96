"""The phone's engine tool: ``transfer_call`` puts the caller through to a person."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from demandly.channels.phone import service
from demandly.engine.tools import ToolContext, tool


class TransferCall(BaseModel):
    reason: str = Field("caller asked for a person", max_length=200)


@tool(
    "transfer_call",
    "Put the caller through to a person of the business (phone calls only). When the answer "
    "says take_message, the business is closed: take a message instead.",
)
async def transfer_call(ctx: ToolContext, args: TransferCall) -> dict[str, Any]:
    return await service.request_transfer(ctx.session, ctx.conversation, ctx.agent)
