"""Phone rules: Twilio connections and numbers, the voice flow of a call (answer, recording
consent, gather turns, transfer, hang-up), status callbacks, the call log, outbound calls and
campaigns, and what the media-stream bridge (realtime mode) needs.

Functions taking a session never commit: the request or job owns the transaction. The voice
flow takes the ``Database`` instead, like the engine's turn loop it drives: a call's row is
locked only briefly, never while the model thinks or Twilio is asked.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import phonenumbers
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from twilio.request_validator import RequestValidator

from demandly.agents import schemas as agent_schemas
from demandly.agents import service as agents
from demandly.agents.models import Agent, AgentVersion
from demandly.channels.phone import media, twiml
from demandly.channels.phone import schemas as s
from demandly.channels.phone.models import (
    FINAL_STATUSES,
    Call,
    CallStatus,
    Campaign,
    CampaignStatus,
    CampaignTarget,
    Direction,
    PhoneNumber,
    TargetStatus,
    TwilioConnection,
)
from demandly.channels.phone.repository import PhoneRepository
from demandly.channels.phone.twilio_client import TwilioUnavailable, twilio_client
from demandly.config import Settings
from demandly.conversations import service as conversations
from demandly.conversations.models import Channel, ConversationStatus, Message, MessageRole
from demandly.engine.offline.hours import is_open, zone
from demandly.engine.prompt import with_situation
from demandly.engine.providers.base import (
    AgentContext,
    ChatMessage,
    CompletionRequest,
    LLMProvider,
    ProviderEvent,
)
from demandly.engine.service import BUILT_IN_TOOLS, TurnRunner, default_provider, opening_greeting
from demandly.jobs.service import emit
from demandly.kit.cache import TTLCache
from demandly.kit.context import Actor, Scope
from demandly.kit.db import Database, system_scope
from demandly.kit.errors import Conflict, DemandlyError, NotFound, ValidationFailed
from demandly.kit.logging import get_logger
from demandly.kit.time import utcnow
from demandly.leads import service as leads
from demandly.tenancy.models import Client

log = get_logger(__name__)

CALL_STARTED = "call.started"
CALL_COMPLETED = "call.completed"
STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]
RECORDING_EVENTS = ["in-progress", "completed", "absent"]
# Where a status may go: never back, and never away from a final one.
_RANK = {
    CallStatus.QUEUED: 0,
    "initiated": 0,
    CallStatus.RINGING: 1,
    CallStatus.IN_PROGRESS: 2,
    **{status: 3 for status in FINAL_STATUSES},
}
RETRY_RESULTS = frozenset({CallStatus.BUSY, CallStatus.NO_ANSWER, CallStatus.FAILED, "machine"})
YES_WORDS = frozenset({"ja", "yes", "jawohl", "gerne", "gern", "einverstanden", "okay", "ok",
                       "sure", "yeah", "yep", "klar", "natürlich", "agree"})  # fmt: skip
NO_WORDS = frozenset({"nein", "no", "nicht", "nope", "lieber", "don't", "not"})


# --- URLs, masking, signatures -------------------------------------------------------------


def public_url(settings: Settings, path: str, **query: str | int) -> str:
    """An absolute URL under ``DEMANDLY_BASE_URL``: what Twilio calls, and signs."""
    base = settings.base_url.rstrip("/")
    return f"{base}{path}" + (f"?{urlencode(query)}" if query else "")


def media_stream_url(settings: Settings) -> str:
    parts = urlsplit(settings.base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}/twilio/media-stream"


def signature_valid(
    auth_token: str | None, url: str, params: dict[str, str], signature: str | None
) -> bool:
    """Twilio's signature over the public URL and the POST parameters, checked by the SDK."""
    if not auth_token or not signature:
        return False
    return bool(RequestValidator(auth_token).validate(url, params, signature))


def mask(number: str | None) -> str | None:
    """+49 *** *** 67: the country and the last two digits, enough to recognise a caller."""
    if not number:
        return number
    try:
        country = phonenumbers.parse(number).country_code
    except phonenumbers.NumberParseException:
        return "***"
    return f"+{country} *** *** {number[-2:]}"


# --- connections ---------------------------------------------------------------------------


def connection_view(connection: TwilioConnection) -> s.TwilioConnection:
    return s.TwilioConnection(
        id=connection.id,
        agency_id=connection.agency_id,
        client_id=connection.client_id,
        name=connection.name,
        account_sid=connection.account_sid,
        friendly_name=connection.friendly_name,
        auth_token_set=bool(connection.auth_token),
        api_key_sid=connection.api_key_sid,
        verified_at=connection.verified_at,
        created_at=connection.created_at,
    )


def client_for(settings: Settings, connection: TwilioConnection) -> Any:
    return twilio_client(
        settings,
        connection.account_sid,
        auth_token=connection.auth_token,
        api_key_sid=connection.api_key_sid,
        api_key_secret=connection.api_key_secret,
    )


async def verify(settings: Settings, connection: TwilioConnection) -> None:
    """Fetch the account with the credentials: Twilio refusing them is the caller's 422."""
    try:
        async with client_for(settings, connection) as client:
            account = await client.api.v2010.accounts(connection.account_sid).fetch_async()
    except TwilioUnavailable as exc:
        if exc.status in (401, 403, 404):
            field = "api_key_secret" if connection.api_key_sid else "auth_token"
            raise ValidationFailed(field, "Twilio did not accept these credentials.") from None
        raise
    connection.friendly_name = (account.friendly_name or "")[:200] or None
    connection.verified_at = utcnow()


async def create_connection(
    session: AsyncSession, settings: Settings, data: s.TwilioConnectionCreate
) -> TwilioConnection:
    connection = TwilioConnection(
        agency_id=data.agency_id,
        client_id=data.client_id,
        name=data.name,
        account_sid=data.account_sid,
        auth_token=data.auth_token,
        api_key_sid=data.api_key_sid,
        api_key_secret=data.api_key_secret,
    )
    await verify(settings, connection)
    session.add(connection)
    await session.flush()
    return connection


async def connection_behind(
    session: AsyncSession, connection_id: str | None
) -> TwilioConnection | None:
    """The connection a number or call uses, even an agency's connection that a client user
    cannot see itself (its credentials never leave this module)."""
    if not connection_id:
        return None
    async with system_scope(session):
        return await PhoneRepository(session).connection(connection_id)


async def _connection_of(session: AsyncSession, connection_id: str | None) -> TwilioConnection:
    connection = await connection_behind(session, connection_id)
    if connection is None:
        raise NotFound("The Twilio connection of this number or call is gone.")
    return connection


async def get_connection(session: AsyncSession, connection_id: str) -> TwilioConnection:
    connection = await PhoneRepository(session).connection(connection_id)
    if connection is None:
        raise NotFound("Twilio connection not found.")
    return connection


async def update_connection(
    session: AsyncSession,
    settings: Settings,
    connection: TwilioConnection,
    data: s.TwilioConnectionUpdate,
) -> TwilioConnection:
    changes = data.model_dump(exclude_unset=True)
    for field, value in changes.items():
        setattr(connection, field, value)
    if (connection.api_key_sid is None) != (connection.api_key_secret is None):
        raise ValidationFailed("api_key_secret", "api_key_sid and api_key_secret go together.")
    if not connection.auth_token and not connection.api_key_sid:
        raise ValidationFailed("auth_token", "The connection needs credentials.")
    if changes.keys() - {"name"}:
        await verify(settings, connection)
    await session.flush()
    _tokens.discard(connection.id)
    return connection


async def delete_connection(session: AsyncSession, connection: TwilioConnection) -> None:
    if await PhoneRepository(session).numbers_in_use(connection.id):
        raise Conflict("Release or remove the connection's phone numbers first.")
    await session.delete(connection)
    await session.flush()
    _tokens.discard(connection.id)


# --- numbers -------------------------------------------------------------------------------


async def get_number(session: AsyncSession, number_id: str) -> PhoneNumber:
    number = await PhoneRepository(session).number(number_id)
    if number is None:
        raise NotFound("Phone number not found.")
    return number


def _voice_settings(settings: Settings) -> dict[str, str]:
    return {
        "voice_url": public_url(settings, "/twilio/voice/incoming"),
        "voice_method": "POST",
        "status_callback": public_url(settings, "/twilio/voice/status"),
        "status_callback_method": "POST",
    }


async def import_numbers(
    session: AsyncSession, settings: Settings, connection: TwilioConnection
) -> list[PhoneNumber]:
    """The account's numbers, new ones added, known ones refreshed. Their voice URLs stay as
    they are until a number is given to an agent (it may serve something else today)."""
    async with client_for(settings, connection) as client:
        found = await client.incoming_phone_numbers.list_async(limit=1000)
    repo = PhoneRepository(session)
    numbers = []
    for item in found:
        async with system_scope(session):  # held by another connection, maybe elsewhere
            number = await repo.number_by_sid(item.sid)
        if number is None:
            number = PhoneNumber(
                agency_id=connection.agency_id,
                client_id=connection.client_id,
                connection_id=connection.id,
                twilio_sid=item.sid,
                number=item.phone_number,
            )
            session.add(number)
        elif number.connection_id != connection.id:
            continue  # another connection (of another agency) holds it
        number.friendly_name = (item.friendly_name or "")[:200] or None
        number.capabilities = dict(item.capabilities or {})
        number.voice_url = item.voice_url
        numbers.append(number)
    await session.flush()
    return numbers


async def search_numbers(
    settings: Settings,
    connection: TwilioConnection,
    country: str,
    contains: str | None,
    area_code: int | None,
) -> list[s.NumberSearch]:
    async with client_for(settings, connection) as client:
        filters: dict[str, Any] = {"contains": contains, "area_code": area_code}
        found = await client.available_phone_numbers(country).local.list_async(
            voice_enabled=True, limit=20, **{k: v for k, v in filters.items() if v is not None}
        )
    return [
        s.NumberSearch(
            number=item.phone_number,
            friendly_name=item.friendly_name,
            locality=item.locality,
            region=item.region,
            capabilities=dict(item.capabilities or {}),
        )
        for item in found
    ]


async def buy_number(
    session: AsyncSession, settings: Settings, connection: TwilioConnection, data: s.NumberBuy
) -> PhoneNumber:
    agent = await _assignable_agent(session, connection, data.agent_id)
    async with client_for(settings, connection) as client:
        bought = await client.incoming_phone_numbers.create_async(
            phone_number=data.number, **_voice_settings(settings)
        )
    number = PhoneNumber(
        agency_id=connection.agency_id,
        client_id=agent.client_id if agent else connection.client_id,
        connection_id=connection.id,
        twilio_sid=bought.sid,
        number=bought.phone_number,
        friendly_name=(bought.friendly_name or "")[:200] or None,
        capabilities=dict(bought.capabilities or {}),
        voice_url=bought.voice_url,
        agent_id=agent.id if agent else None,
    )
    session.add(number)
    await session.flush()
    return number


async def _assignable_agent(
    session: AsyncSession, connection: TwilioConnection, agent_id: str | None
) -> Agent | None:
    """The agent a number of ``connection`` may answer for: an agent of the connection's
    agency (and of its client, for a client's connection)."""
    if agent_id is None:
        return None
    agent = await agents.get_agent(session, agent_id)
    if agent.agency_id != connection.agency_id or connection.client_id not in (
        None,
        agent.client_id,
    ):
        raise NotFound("Agent not found.", details=[{"field": "agent_id", "message": "unknown"}])
    return agent


async def assign_number(
    session: AsyncSession, settings: Settings, number: PhoneNumber, agent_id: str | None
) -> PhoneNumber:
    """Give the number to an agent (its client's, from then on) and point Twilio's voice URL
    and status callback at us; or take it away (null)."""
    connection = await _connection_of(session, number.connection_id)
    agent = await _assignable_agent(session, connection, agent_id)
    if agent is not None and number.client_id not in (None, agent.client_id):
        raise Conflict("The number belongs to another client.")
    if agent is not None:
        async with client_for(settings, connection) as client:
            updated = await client.incoming_phone_numbers(number.twilio_sid).update_async(
                **_voice_settings(settings)
            )
        number.voice_url = updated.voice_url
    number.agent_id = agent.id if agent else None
    number.client_id = agent.client_id if agent else connection.client_id
    await session.flush()
    return number


async def release_number(session: AsyncSession, settings: Settings, number: PhoneNumber) -> None:
    """Give the number back to Twilio (it stops being billed) and forget it."""
    connection = await _connection_of(session, number.connection_id)
    async with client_for(settings, connection) as client:
        await client.incoming_phone_numbers(number.twilio_sid).delete_async()
    await session.delete(number)
    await session.flush()


# --- the voice flow ------------------------------------------------------------------------


@dataclass(frozen=True)
class Webhook:
    """What every voice webhook needs: the public URL Twilio signed, its form, the header."""

    url: str
    params: dict[str, str]
    signature: str | None


class Refused(DemandlyError):
    """The webhook's signature does not check out (or names nothing we know)."""

    status_code = 403
    code = "invalid_signature"


async def _token_of_call(session: AsyncSession, call: Call | None) -> str | None:
    if call is None or call.connection_id is None:
        return None
    connection = await PhoneRepository(session).connection(call.connection_id)
    if connection is None or not connection.auth_token:
        return None
    _tokens.put(connection.id, connection.auth_token)
    return connection.auth_token


async def authenticate_incoming(db: Database, hook: Webhook) -> PhoneNumber:
    """The number a signed incoming call reached; ``Refused`` for anything else."""
    account, to = hook.params.get("AccountSid", ""), hook.params.get("To", "")
    async with db.session(Scope.for_system()) as session:
        found = await PhoneRepository(session).number_called(account[:34], to[:20])
    number, token = found if found is not None else (None, None)
    if number is None or not signature_valid(token, hook.url, hook.params, hook.signature):
        raise Refused("The request is not signed by Twilio for a number we serve.")
    if token and number.connection_id:
        _tokens.put(number.connection_id, token)
    return number


async def authenticate_call(db: Database, hook: Webhook, call_id: str | None = None) -> Call:
    """The call a signed callback is about, by our id (query) or by CallSid."""
    async with db.session(Scope.for_system()) as session:
        repo = PhoneRepository(session)
        if call_id:
            call = await repo.call(call_id[:40])
        else:
            call = await repo.call_by_sid(hook.params.get("CallSid", "")[:34])
        token = await _token_of_call(session, call)
    if call is None or not signature_valid(token, hook.url, hook.params, hook.signature):
        raise Refused("The request is not signed by Twilio for a call we know.")
    sid = hook.params.get("CallSid")
    if call.twilio_call_sid and sid and sid != call.twilio_call_sid:
        raise Refused("The callback names another call.")
    return call


# What a gather webhook needs to check its signature, kept per process: the connection's Auth
# Token (a changed or removed connection clears its entry here at once; other processes see it
# within WEBHOOK_CACHE_SECONDS) and the call's fixed facts, both noted when the call is answered
# and whenever they are read. A gather turn then opens no transaction before the engine's own,
# the first one included.
WEBHOOK_CACHE_SECONDS = 60
_tokens = TTLCache[str, str](ttl_seconds=WEBHOOK_CACHE_SECONDS, max_items=5000)


@dataclass(frozen=True)
class CallRef:
    """A call's facts that never change once it is answered."""

    id: str
    agency_id: str
    client_id: str
    connection_id: str | None
    conversation_id: str | None
    agent_version_id: str
    twilio_call_sid: str | None
    direction: str
    context: dict[str, Any]

    @classmethod
    def of(cls, call: Call) -> CallRef:
        return cls(
            id=call.id,
            agency_id=call.agency_id,
            client_id=call.client_id,
            connection_id=call.connection_id,
            conversation_id=call.conversation_id,
            agent_version_id=call.agent_version_id,
            twilio_call_sid=call.twilio_call_sid,
            direction=call.direction,
            context=dict(call.context or {}),
        )


_call_refs = TTLCache[str, CallRef](ttl_seconds=WEBHOOK_CACHE_SECONDS, max_items=20_000)


def _remember(call: Call) -> CallRef:
    """The call's fixed facts, kept for its gather webhooks once it is answered (its
    conversation and CallSid known: nothing of the ref changes after that)."""
    ref = CallRef.of(call)
    if ref.conversation_id and ref.twilio_call_sid:
        _call_refs.put(call.id, ref)
    return ref


async def _lookup_for_webhook(db: Database, call_id: str) -> tuple[CallRef | None, str | None]:
    async with db.session(Scope.for_system()) as session:
        call = await PhoneRepository(session).call(call_id)
        token = await _token_of_call(session, call)
    if call is None:
        return None, None
    return _remember(call), token


async def authenticate_gather(db: Database, hook: Webhook, call_id: str) -> CallRef:
    """``authenticate_call`` for the gather webhook, from the process's cache when it can
    (the call's state is read, locked, once the turn has run)."""
    call_id = call_id[:40]
    ref = _call_refs.get(call_id)
    token = _tokens.get(ref.connection_id) if ref and ref.connection_id else None
    if ref is None or token is None:
        ref, token = await _lookup_for_webhook(db, call_id)
    if ref is None or not signature_valid(token, hook.url, hook.params, hook.signature):
        raise Refused("The request is not signed by Twilio for a call we know.")
    sid = hook.params.get("CallSid")
    if ref.twilio_call_sid and sid and sid != ref.twilio_call_sid:
        raise Refused("The callback names another call.")
    return ref


@dataclass(frozen=True)
class _Agent:
    """What the voice flow needs of the call's agent version."""

    version: AgentVersion
    definition: agent_schemas.AgentDefinition
    context: AgentContext
    client: Client

    @property
    def voice(self) -> twiml.Voice:
        return twiml.Voice(self.definition.language, self.definition.phone.say_voice)

    @property
    def greeting(self) -> str:
        return opening_greeting(self.context)


# A version never changes; the client's name and time zone may, and calls see such a change
# within AGENT_CACHE_SECONDS (as the engine's turns do).
AGENT_CACHE_SECONDS = 30
_agents = TTLCache[tuple[str, str], _Agent](ttl_seconds=AGENT_CACHE_SECONDS, max_items=2000)


async def _agent_of(session: AsyncSession, version_id: str, client_id: str) -> _Agent:
    cached = _agents.get((version_id, client_id))
    if cached is not None:
        return cached
    version = await session.get(AgentVersion, version_id)
    client = await session.get(Client, client_id)
    if version is None or client is None:
        raise NotFound("The call's agent is gone.")
    agent = _Agent(
        version=version,
        definition=agents.definition_of(version),
        context=agents.agent_context(version, client),
        client=client,
    )
    _agents.put((version_id, client_id), agent)
    return agent


def _scope(call: Call | CallRef) -> Scope:
    return Scope.for_client(call.agency_id, call.client_id)


async def _start_conversation(session: AsyncSession, call: Call, agent: _Agent) -> None:
    conversation, _, _ = await conversations.start(
        session,
        agency_id=call.agency_id,
        client_id=call.client_id,
        agent_id=call.agent_id,
        agent_version_id=call.agent_version_id,
        channel=Channel.TEST if call.simulated else Channel.PHONE,
        language=agent.definition.language,
        greeting=agent.greeting,
        consent=True,
    )
    call.conversation_id = conversation.id


async def _mark_answered(session: AsyncSession, call: Call) -> None:
    """The call is in progress: once, with the ``call.started`` event."""
    if _RANK.get(call.status, 0) < _RANK[CallStatus.IN_PROGRESS]:
        call.status = CallStatus.IN_PROGRESS.value
    if call.answered_at is None:
        call.answered_at = utcnow()
        await emit(
            session,
            CALL_STARTED,
            agency_id=call.agency_id,
            client_id=call.client_id,
            entity_type="call",
            entity_id=call.id,
            payload={"agent_id": call.agent_id, "direction": call.direction},
        )


def _gather(settings: Settings, agent: _Agent, call: Call, texts: list[str]) -> str:
    action = public_url(settings, "/twilio/voice/gather", call=call.id, seq=call.gather_seq + 1)
    return twiml.gather(agent.voice, texts, action, settings.phone_gather_timeout_seconds)


def _opening(settings: Settings, agent: _Agent, call: Call, before: list[str]) -> str:
    """What the caller hears once the call is ours: the consent question when the agent
    records and has not asked yet, else the stream (realtime) or the greeting (gather)."""
    if agent.definition.phone.record_calls and call.recording_consent is None:
        action = public_url(settings, "/twilio/voice/consent", call=call.id)
        question = twiml.phrase(agent.definition.language, "consent_question")
        return twiml.gather(
            agent.voice, [question], action, settings.phone_gather_timeout_seconds, digits=1
        )
    if call.mode == "realtime":
        parameters = {
            "call_id": call.id,
            "conversation_id": call.conversation_id or "",
            "token": media.stream_token(call.id),
        }
        return twiml.stream(agent.voice, before, media_stream_url(settings), parameters)
    return _gather(settings, agent, call, [*before, agent.greeting])


async def answer_incoming(
    db: Database, settings: Settings, number: PhoneNumber, params: dict[str, str], actor: Actor
) -> str:
    """A call reached one of our numbers: a call and a conversation on the number's agent,
    and the opening TwiML. Twilio retries with the same CallSid: it gets the same answer."""
    sid = params.get("CallSid", "")[:34]
    async with db.session(Scope.for_system(), actor) as session:
        repo = PhoneRepository(session)
        known = await repo.call_by_sid(sid)
        if known is not None:
            return known.last_twiml or twiml.empty()
        version = (
            await agents.published_version(session, number.agent_id) if number.agent_id else None
        )
        if version is None:
            language = "de" if number.number.startswith("+49") else "en"
            return twiml.hang_up(twiml.Voice(language), [twiml.phrase(language, "unavailable")])
        agent = await _agent_of(session, version.id, version.client_id)
        call = Call(
            agency_id=version.agency_id,
            client_id=version.client_id,
            agent_id=version.agent_id,
            agent_version_id=version.id,
            connection_id=number.connection_id,
            phone_number_id=number.id,
            twilio_call_sid=sid,
            direction=Direction.INBOUND.value,
            mode=agent.definition.phone.voice_mode,
            from_number=params.get("From", "")[:20] or None,
            to_number=params.get("To", "")[:20] or None,
            status=CallStatus.RINGING.value,
            started_at=utcnow(),
        )
        session.add(call)
        try:
            await session.flush()
        except IntegrityError:  # the same CallSid at the same moment: Twilio's retry
            await session.rollback()
            known = await repo.call_by_sid(sid)
            return known.last_twiml if known and known.last_twiml else twiml.empty()
        await _start_conversation(session, call, agent)
        await _mark_answered(session, call)
        call.last_twiml = _opening(settings, agent, call, [])
        await session.commit()
    _remember(call)
    return call.last_twiml


async def answer_outbound(
    db: Database, settings: Settings, call: Call, params: dict[str, str], actor: Actor
) -> str:
    """The person we called picked up (or their mailbox did): voicemail for a machine, else
    the same opening as an inbound call."""
    async with db.session(_scope(call), actor) as session:
        locked = await PhoneRepository(session).call(call.id, for_update=True)
        if locked is None:
            raise NotFound("Call not found.")
        call = locked
        if call.last_twiml:
            return call.last_twiml
        # Twilio may answer before the REST reply (with the CallSid) was stored.
        call.twilio_call_sid = call.twilio_call_sid or params.get("CallSid", "")[:34] or None
        agent = await _agent_of(session, call.agent_version_id, call.client_id)
        call.answered_by = params.get("AnsweredBy", "")[:30] or None
        await _mark_answered(session, call)
        if (call.answered_by or "").startswith(("machine", "fax")):
            call.end_reason = "voicemail" if agent.definition.phone.voicemail_message else "machine"
            message = agent.definition.phone.voicemail_message
            call.last_twiml = twiml.hang_up(agent.voice, [message] if message else [])
        else:
            await _start_conversation(session, call, agent)
            call.last_twiml = _opening(settings, agent, call, [])
        await session.commit()
    _remember(call)
    return call.last_twiml


def consent_given(speech: str | None, digits: str | None) -> bool:
    """A clear yes only: key 1, or a yes word and no no word. Silence is a no."""
    if digits:
        return digits.strip().startswith("1")
    words = {w.strip(".,!?;:").casefold() for w in (speech or "").split()}
    return bool(words & YES_WORDS) and not words & NO_WORDS


async def answer_consent(
    db: Database,
    settings: Settings,
    call: Call,
    speech: str | None,
    digits: str | None,
    actor: Actor,
) -> str:
    """The caller answered the recording question: stored once (a retry changes nothing);
    a yes starts the recording at Twilio, then the conversation begins."""
    async with db.session(_scope(call), actor) as session:
        locked = await PhoneRepository(session).call(call.id, for_update=True)
        if locked is None:
            raise NotFound("Call not found.")
        call = locked
        if call.recording_consent is not None:
            return call.last_twiml or twiml.empty()
        agent = await _agent_of(session, call.agent_version_id, call.client_id)
        call.recording_consent = consent_given(speech, digits)
        call.recording_consent_at = utcnow()
        answer = "consent_yes" if call.recording_consent else "consent_no"
        call.last_twiml = _opening(
            settings, agent, call, [twiml.phrase(agent.definition.language, answer)]
        )
        await session.commit()
        start_recording = call.recording_consent and not call.simulated
    if start_recording:
        await _start_recording(db, settings, call)
    return call.last_twiml


async def _start_recording(db: Database, settings: Settings, call: Call) -> None:
    """Calls/{Sid}/Recordings.json; a failure leaves the call unrecorded, never broken."""
    async with db.session(_scope(call)) as session:
        connection = await connection_behind(session, call.connection_id)
    if connection is None or not call.twilio_call_sid:
        return
    try:
        async with client_for(settings, connection) as client:
            await client.calls(call.twilio_call_sid).recordings.create_async(
                recording_status_callback=public_url(settings, "/twilio/recording/status"),
                recording_status_callback_event=RECORDING_EVENTS,
                recording_status_callback_method="POST",
            )
    except TwilioUnavailable as exc:
        log.warning("recording_not_started", call_id=call.id, error=exc.message)


@dataclass
class _Heard:
    replies: list[str]
    handoff: bool = False
    ended: bool = False


def situation_of(call: Call | CallRef) -> str:
    """What the agent is told about this call: for an outbound call, that it is calling, and
    the ``context`` given with the call or campaign (validated flat pairs, see schemas)."""
    lines = []
    if call.direction == Direction.OUTBOUND:
        lines.append("You are calling this person (an outbound call); they did not call you.")
    for key, value in (call.context or {}).items():
        if value is not None and value != "":
            lines.append(f"- {key}: {value}")
    return "\n".join(lines)


class _WithSituation:
    """The agent's model, told one call's situation: at the end of the system prompt (LLM)
    and of the context's instructions (any provider reading those)."""

    def __init__(self, provider: LLMProvider, situation: str) -> None:
        self.name = provider.name
        self._provider = provider
        self._situation = situation

    def __getattr__(self, name: str) -> Any:  # name, needs_tool_results, ...
        return getattr(self._provider, name)

    def stream(self, request: CompletionRequest) -> AsyncIterator[ProviderEvent]:
        messages = list(request.messages)
        if messages and messages[0].role == "system":
            prompt = with_situation(messages[0].content or "", self._situation)
            messages[0] = replace(messages[0], content=prompt)
        else:
            messages.insert(0, ChatMessage("system", with_situation("", self._situation)))
        instructions = with_situation(request.context.instructions, self._situation)
        context = replace(request.context, instructions=instructions.lstrip())
        return self._provider.stream(replace(request, messages=tuple(messages), context=context))


def _runner(db: Database, settings: Settings, situation: str) -> TurnRunner:
    if not situation:
        return TurnRunner(db, settings)

    def factory(s: Settings, llm: agents.ResolvedLLM | None) -> LLMProvider:
        return _WithSituation(default_provider(s, llm), situation)

    return TurnRunner(db, settings, provider_factory=factory)


async def _run_turn(
    db: Database, settings: Settings, call: CallRef, text: str, seq: int, actor: Actor
) -> _Heard:
    heard = _Heard(replies=[])
    key = f"{call.twilio_call_sid or call.id}:{seq}"
    runner = _runner(db, settings, situation_of(call))
    try:
        async for event in runner.run(
            _scope(call), call.conversation_id or "", text, actor=actor, client_message_id=key
        ):
            message = event.data.get("message") or {}
            if event.type == "message" and message.get("role") == MessageRole.ASSISTANT:
                heard.replies.append(message.get("content") or "")
            elif event.type == "handoff":
                heard.handoff = True
            elif event.type == "ended":
                heard.ended = True
    except DemandlyError as exc:  # the conversation ended meanwhile (410) or vanished
        log.info("phone_turn_refused", call_id=call.id, code=exc.code)
        heard.ended = True
    return heard


def _input_text(speech: str | None, digits: str | None) -> str:
    return (speech or "").strip() or (digits or "").strip()


async def gather_turn(
    db: Database,
    settings: Settings,
    ref: CallRef,
    seq: int,
    speech: str | None,
    digits: str | None,
    actor: Actor,
) -> str:
    """One ``<Gather>`` result: what the caller said (or keyed) is one engine turn; silence
    re-prompts, and hangs up politely after ``silence_reprompts``. A callback for a turn
    already answered (Twilio's retry) gets the same TwiML again: the engine finds the
    utterance stored under the same key and answers nothing new, and the call, read locked
    afterwards, says which TwiML it was."""
    text = _input_text(speech, digits)
    heard = _Heard(replies=[])
    if text and ref.conversation_id:
        heard = await _run_turn(db, settings, ref, text[:2000], seq, actor)
    async with db.session(_scope(ref), actor) as session:
        call, status = await PhoneRepository(session).call_for_turn(ref.id)
        if call is None:
            raise NotFound("Call not found.")
        if seq <= call.gather_seq or call.status in FINAL_STATUSES:
            return call.last_twiml or twiml.empty()
        if status is None:
            raise NotFound("Conversation not found.")
        agent = await _agent_of(session, call.agent_version_id, call.client_id)
        call.gather_seq = seq  # (the next <Gather> posts to seq + 1)
        result, status = await _next_twiml(session, settings, agent, call, status, text, heard)
        call.last_twiml = result
        transferred_now = status == "transferred"
        await session.commit()
    if transferred_now and agent.definition.phone.warm_transfer_sms and not call.simulated:
        await _text_summary(db, settings, call)
    return result


async def _next_twiml(
    session: AsyncSession,
    settings: Settings,
    agent: _Agent,
    call: Call,
    status: str,
    text: str,
    heard: _Heard,
) -> tuple[str, str]:
    """The TwiML after a turn (re-prompt, goodbye, transfer or the next ``<Gather>``) and the
    conversation's status after it (``transferred`` when the call is put through now)."""
    if not text:
        call.silence_count += 1
        heard.ended = call.silence_count > agent.definition.phone.silence_reprompts
        key = "silence_goodbye" if heard.ended else "reprompt"
        heard.replies = [twiml.phrase(agent.definition.language, key)]
        if heard.ended:
            await conversations.end(session, await _conversation(session, call), "silence")
            status = ConversationStatus.ENDED
    else:
        call.silence_count = 0
    # A handoff (the engine's, or a person taking over in the inbox) is a transfer on the
    # phone: the bot stays silent from now on.
    handed_off = heard.handoff or status == ConversationStatus.HANDOFF
    if (call.transfer_requested or handed_off) and status != ConversationStatus.ENDED:
        already = call.transferred_to is not None
        conversation = await _conversation(session, call)
        result = await _transfer(session, settings, agent, call, conversation, heard.replies)
        now = call.transferred_to is not None and not already
        return result, "transferred" if now else ConversationStatus.ENDED
    if heard.ended or status == ConversationStatus.ENDED:
        return twiml.hang_up(agent.voice, heard.replies or [_goodbye(agent)]), status
    return _gather(settings, agent, call, heard.replies), status


async def _conversation(session: AsyncSession, call: Call) -> Any:
    return await conversations.get(session, call.conversation_id or "", for_update=True)


def _goodbye(agent: _Agent) -> str:
    return twiml.phrase(agent.definition.language, "goodbye")


def transfer_allowed(
    definition: agent_schemas.AgentDefinition, context: AgentContext, now: datetime
) -> bool:
    """A transfer needs a target, and the business open (when it has opening hours)."""
    if definition.phone.transfer_number is None:
        return False
    if not context.opening_hours:
        return True
    return is_open(context, now.astimezone(zone(context.timezone)))


def caller_id_for(call: Call, definition: agent_schemas.AgentDefinition) -> str | None:
    """``agent_number``: our Twilio number; ``caller``: the caller's own number (Twilio
    shows it for a forwarded call)."""
    ours = call.to_number if call.direction == Direction.INBOUND else call.from_number
    theirs = call.from_number if call.direction == Direction.INBOUND else call.to_number
    return theirs if definition.phone.transfer_caller_id == "caller" else ours


async def _transfer(
    session: AsyncSession,
    settings: Settings,
    agent: _Agent,
    call: Call,
    conversation: Any,
    replies: list[str],
) -> str:
    """Dial the agent's transfer target when it is open; otherwise the agent has taken a
    message (the lead is captured) and says goodbye."""
    language = agent.definition.language
    call.transfer_requested = False
    if not transfer_allowed(agent.definition, agent.context, utcnow()):
        await conversations.end(session, conversation, "handoff")
        return twiml.hang_up(agent.voice, [*replies, twiml.phrase(language, "handoff_goodbye")])
    target = agent.definition.phone.transfer_number or ""
    call.transferred_to = target
    await conversations.end(session, conversation, "transferred")
    return twiml.dial(
        agent.voice,
        [*replies, twiml.phrase(language, "transfer")],
        target,
        caller_id_for(call, agent.definition),
        public_url(settings, "/twilio/voice/dial", call=call.id),
    )


async def dial_ended(db: Database, call: Call, dial_status: str, actor: Actor) -> str:
    """The transfer's ``<Dial>`` is over: a person answered (hang up) or not (apologise)."""
    async with db.session(_scope(call), actor) as session:
        agent = await _agent_of(session, call.agent_version_id, call.client_id)
    if dial_status == "completed":
        return twiml.hang_up(agent.voice, [])
    return twiml.hang_up(agent.voice, [twiml.phrase(agent.definition.language, "transfer_failed")])


async def request_transfer(
    session: AsyncSession, conversation: Any, context: AgentContext
) -> dict[str, Any]:
    """The ``transfer_call`` tool: flag the call so that its next TwiML dials."""
    call = await PhoneRepository(session).call_of_conversation(conversation.id)
    if call is None:
        return {"transferred": False, "reason": "not a phone call: use request_handoff"}
    version = await session.get(AgentVersion, call.agent_version_id)
    definition = agents.definition_of(version) if version else None
    if definition is None or definition.phone.transfer_number is None:
        return {"transferred": False, "take_message": True, "reason": "no transfer number"}
    if not transfer_allowed(definition, context, utcnow()):
        return {"transferred": False, "take_message": True, "reason": "outside business hours"}
    call.transfer_requested = True
    return {"transferred": True}


async def _text_summary(db: Database, settings: Settings, call: Call) -> None:
    """Warm transfer: text the person a summary before their phone rings (Messages.json)."""
    async with db.session(_scope(call)) as session:
        connection = await connection_behind(session, call.connection_id)
        body = await summary_of(session, call)
    sender = call.to_number if call.direction == Direction.INBOUND else call.from_number
    if connection is None or not sender or not call.transferred_to:
        return
    try:
        async with client_for(settings, connection) as client:
            await client.messages.create_async(
                to=call.transferred_to, from_=sender, body=body[:1500]
            )
    except TwilioUnavailable as exc:
        log.warning("warm_transfer_sms_failed", call_id=call.id, error=exc.message)


# --- status and recording callbacks --------------------------------------------------------


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


async def apply_status(
    db: Database, settings: Settings, call: Call, params: dict[str, str], actor: Actor
) -> None:
    """A status callback: forward only, never away from a final state; safe to repeat and
    to receive out of order. The final one ends the conversation and emits ``call.completed``."""
    status = params.get("CallStatus", "")
    if status not in _RANK:
        return
    async with db.session(_scope(call), actor) as session:
        locked = await PhoneRepository(session).call(call.id, for_update=True)
        if locked is None:
            return
        call = locked
        sequence = _int(params.get("SequenceNumber"))
        if sequence is not None:
            call.status_sequence = max(call.status_sequence, sequence)
        if params.get("AnsweredBy") and call.answered_by is None:
            call.answered_by = params["AnsweredBy"][:30]
        if call.status in FINAL_STATUSES or _RANK[status] <= _RANK.get(call.status, 0):
            await session.commit()  # a repeat, or older news: only the bookkeeping above
            return
        if status == CallStatus.IN_PROGRESS:
            await _mark_answered(session, call)
        elif status in FINAL_STATUSES:
            await _finish(session, settings, call, status, _int(params.get("CallDuration")))
        elif status != "initiated":
            call.status = status
        await session.commit()


async def _finish(
    session: AsyncSession, settings: Settings, call: Call, status: str, duration: int | None
) -> None:
    call.status = status
    call.ended_at = utcnow()
    call.duration_seconds = duration
    if call.conversation_id:
        conversation = await conversations.get(session, call.conversation_id)
        await conversations.end(session, conversation, call.end_reason or "hangup")
    call.outcome = await outcome_of(session, call)
    call.summary = await summary_of(session, call)
    await emit(
        session,
        CALL_COMPLETED,
        agency_id=call.agency_id,
        client_id=call.client_id,
        entity_type="call",
        entity_id=call.id,
        payload={
            "agent_id": call.agent_id,
            "status": status,
            "direction": call.direction,
            "duration_seconds": duration,
            "outcome": call.outcome,
        },
    )
    if call.campaign_target_id:
        await _settle_target(session, call, utcnow())


async def apply_recording(db: Database, call: Call, params: dict[str, str], actor: Actor) -> None:
    """Twilio's recording status callback: the recording's metadata on the call."""
    async with db.session(_scope(call), actor) as session:
        locked = await PhoneRepository(session).call(call.id, for_update=True)
        if locked is None:
            return
        locked.recording_sid = params.get("RecordingSid", "")[:34] or locked.recording_sid
        locked.recording_url = params.get("RecordingUrl", "")[:500] or locked.recording_url
        locked.recording_status = params.get("RecordingStatus", "")[:20] or None
        duration = _int(params.get("RecordingDuration"))
        if duration is not None:
            locked.recording_duration_seconds = duration
        await session.commit()


# --- the call log --------------------------------------------------------------------------


async def get_call(session: AsyncSession, call_id: str) -> Call:
    call = await PhoneRepository(session).call(call_id)
    if call is None:
        raise NotFound("Call not found.")
    return call


def call_view(call: Call, *, masked: bool) -> s.Call:
    values = {name: getattr(call, name) for name in s.Call.model_fields}
    if masked:
        values |= {"from_number": mask(call.from_number), "to_number": mask(call.to_number)}
    return s.Call(**values)


async def call_detail(session: AsyncSession, call: Call) -> s.CallDetail:
    rows = await _transcript(session, call)
    return s.CallDetail(
        **call_view(call, masked=False).model_dump(),
        context=call.context or {},
        transcript=[
            s.TranscriptLine(
                seq=m.seq, role=m.role, content=m.content or "", created_at=m.created_at
            )
            for m in rows
            if m.role != MessageRole.TOOL and m.content
        ],
    )


async def _transcript(session: AsyncSession, call: Call) -> list[Message]:
    if not call.conversation_id:
        return []
    return await conversations.messages(session, call.conversation_id)


async def outcome_of(session: AsyncSession, call: Call) -> str | None:
    """appointment, transfer, lead or voicemail: the most valuable thing the call achieved."""
    rows = await _transcript(session, call)
    if _booked(rows):
        return "appointment"
    if call.transferred_to:
        return "transfer"
    if call.conversation_id:
        conversation = await conversations.get(session, call.conversation_id)
        if conversation.lead_fields:
            return "lead"
    if call.end_reason == "voicemail":
        return "voicemail"
    return None


def _booked(rows: list[Message]) -> bool:
    calls = {
        c.get("id"): c.get("name")
        for m in rows
        if m.role == MessageRole.ASSISTANT
        for c in (m.tool_calls or [])
    }
    for m in rows:
        if m.role == MessageRole.TOOL and calls.get(m.tool_call_id) == "book_appointment":
            try:
                if json.loads(m.content or "{}").get("ok"):
                    return True
            except ValueError:
                continue
    return False


async def summary_of(session: AsyncSession, call: Call) -> str:
    """A short summary for the call log and the warm-transfer text: who, what was captured,
    and the caller's last words."""
    parts = [f"{call.direction} call"]
    rows = await _transcript(session, call)
    if call.conversation_id:
        conversation = await conversations.get(session, call.conversation_id)
        captured = ", ".join(f"{k}: {v}" for k, v in (conversation.lead_fields or {}).items())
        if captured:
            parts.append(captured)
    said = [m.content for m in rows if m.role == MessageRole.USER and m.content]
    if said:
        parts.append(f"last: {said[-1][:200]}")
    if call.duration_seconds is not None:
        parts.append(f"{call.duration_seconds} s")
    return "; ".join(parts)


# --- the simulator -------------------------------------------------------------------------


async def simulate_call(
    db: Database, settings: Settings, agent: Agent, actor: Actor
) -> s.SimulatedCall:
    """A call without Twilio on the agent's live version: the same opening TwiML a caller
    would get (gather mode whatever the agent's voice mode)."""
    async with db.session(Scope.for_client(agent.agency_id, agent.client_id), actor) as session:
        version = await agents.published_version(session, agent.id)
        if version is None:
            raise Conflict("Publish the agent first.", code="not_published")
        definition = await _agent_of(session, version.id, agent.client_id)
        call = Call(
            agency_id=agent.agency_id,
            client_id=agent.client_id,
            agent_id=agent.id,
            agent_version_id=version.id,
            direction=Direction.INBOUND.value,
            mode="gather",
            simulated=True,
            status=CallStatus.RINGING.value,
            started_at=utcnow(),
        )
        session.add(call)
        await session.flush()
        await _start_conversation(session, call, definition)
        await _mark_answered(session, call)
        call.last_twiml = _opening(settings, definition, call, [])
        await session.commit()
    return simulated(call, call.last_twiml)


async def simulate_turn(
    db: Database, settings: Settings, agent: Agent, call_id: str, text: str, actor: Actor
) -> s.SimulatedCall:
    """What the caller says, taken where the last TwiML's ``<Gather>`` would post it."""
    async with db.session(Scope.for_client(agent.agency_id, agent.client_id)) as session:
        call = await PhoneRepository(session).call(call_id)
    if call is None or not call.simulated or call.agent_id != agent.id:
        raise NotFound("Simulated call not found.")
    heard = twiml.read(call.last_twiml or twiml.empty())
    if heard.action != "gather" or not heard.gather_url:
        raise Conflict("The simulated call is over.", code="call_ended")
    path = urlsplit(heard.gather_url).path
    query = dict(p.split("=", 1) for p in urlsplit(heard.gather_url).query.split("&") if p)
    digits = text if text.isdigit() else None
    speech = None if digits else text
    if path.endswith("/consent"):
        result = await answer_consent(db, settings, call, speech, digits, actor)
    else:
        result = await gather_turn(
            db, settings, CallRef.of(call), int(query.get("seq", "1")), speech, digits, actor
        )
    if twiml.read(result).action in ("hangup", "dial"):
        await _finish_simulated(db, settings, call.id)
    return simulated(call, result)


async def _finish_simulated(db: Database, settings: Settings, call_id: str) -> None:
    async with db.session(Scope.for_system()) as session:
        call = await PhoneRepository(session).call(call_id, for_update=True)
        if call is not None and call.status not in FINAL_STATUSES:
            duration = int((utcnow() - (call.answered_at or call.created_at)).total_seconds())
            await _finish(session, settings, call, CallStatus.COMPLETED, duration)
            await session.commit()


def simulated(call: Call, document: str) -> s.SimulatedCall:
    heard = twiml.read(document)
    return s.SimulatedCall(
        call_id=call.id,
        conversation_id=call.conversation_id,
        prompt=heard.text,
        action=heard.action,  # type: ignore[arg-type]
        dial_number=heard.dial_number,
        twiml=document,
    )


# --- outbound calls ------------------------------------------------------------------------


async def _callable_contact(session: AsyncSession, contact_id: str, client_id: str) -> Any:
    contact = await leads.get_contact(session, contact_id)
    if contact.client_id != client_id:
        raise NotFound("Contact not found.")
    return contact


def may_call(contact: Any) -> bool:
    """Art. 18 GDPR restriction and the contact's own "do not call" both stop the dialer."""
    return not (contact.processing_restricted or contact.do_not_call)


async def create_outbound(
    session: AsyncSession,
    agent: Agent,
    to: str,
    *,
    number_id: str | None = None,
    contact_id: str | None = None,
    context: dict[str, Any] | None = None,
    campaign: Campaign | None = None,
    target: CampaignTarget | None = None,
) -> Call:
    """A queued outbound call (Twilio is asked by ``dial`` once this is committed)."""
    version = await agents.published_version(session, agent.id)
    if version is None:
        raise Conflict("Publish the agent first.", code="not_published")
    repo = PhoneRepository(session)
    number = await (repo.number(number_id) if number_id else repo.first_number_of_agent(agent.id))
    if number is None or number.client_id not in (None, agent.client_id):
        raise ValidationFailed("phone_number_id", "The agent has no phone number to call from.")
    if contact_id is not None:
        contact = await _callable_contact(session, contact_id, agent.client_id)
        if not may_call(contact):
            raise Conflict("This contact may not be called.", code="do_not_call")
    definition = agents.definition_of(version)
    call = Call(
        agency_id=agent.agency_id,
        client_id=agent.client_id,
        agent_id=agent.id,
        agent_version_id=version.id,
        connection_id=number.connection_id,
        phone_number_id=number.id,
        direction=Direction.OUTBOUND.value,
        mode=definition.phone.voice_mode,
        from_number=number.number,
        to_number=to,
        status=CallStatus.QUEUED.value,
        started_at=utcnow(),
        contact_id=contact_id,
        context=context or {},
        campaign_id=campaign.id if campaign else None,
        campaign_target_id=target.id if target else None,
    )
    session.add(call)
    await session.flush()
    return call


async def dial(session: AsyncSession, settings: Settings, call: Call) -> None:
    """Calls.json: Twilio calls ``to`` and fetches our TwiML when someone (or something)
    answers; answering machines are told apart (voicemail after the beep)."""
    connection = await _connection_of(session, call.connection_id)
    version = await session.get(AgentVersion, call.agent_version_id)
    voicemail = agents.definition_of(version).phone.voicemail_message if version else None
    try:
        async with client_for(settings, connection) as client:
            created = await client.calls.create_async(
                to=call.to_number,
                from_=call.from_number,
                url=public_url(settings, "/twilio/voice/outbound", call=call.id),
                method="POST",
                status_callback=public_url(settings, "/twilio/voice/status", call=call.id),
                status_callback_event=STATUS_EVENTS,
                status_callback_method="POST",
                machine_detection="DetectMessageEnd" if voicemail else "Enable",
            )
    except TwilioUnavailable:
        call.end_reason = "twilio_error"
        await _finish(session, settings, call, CallStatus.FAILED, None)
        raise
    call.twilio_call_sid = created.sid
    await session.flush()


async def hang_up(settings: Settings, connection: TwilioConnection, call_sid: str) -> None:
    """End a live call from our side (Calls/{Sid}.json Status=completed)."""
    async with client_for(settings, connection) as client:
        await client.calls(call_sid).update_async(status="completed")


# --- campaigns -----------------------------------------------------------------------------


async def get_campaign(session: AsyncSession, campaign_id: str) -> Campaign:
    campaign = await PhoneRepository(session).campaign(campaign_id)
    if campaign is None:
        raise NotFound("Campaign not found.")
    return campaign


async def _add_targets(session: AsyncSession, campaign: Campaign, contact_ids: list[str]) -> None:
    known = {t.contact_id for t in await PhoneRepository(session).targets(campaign.id)}
    for index, contact_id in enumerate(dict.fromkeys(contact_ids)):
        if contact_id in known:
            continue
        try:
            await _callable_contact(session, contact_id, campaign.client_id)
        except NotFound:
            raise ValidationFailed(f"contact_ids.{index}", "Not a contact of the client.") from None
        session.add(
            CampaignTarget(
                agency_id=campaign.agency_id,
                client_id=campaign.client_id,
                campaign_id=campaign.id,
                contact_id=contact_id,
                status=TargetStatus.PENDING.value,
            )
        )


async def create_campaign(session: AsyncSession, agent: Agent, data: s.CampaignCreate) -> Campaign:
    campaign = Campaign(
        agency_id=agent.agency_id,
        client_id=agent.client_id,
        agent_id=agent.id,
        name=data.name,
        status=CampaignStatus.DRAFT.value,
        window_start=data.window_start,
        window_end=data.window_end,
        weekdays=sorted(set(data.weekdays)),
        max_concurrent=data.max_concurrent,
        max_attempts=data.max_attempts,
        retry_minutes=data.retry_minutes,
        context=data.context,
    )
    session.add(campaign)
    await session.flush()
    await _add_targets(session, campaign, data.contact_ids)
    await session.flush()
    return campaign


async def update_campaign(
    session: AsyncSession, campaign: Campaign, data: s.CampaignUpdate
) -> Campaign:
    if campaign.status == CampaignStatus.COMPLETED and data.status is not None:
        raise Conflict("The campaign is completed.")
    if data.name is not None:
        campaign.name = data.name
    if data.status is not None:
        if data.status == CampaignStatus.RUNNING:
            await get_agent_published(session, campaign.agent_id)
        campaign.status = data.status
    if data.add_contact_ids:
        await _add_targets(session, campaign, data.add_contact_ids)
    await session.flush()
    return campaign


async def get_agent_published(session: AsyncSession, agent_id: str) -> AgentVersion:
    version = await agents.published_version(session, agent_id)
    if version is None:
        raise Conflict("Publish the agent first.", code="not_published")
    return version


async def delete_campaign(session: AsyncSession, campaign: Campaign) -> None:
    """The campaign and its targets go; its calls stay in the log."""
    await session.delete(campaign)
    await session.flush()


async def campaign_detail(session: AsyncSession, campaign: Campaign) -> s.CampaignDetail:
    targets = await PhoneRepository(session).targets(campaign.id)
    return s.CampaignDetail(
        **s.Campaign.model_validate(campaign).model_dump(),
        targets=[s.CampaignTarget.model_validate(t) for t in targets],
    )


def in_window(campaign: Campaign, timezone: str, now: datetime) -> bool:
    """Inside the calling window, in the client's time zone."""
    local = now.astimezone(zone(timezone))
    start, end = time.fromisoformat(campaign.window_start), time.fromisoformat(campaign.window_end)
    return local.weekday() in campaign.weekdays and start <= local.time() < end


def backoff(campaign: Campaign, attempts: int) -> timedelta:
    """The wait before the next attempt: ``retry_minutes``, doubling with every attempt."""
    return timedelta(minutes=campaign.retry_minutes * 2 ** max(0, attempts - 1))


async def _settle_target(session: AsyncSession, call: Call, now: datetime) -> None:
    """A campaign call ended: done, or another attempt later (busy, no answer, failed, a
    machine without a voicemail message), or given up after ``max_attempts``."""
    repo = PhoneRepository(session)
    target = await repo.target(call.campaign_target_id or "")
    campaign = await repo.campaign(call.campaign_id or "")
    if target is None or campaign is None or target.last_call_id != call.id:
        return
    machine = (call.answered_by or "").startswith("machine") and call.end_reason != "voicemail"
    result = "machine" if machine else call.status
    target.last_result = result
    if result in RETRY_RESULTS:
        if target.attempts >= campaign.max_attempts:
            target.status = TargetStatus.FAILED.value
        else:
            target.status = TargetStatus.PENDING.value
            target.next_attempt_at = now + backoff(campaign, target.attempts)
    else:
        target.status = TargetStatus.DONE.value
    await session.flush()
    if not await repo.open_targets(campaign.id):
        campaign.status = CampaignStatus.COMPLETED.value


async def run_dialer(session: AsyncSession, settings: Settings, now: datetime | None = None) -> int:
    """One pass of the dialer over every running campaign (system scope): within each
    campaign's window, start due targets up to ``max_concurrent`` live calls. Returns the
    number of calls placed."""
    now = now or utcnow()
    placed = 0
    for campaign_id in await PhoneRepository(session).running_campaign_ids():
        placed += await _dial_campaign(session, settings, campaign_id, now)
    return placed


async def _dial_campaign(
    session: AsyncSession, settings: Settings, campaign_id: str, now: datetime
) -> int:
    repo = PhoneRepository(session)
    campaign = await repo.campaign(campaign_id, for_update=True)
    if campaign is None or campaign.status != CampaignStatus.RUNNING:
        return 0
    client = await session.get(Client, campaign.client_id)
    if client is None or not in_window(campaign, client.timezone, now):
        return 0
    free = campaign.max_concurrent - await repo.live_calls_of_campaign(campaign.id)
    if free <= 0:
        return 0
    agent = await agents.get_agent(session, campaign.agent_id)
    placed = 0
    for target in await repo.due_targets(campaign.id, now, min(free, settings.phone_dialer_batch)):
        if await _call_target(session, settings, campaign, agent, target):
            placed += 1
    await session.flush()
    if not await repo.open_targets(campaign.id):
        campaign.status = CampaignStatus.COMPLETED.value
    return placed


async def _call_target(
    session: AsyncSession,
    settings: Settings,
    campaign: Campaign,
    agent: Agent,
    target: CampaignTarget,
) -> bool:
    try:
        contact = await _callable_contact(session, target.contact_id, campaign.client_id)
    except NotFound:
        target.status = TargetStatus.SKIPPED.value
        target.last_result = "contact_deleted"
        return False
    if not may_call(contact) or not contact.phone:
        target.status = TargetStatus.SKIPPED.value
        target.last_result = "do_not_call" if contact.phone else "no_phone"
        return False
    target.attempts += 1
    target.status = TargetStatus.CALLING.value
    try:
        call = await create_outbound(
            session,
            agent,
            contact.phone,
            contact_id=contact.id,
            context=campaign.context,
            campaign=campaign,
            target=target,
        )
        target.last_call_id = call.id
        await dial(session, settings, call)
    except DemandlyError as exc:
        log.warning("campaign_call_failed", campaign_id=campaign.id, code=exc.code)
        return False
    return True


# --- for the media-stream bridge (realtime mode; see /work/notes/phone-interface.md) -------


@dataclass(frozen=True)
class MediaCall:
    """A live realtime call as the bridge sees it."""

    call_id: str
    call_sid: str | None
    agency_id: str
    client_id: str
    agent_id: str
    agent_version_id: str
    conversation_id: str
    language: str
    greeting: str
    definition: agent_schemas.AgentDefinition
    context: AgentContext
    enabled_tools: frozenset[str]
    scope: Scope
    # The call's own background (outbound: why we call), for the session's instructions.
    situation: str = ""


async def media_call(db: Database, call_id: str, call_sid: str | None) -> MediaCall | None:
    """The call a media stream names, if it is live and its CallSid matches."""
    async with db.session(Scope.for_system()) as session:
        call = await PhoneRepository(session).call(call_id[:40])
        if call is None or call.conversation_id is None or call.status in FINAL_STATUSES:
            return None
        if call.twilio_call_sid and call.twilio_call_sid != call_sid:
            return None
        conversation = await conversations.get(session, call.conversation_id)
        if conversation.status == ConversationStatus.ENDED:
            return None
        agent = await _agent_of(session, call.agent_version_id, call.client_id)
    return MediaCall(
        call_id=call.id,
        call_sid=call.twilio_call_sid,
        agency_id=call.agency_id,
        client_id=call.client_id,
        agent_id=call.agent_id,
        agent_version_id=call.agent_version_id,
        conversation_id=call.conversation_id,
        language=agent.definition.language,
        greeting=agent.greeting,
        definition=agent.definition,
        context=agent.context,
        enabled_tools=frozenset(agent.definition.tools) | BUILT_IN_TOOLS,
        scope=_scope(call),
        situation=situation_of(call),
    )


async def append_transcript(db: Database, media: MediaCall, role: str, text: str) -> None:
    """One utterance of the caller (``user``) or the agent (``assistant``)."""
    if not text.strip():
        return
    async with db.session(media.scope) as session:
        conversation = await conversations.get(session, media.conversation_id, for_update=True)
        message_role = MessageRole.USER if role == "user" else MessageRole.ASSISTANT
        await conversations.append(session, conversation, message_role, text.strip())
        await session.commit()


async def end_media_call(
    db: Database, settings: Settings, media: MediaCall, reason: str, hang_up_call: bool
) -> None:
    """The realtime call is over for the bridge: the conversation ends; with
    ``hang_up_call`` (the agent said goodbye) the call is hung up at Twilio too."""
    async with db.session(media.scope) as session:
        call = await PhoneRepository(session).call(media.call_id, for_update=True)
        conversation = await conversations.get(session, media.conversation_id, for_update=True)
        await conversations.end(session, conversation, reason[:40])
        if call is not None and call.end_reason is None:
            call.end_reason = reason[:40]
        connection = await connection_behind(session, call.connection_id if call else None)
        await session.commit()
    if hang_up_call and connection is not None and media.call_sid:
        try:
            await hang_up(settings, connection, media.call_sid)
        except TwilioUnavailable as exc:
            log.warning("hang_up_failed", call_id=media.call_id, error=exc.message)


async def transfer_media_call(db: Database, settings: Settings, media: MediaCall) -> bool:
    """Put a realtime call through to the transfer target: its TwiML is replaced by the
    ``<Dial>`` (Calls/{Sid}.json Twiml=…). False when there is no target or it is closed."""
    async with db.session(media.scope) as session:
        call = await PhoneRepository(session).call(media.call_id, for_update=True)
        if call is None or not transfer_allowed(media.definition, media.context, utcnow()):
            return False
        agent = await _agent_of(session, call.agent_version_id, call.client_id)
        conversation = await conversations.get(session, media.conversation_id, for_update=True)
        document = await _transfer(session, settings, agent, call, conversation, [])
        connection = await connection_behind(session, call.connection_id)
        await session.commit()
    if connection is None or not media.call_sid:
        return False
    try:
        async with client_for(settings, connection) as client:
            await client.calls(media.call_sid).update_async(twiml=document)
    except TwilioUnavailable as exc:
        log.warning("transfer_failed", call_id=media.call_id, error=exc.message)
        return False
    if media.definition.phone.warm_transfer_sms:
        await _text_summary(db, settings, call)
    return True
