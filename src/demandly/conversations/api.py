"""Conversations for the people of a client: the inbox, transcripts, taking over and handing
back (under /api/v1)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from demandly.auth.context import AuthContext
from demandly.auth.dependencies import CurrentAuth, DbSession
from demandly.auth.permissions import Permission
from demandly.conversations import schemas as s
from demandly.conversations import service
from demandly.conversations.models import Channel, Conversation, ConversationStatus
from demandly.conversations.repository import ConversationFilters, ConversationRepository
from demandly.kit.errors import Unauthorized
from demandly.kit.pagination import Page, PageParams, page_params, paginate

router = APIRouter(tags=["conversations"])
IdPath = Annotated[str, Path(max_length=40)]
IdQuery = Annotated[str | None, Query(max_length=40)]


def _authorize(ctx: AuthContext, conversation: Conversation, permission: Permission) -> None:
    ctx.require(permission, conversation.agency_id, conversation.client_id)


@router.get("/conversations", response_model=Page[s.ConversationOut])
async def list_conversations(
    ctx: CurrentAuth,
    session: DbSession,
    page: Annotated[PageParams, Depends(page_params)],
    client_id: IdQuery = None,
    agent_id: IdQuery = None,
    status: ConversationStatus | None = None,
    channel: Channel | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Page[s.ConversationOut]:
    """Newest first; what the caller may read (content:read) of what it can see."""
    within = ctx.scope_where(Permission.CONTENT_READ)
    filters = ConversationFilters(
        client_id=client_id,
        agent_id=agent_id,
        status=status.value if status else None,
        channel=channel.value if channel else None,
        since=since,
        until=until,
    )
    statement = ConversationRepository(session).listing(filters, within)
    rows, cursor = await paginate(session, statement, Conversation.id, page)
    return Page(items=[s.ConversationOut.model_validate(r) for r in rows], next_cursor=cursor)


@router.get("/conversations/{conversation_id}", response_model=s.ConversationDetail)
async def get_conversation(
    conversation_id: IdPath, ctx: CurrentAuth, session: DbSession
) -> s.ConversationDetail:
    """The conversation with every message, tool calls included."""
    conversation = await service.get(session, conversation_id)
    _authorize(ctx, conversation, Permission.CONTENT_READ)
    messages = await service.messages(session, conversation.id)
    return s.ConversationDetail(
        **s.ConversationOut.model_validate(conversation).model_dump(),
        messages=[s.MessageOut.model_validate(m) for m in messages],
    )


@router.post(
    "/conversations/{conversation_id}/messages", response_model=s.MessageOut, status_code=201
)
async def reply(
    conversation_id: IdPath, data: s.PersonReply, ctx: CurrentAuth, session: DbSession
) -> s.MessageOut:
    """A person of the client answers the visitor; the bot is silent until released."""
    if ctx.user_id is None:
        raise Unauthorized("Only a signed-in person can answer a visitor.")
    conversation = await service.get(session, conversation_id, for_update=True)
    _authorize(ctx, conversation, Permission.CONTENT_WRITE)
    message = await service.reply_as_person(session, conversation, ctx.user_id, data.text)
    return s.MessageOut.model_validate(message)


@router.post("/conversations/{conversation_id}/takeover", response_model=s.ConversationOut)
async def take_over(
    conversation_id: IdPath, ctx: CurrentAuth, session: DbSession
) -> s.ConversationOut:
    """Silence the bot and answer yourself."""
    conversation = await service.get(session, conversation_id, for_update=True)
    _authorize(ctx, conversation, Permission.CONTENT_WRITE)
    await service.take_over(session, conversation, ctx.subject_id)
    return s.ConversationOut.model_validate(conversation)


@router.post("/conversations/{conversation_id}/release", response_model=s.ConversationOut)
async def release(
    conversation_id: IdPath, ctx: CurrentAuth, session: DbSession
) -> s.ConversationOut:
    """Hand the conversation back to the bot."""
    conversation = await service.get(session, conversation_id, for_update=True)
    _authorize(ctx, conversation, Permission.CONTENT_WRITE)
    service.release(conversation)
    return s.ConversationOut.model_validate(conversation)
