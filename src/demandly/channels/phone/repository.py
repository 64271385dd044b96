"""Every query of the phone channel. The session's scope filters tenant rows; webhooks look a
number or call up under the system scope first (Twilio names them, not a tenant), then narrow
the session to the row's client."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.channels.phone.models import (
    Call,
    CallStatus,
    Campaign,
    CampaignStatus,
    CampaignTarget,
    PhoneNumber,
    TargetStatus,
    TwilioConnection,
)
from demandly.conversations.models import Conversation

LIVE_STATUSES = (CallStatus.QUEUED, CallStatus.RINGING, CallStatus.IN_PROGRESS)


class PhoneRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _one(self, statement: Select[Any]) -> Any:
        fresh = statement.execution_options(populate_existing=True)
        return (await self.session.execute(fresh)).scalar_one_or_none()

    # --- connections

    def connections(self, agency_id: str | None = None) -> Select[Any]:
        statement = select(TwilioConnection)
        if agency_id is not None:
            statement = statement.where(TwilioConnection.agency_id == agency_id)
        return statement

    async def connection(self, connection_id: str) -> TwilioConnection | None:
        return await self._one(select(TwilioConnection).where(TwilioConnection.id == connection_id))

    async def numbers_in_use(self, connection_id: str) -> int:
        statement = select(func.count(PhoneNumber.id)).where(
            PhoneNumber.connection_id == connection_id
        )
        return (await self.session.execute(statement)).scalar_one()

    # --- numbers

    def numbers(self, client_id: str | None = None, agent_id: str | None = None) -> Select[Any]:
        statement = select(PhoneNumber)
        if client_id is not None:
            statement = statement.where(PhoneNumber.client_id == client_id)
        if agent_id is not None:
            statement = statement.where(PhoneNumber.agent_id == agent_id)
        return statement

    async def number(self, number_id: str) -> PhoneNumber | None:
        return await self._one(select(PhoneNumber).where(PhoneNumber.id == number_id))

    async def number_by_sid(self, twilio_sid: str) -> PhoneNumber | None:
        return await self._one(select(PhoneNumber).where(PhoneNumber.twilio_sid == twilio_sid))

    async def number_called(
        self, account_sid: str, number: str
    ) -> tuple[PhoneNumber, str | None] | None:
        """The number a call reached, on the account Twilio names, with the Auth Token its
        signature is checked with (one statement)."""
        statement = (
            select(PhoneNumber, TwilioConnection.auth_token)
            .join(TwilioConnection, TwilioConnection.id == PhoneNumber.connection_id)
            .where(PhoneNumber.number == number, TwilioConnection.account_sid == account_sid)
        )
        row = (await self.session.execute(statement)).first()
        return (row[0], row[1]) if row is not None else None

    async def first_number_of_agent(self, agent_id: str) -> PhoneNumber | None:
        statement = self.numbers(agent_id=agent_id).order_by(PhoneNumber.id).limit(1)
        return await self._one(statement)

    # --- calls

    def calls(
        self,
        client_id: str | None = None,
        agent_id: str | None = None,
        status: str | None = None,
        direction: str | None = None,
        campaign_id: str | None = None,
    ) -> Select[Any]:
        statement = select(Call)
        for column, value in (
            (Call.client_id, client_id),
            (Call.agent_id, agent_id),
            (Call.status, status),
            (Call.direction, direction),
            (Call.campaign_id, campaign_id),
        ):
            if value is not None:
                statement = statement.where(column == value)
        return statement

    async def call(self, call_id: str, *, for_update: bool = False) -> Call | None:
        statement = select(Call).where(Call.id == call_id)
        if for_update:
            statement = statement.with_for_update()
        return await self._one(statement)

    async def call_for_turn(self, call_id: str) -> tuple[Call | None, str | None]:
        """The call, locked, with its conversation's status, in one statement (the end of
        every gather turn)."""
        statement = (
            select(Call, Conversation.status)
            .outerjoin(Conversation, Conversation.id == Call.conversation_id)
            .where(Call.id == call_id)
            .with_for_update(of=Call)
            .execution_options(populate_existing=True)
        )
        row = (await self.session.execute(statement)).first()
        return (row[0], row[1]) if row is not None else (None, None)

    async def sms_senders(self, agency_id: str, client_id: str) -> list[PhoneNumber]:
        """The numbers a client may text from: its own, then its agency's unassigned ones on
        an agency-wide connection (oldest first). Run it under the system scope: a client's
        scope does not see the agency's rows."""
        statement = (
            select(PhoneNumber)
            .join(TwilioConnection, TwilioConnection.id == PhoneNumber.connection_id)
            .where(
                PhoneNumber.agency_id == agency_id,
                or_(
                    PhoneNumber.client_id == client_id,
                    (PhoneNumber.client_id.is_(None)) & (TwilioConnection.client_id.is_(None)),
                ),
            )
            .order_by(PhoneNumber.client_id.is_(None), PhoneNumber.id)
        )
        return list((await self.session.execute(statement)).scalars())

    async def call_by_sid(self, call_sid: str, *, for_update: bool = False) -> Call | None:
        statement = select(Call).where(Call.twilio_call_sid == call_sid)
        if for_update:
            statement = statement.with_for_update()
        return await self._one(statement)

    async def call_of_conversation(self, conversation_id: str) -> Call | None:
        return await self._one(select(Call).where(Call.conversation_id == conversation_id))

    async def live_calls_of_campaign(self, campaign_id: str) -> int:
        statement = select(func.count(Call.id)).where(
            Call.campaign_id == campaign_id, Call.status.in_(LIVE_STATUSES)
        )
        return (await self.session.execute(statement)).scalar_one()

    # --- campaigns

    def campaigns(self, client_id: str | None = None) -> Select[Any]:
        statement = select(Campaign)
        if client_id is not None:
            statement = statement.where(Campaign.client_id == client_id)
        return statement

    async def campaign(self, campaign_id: str, *, for_update: bool = False) -> Campaign | None:
        statement = select(Campaign).where(Campaign.id == campaign_id)
        if for_update:
            statement = statement.with_for_update()
        return await self._one(statement)

    async def running_campaign_ids(self) -> list[str]:
        statement = select(Campaign.id).where(Campaign.status == CampaignStatus.RUNNING)
        return list((await self.session.execute(statement)).scalars())

    async def targets(self, campaign_id: str) -> list[CampaignTarget]:
        statement = (
            select(CampaignTarget)
            .where(CampaignTarget.campaign_id == campaign_id)
            .order_by(CampaignTarget.id)
        )
        return list((await self.session.execute(statement)).scalars())

    async def target(self, target_id: str) -> CampaignTarget | None:
        return await self._one(select(CampaignTarget).where(CampaignTarget.id == target_id))

    async def due_targets(
        self, campaign_id: str, now: datetime, limit: int
    ) -> list[CampaignTarget]:
        statement = (
            select(CampaignTarget)
            .where(
                CampaignTarget.campaign_id == campaign_id,
                CampaignTarget.status == TargetStatus.PENDING,
                or_(
                    CampaignTarget.next_attempt_at.is_(None),
                    CampaignTarget.next_attempt_at <= now,
                ),
            )
            .order_by(CampaignTarget.id)
            .limit(limit)
        )
        return list((await self.session.execute(statement)).scalars())

    async def open_targets(self, campaign_id: str) -> int:
        statement = select(func.count(CampaignTarget.id)).where(
            CampaignTarget.campaign_id == campaign_id,
            CampaignTarget.status.in_((TargetStatus.PENDING, TargetStatus.CALLING)),
        )
        return (await self.session.execute(statement)).scalar_one()

    # --- what the dashboard's phone page lists for one client

    def connections_for_client(self, agency_id: str, client_id: str) -> Select[Any]:
        """The connections a client's numbers may use: the agency's and the client's own."""
        return select(TwilioConnection).where(
            TwilioConnection.agency_id == agency_id,
            or_(TwilioConnection.client_id.is_(None), TwilioConnection.client_id == client_id),
        )

    def numbers_for_client(
        self, agency_id: str, client_id: str, connection_ids: list[str]
    ) -> Select[Any]:
        """The client's numbers, and the unassigned ones of ``connection_ids`` (usable by it)."""
        return select(PhoneNumber).where(
            PhoneNumber.agency_id == agency_id,
            or_(
                PhoneNumber.client_id == client_id,
                PhoneNumber.client_id.is_(None) & PhoneNumber.connection_id.in_(connection_ids),
            ),
        )

    async def target_counts(self, campaign_ids: list[str]) -> dict[str, tuple[int, int]]:
        """Per campaign: (targets done, targets in all), in one query."""
        if not campaign_ids:
            return {}
        done = func.count(CampaignTarget.id).filter(CampaignTarget.status == TargetStatus.DONE)
        statement = (
            select(CampaignTarget.campaign_id, done, func.count(CampaignTarget.id))
            .where(CampaignTarget.campaign_id.in_(campaign_ids))
            .group_by(CampaignTarget.campaign_id)
        )
        rows = (await self.session.execute(statement)).all()
        return {campaign_id: (int(d), int(total)) for campaign_id, d, total in rows}
