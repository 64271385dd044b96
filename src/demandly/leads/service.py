"""Rules of contacts and leads: normalising and deduplicating people, answers per the agent's
form, scoring, automatic qualification, and capturing leads from conversations. Never commits.

A contact is one person per client, found again by e-mail address or phone number: creating
one that exists fills its blanks instead, and a new detail that names two contacts merges them.
A lead is one enquiry: its answers follow the agent's qualification form, its score is the sum
of the client's matching rules (recomputed whenever the answers change), and it qualifies on
its own once every required answer is in and the score reaches the client's threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

import phonenumbers
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.agents import service as agents
from demandly.agents.models import Agent, AgentVersion
from demandly.agents.schemas import QualificationField
from demandly.audit.service import record, record_change
from demandly.conversations.models import Conversation
from demandly.jobs.models import DomainEvent
from demandly.jobs.service import NewEvent, NewJob, emit_many, enqueue_many
from demandly.kit.cache import TTLCache
from demandly.kit.errors import Conflict, NotFound, ValidationFailed
from demandly.kit.time import utcnow
from demandly.leads import schemas as s
from demandly.leads.models import Contact, Lead, LeadNote, LeadSettings, LeadStatus
from demandly.leads.repository import LeadRepository
from demandly.tenancy.models import Client
from demandly.tenancy.schemas import Email

LEAD_CREATED = "lead.created"
LEAD_QUALIFIED = "lead.qualified"
LEAD_EVENTS = {"created": LEAD_CREATED, "qualified": LEAD_QUALIFIED}
# The job that e-mails the client's recipients about a lead (leads/tasks.py).
NOTIFY_TASK = "leads.notify"
NAME_KEYS = ("name", "full_name", "fullname")
EMAIL_KEYS = ("email", "e_mail", "email_address")
PHONE_KEYS = ("phone", "telefon", "telephone", "mobile", "phone_number")
COMPANY_KEYS = ("company", "firma", "company_name", "organisation", "organization")
_EMAIL = TypeAdapter(Email)


# --- normalising ---------------------------------------------------------------------------


def client_region(client: Client) -> str:
    return agents.phone_region(client.timezone, client.locale)


def normalise_email(value: Any) -> str:
    """Trimmed, lower case; ValueError when it is not an e-mail address."""
    if not isinstance(value, str):
        raise ValueError("must be an e-mail address")
    try:
        return _EMAIL.validate_python(value.strip())
    except ValidationError as exc:
        raise ValueError("must be an e-mail address such as name@example.com") from exc


def normalise_phone(value: Any, region: str) -> str:
    """E.164, national numbers read in ``region``; ValueError when it is not a valid number."""
    text = str(value).strip() if isinstance(value, str | int) else ""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("must be a phone number such as +49 30 1234567") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("must be a valid phone number such as +49 30 1234567")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _field(name: str, normalise: Any, value: Any, *args: Any) -> Any:
    try:
        return normalise(value, *args)
    except ValueError as exc:
        raise ValidationFailed(name, str(exc)) from None


# --- contacts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """What is known of a person, normalised: the input of deduplication."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    company: str | None = None

    def known(self) -> bool:
        return bool(self.name or self.email or self.phone)


def person_from(data: s.ContactFields, region: str, prefix: str = "") -> Person:
    phone = _field(f"{prefix}phone", normalise_phone, data.phone, region) if data.phone else None
    return Person(name=data.name, email=data.email, phone=phone, company=data.company)


async def get_contact(session: AsyncSession, contact_id: str) -> Contact:
    contact = await LeadRepository(session).contact(contact_id)
    if contact is None:
        raise NotFound("Contact not found.")
    return contact


async def create_contact(
    session: AsyncSession, client: Client, data: s.ContactCreate
) -> tuple[Contact, bool]:
    """The new contact, or the existing one it matched (with its blanks filled); and whether
    it is new."""
    person = person_from(data, client_region(client))
    flags = data.model_dump(
        include={
            "source",
            "custom_fields",
            "consent_contact",
            "consent_marketing",
            "processing_restricted",
            "do_not_call",
        }
    )
    return await upsert_contact(session, client.agency_id, client.id, person, **flags)


async def upsert_contact(
    session: AsyncSession,
    agency_id: str,
    client_id: str,
    person: Person,
    *,
    source: str = "manual",
    custom_fields: dict[str, Any] | None = None,
    flush: bool = True,
    **flags: bool,
) -> tuple[Contact, bool]:
    """The client's contact with the person's e-mail or phone (blanks filled, and merged with
    a second one that the other detail names), else a new one; and whether it is new. A
    concurrent insert of the same person loses on the unique constraints and joins the
    winner. ``flush=False`` leaves the contact to the caller's next flush, which writes it
    with the caller's own rows (on PostgreSQL a new contact is still flushed at once, in the
    savepoint that catches a concurrent insert)."""
    repo = LeadRepository(session)
    matches = await repo.contacts_matching(client_id, person.email, person.phone)
    if not matches:
        contact = Contact(
            agency_id=agency_id,
            client_id=client_id,
            name=person.name,
            email=person.email,
            phone=person.phone,
            company=person.company,
            source=source,
            custom_fields=dict(custom_fields or {}),
            **{k: bool(v) for k, v in flags.items()},
        )
        if _writers_serialised(session):
            session.add(contact)
            if flush:
                await session.flush()
            return contact, True
        try:
            async with session.begin_nested():
                session.add(contact)
                await session.flush()
            return contact, True
        except IntegrityError:
            # Created by a concurrent request a moment ago: join it.
            matches = await repo.contacts_matching(client_id, person.email, person.phone)
            if not matches:
                raise Conflict("The contact changed meanwhile; try again.") from None
    target = matches[0]
    for other in matches[1:]:
        await merge_contacts(session, target, other)
    _fill_blanks(target, person, custom_fields or {}, flags)
    if flush:
        await session.flush()
    return target, False


def _writers_serialised(session: AsyncSession) -> bool:
    """On SQLite every write transaction holds the database's write lock from its BEGIN
    IMMEDIATE on: no other insert can come between the look-up and ours, so there is no race
    for a savepoint to catch."""
    return session.get_bind().dialect.name == "sqlite"


def _fill_blanks(
    contact: Contact, person: Person, custom_fields: dict[str, Any], flags: dict[str, bool]
) -> None:
    """Details the contact lacks are taken; details it has are kept. Consent given and
    restrictions asked for anywhere hold for the person."""
    for key in ("name", "email", "phone", "company"):
        if getattr(contact, key) is None and getattr(person, key) is not None:
            setattr(contact, key, getattr(person, key))
    if any(k not in contact.custom_fields for k in custom_fields):
        contact.custom_fields = {**custom_fields, **contact.custom_fields}
    for key, value in flags.items():
        if value and not getattr(contact, key):
            setattr(contact, key, True)


async def update_contact(
    session: AsyncSession, contact: Contact, client: Client, data: s.ContactUpdate
) -> Contact:
    changes = data.model_dump(exclude_unset=True)
    if "phone" in changes and changes["phone"] is not None:
        changes["phone"] = _field("phone", normalise_phone, changes["phone"], client_region(client))
    if "custom_fields" in changes:
        merged = {**contact.custom_fields, **changes.pop("custom_fields")}
        contact.custom_fields = {k: v for k, v in merged.items() if v is not None}
    repo = LeadRepository(session)
    for key in ("email", "phone"):
        if changes.get(key) is not None and changes[key] != getattr(contact, key):
            taken = await repo.contacts_matching(
                contact.client_id,
                *((changes[key], None) if key == "email" else (None, changes[key])),
            )
            if taken:
                raise Conflict(
                    f"Another contact of this client has this {key.replace('_', ' ')}; "
                    f"merge the two instead (POST /api/v1/contacts/{contact.id}/merge).",
                    code="duplicate_contact",
                    details={"field": key, "contact_id": taken[0].id},
                )
    for key, value in changes.items():
        setattr(contact, key, value)
    if not (contact.name or contact.email or contact.phone):
        raise ValidationFailed("name", "a contact needs a name, an e-mail address or a phone")
    await session.flush()
    return contact


async def merge_contacts(session: AsyncSession, target: Contact, other: Contact) -> Contact:
    """``other`` joins ``target``: its leads move over, its details fill ``target``'s blanks,
    and it is deleted."""
    if other.id == target.id:
        raise ValidationFailed("other_id", "a contact cannot be merged into itself")
    if other.client_id != target.client_id:
        raise ValidationFailed("other_id", "only contacts of the same client can be merged")
    person = Person(name=other.name, email=other.email, phone=other.phone, company=other.company)
    custom_fields = dict(other.custom_fields)
    flags = {
        key: getattr(other, key)
        for key in ("consent_contact", "consent_marketing", "processing_restricted", "do_not_call")
    }
    # One by one, so that each lead's change is audited like any other.
    for lead in await LeadRepository(session).leads_of_contact(other.id):
        lead.contact_id = target.id
    await session.flush()
    await session.delete(other)
    await session.flush()  # the e-mail and phone are free before target takes them
    _fill_blanks(target, person, custom_fields, flags)
    await record(
        session,
        action="contact.merged",
        entity_type="contact",
        entity_id=target.id,
        agency_id=target.agency_id,
        client_id=target.client_id,
    )
    await session.flush()
    return target


async def delete_contact(session: AsyncSession, contact: Contact) -> None:
    """The contact and its leads (their answers are the same person's data) go."""
    await session.delete(contact)
    await session.flush()


# --- the agent's form ----------------------------------------------------------------------


async def form_of(session: AsyncSession, lead: Lead) -> list[QualificationField]:
    """The qualification form the lead's answers follow: the version its conversation ran on,
    else its agent's live version (or draft, before the first publish); none without agent."""
    return await form_for(session, lead.conversation_id, lead.agent_id)


# A published version never changes: its form is kept per process once read.
_version_forms = TTLCache[str, tuple[QualificationField, ...]](ttl_seconds=3600, max_items=2000)


async def form_for(
    session: AsyncSession, conversation_id: str | None, agent_id: str | None
) -> list[QualificationField]:
    if conversation_id is not None:
        conversation = await session.get(Conversation, conversation_id)
        if conversation is not None:
            return await form_of_conversation(session, conversation)
    return await _agent_form(session, agent_id)


async def form_of_conversation(
    session: AsyncSession, conversation: Conversation
) -> list[QualificationField]:
    """The form of the version the conversation runs on (of its agent, if it runs on none)."""
    if conversation.agent_version_id is not None:
        return list(await _version_form(session, conversation.agent_version_id))
    return await _agent_form(session, conversation.agent_id)


async def _agent_form(session: AsyncSession, agent_id: str | None) -> list[QualificationField]:
    source: Agent | AgentVersion | None = None
    if agent_id is not None:
        agent = await session.get(Agent, agent_id)
        if agent is not None and agent.current_version_id is not None:
            source = await session.get(AgentVersion, agent.current_version_id)
        source = source or agent
    return list(agents.definition_of(source).qualification) if source is not None else []


async def _version_form(session: AsyncSession, version_id: str) -> tuple[QualificationField, ...]:
    form = _version_forms.get(version_id)
    if form is None:
        version = await session.get(AgentVersion, version_id)
        form = tuple(agents.definition_of(version).qualification) if version is not None else ()
        if version is not None:
            _version_forms.put(version_id, form)
    return form


def _check_answer(item: QualificationField, value: Any, region: str) -> Any:
    if value is None or item.type == "text":
        return value
    if item.type == "email":
        return normalise_email(value)
    if item.type == "phone":
        return normalise_phone(value, region)
    if item.type == "number":
        if isinstance(value, str):
            try:
                value = float(value.replace(",", "."))
            except ValueError:
                raise ValueError("must be a number") from None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError("must be a number")
        return int(value) if float(value).is_integer() else value
    if item.type == "boolean":
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if item.type == "date":
        try:
            return date.fromisoformat(str(value)).isoformat()
        except ValueError:
            raise ValueError("must be a date (YYYY-MM-DD)") from None
    options = {o.casefold(): o for o in item.options or []}
    if str(value).casefold() not in options:
        raise ValueError(f"must be one of: {', '.join(item.options or [])}")
    return options[str(value).casefold()]


def check_answers(
    form: list[QualificationField], answers: dict[str, Any], region: str
) -> dict[str, Any]:
    """Answers by the form: known keys only, values of the field's type (normalised). Without
    a form, any answers are taken as they are."""
    if not form:
        return dict(answers)
    fields = {f.key: f for f in form}
    checked = {}
    for key, value in answers.items():
        if key not in fields:
            raise ValidationFailed(
                f"answers.{key}", f"the agent's form has no field {key!r}: {', '.join(fields)}"
            )
        checked[key] = _field(f"answers.{key}", _check_answer, fields[key], value, region)
    return checked


def _first(answers: dict[str, Any], keys: list[str] | tuple[str, ...]) -> Any:
    for key in keys:
        if answers.get(key) not in (None, ""):
            return answers[key]
    return None


def _parsed(normalise: Any, value: Any, *args: Any) -> str | None:
    if value is None:
        return None
    try:
        return str(normalise(value, *args))
    except ValueError:
        return None


def person_in_answers(
    form: list[QualificationField], answers: dict[str, Any], region: str
) -> Person:
    """Who the answers name: the form's e-mail and phone fields (or the usual keys), its name
    and company; values that do not parse are left out."""
    typed = {kind: [f.key for f in form if f.type == kind] for kind in ("email", "phone")}
    email = _parsed(normalise_email, _first(answers, [*typed["email"], *EMAIL_KEYS]))
    phone = _parsed(normalise_phone, _first(answers, [*typed["phone"], *PHONE_KEYS]), region)
    name = _first(answers, NAME_KEYS)
    if name is None and (answers.get("first_name") or answers.get("last_name")):
        name = " ".join(str(answers.get(k) or "") for k in ("first_name", "last_name")).strip()
    company = _first(answers, COMPANY_KEYS)
    return Person(
        name=str(name)[:200] if name else None,
        email=email,
        phone=phone,
        company=str(company)[:200] if company else None,
    )


# --- scoring -------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value.replace(",", ".")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _same(answer: Any, value: Any) -> bool:
    if isinstance(answer, bool) or isinstance(value, bool):
        return answer is value or str(answer).casefold() == str(value).casefold()
    left, right = _number(answer), _number(value)
    if left is not None and right is not None:
        return left == right
    return str(answer).strip().casefold() == str(value).strip().casefold()


def rule_matches(rule: dict[str, Any], answers: dict[str, Any]) -> bool:
    answer = answers.get(rule["field"])
    op, value = rule["op"], rule.get("value")
    if answer is None or answer == "":
        return False
    if op == "exists":
        return True
    if op == "equals":
        return _same(answer, value)
    if op == "in":
        return any(_same(answer, v) for v in value or [])
    if op == "contains":
        return str(value).casefold() in str(answer).casefold()
    number = _number(answer)
    if number is None or _number(value) is None:
        return False
    return number >= float(value) if op == "gte" else number <= float(value)


def score(answers: dict[str, Any], rules: list[dict[str, Any]]) -> int:
    return sum(int(rule["points"]) for rule in rules if rule_matches(rule, answers))


# --- lead settings -------------------------------------------------------------------------


async def settings_of(session: AsyncSession, client_id: str) -> LeadSettings:
    """The client's settings; defaults (not stored) when it has none."""
    stored = await LeadRepository(session).settings(client_id)
    if stored is not None:
        return stored
    defaults = s.LeadNotifications()
    return LeadSettings(
        client_id=client_id,
        rules=[],
        qualify_at=s.LeadScoring().qualify_at,
        notify_emails=[],
        notify_on=list(defaults.notify_on),
    )


async def _stored_settings(session: AsyncSession, client: Client) -> LeadSettings:
    stored = await LeadRepository(session).settings(client.id)
    if stored is None:
        stored = await settings_of(session, client.id)
        stored.agency_id = client.agency_id
        session.add(stored)
    return stored


async def put_scoring(session: AsyncSession, client: Client, data: s.LeadScoring) -> LeadSettings:
    stored = await _stored_settings(session, client)
    stored.rules = [rule.model_dump(mode="json") for rule in data.rules]
    stored.qualify_at = data.qualify_at
    await session.flush()
    return stored


async def put_notifications(
    session: AsyncSession, client: Client, data: s.LeadNotifications
) -> LeadSettings:
    stored = await _stored_settings(session, client)
    stored.notify_emails = list(data.notify_emails)
    stored.notify_on = list(data.notify_on)
    await session.flush()
    return stored


# --- leads ---------------------------------------------------------------------------------


async def get_lead(session: AsyncSession, lead_id: str, *, for_update: bool = False) -> Lead:
    lead = await LeadRepository(session).lead(lead_id, for_update=for_update)
    if lead is None:
        raise NotFound("Lead not found.")
    return lead


async def _contact_of_client(session: AsyncSession, contact_id: str, client_id: str) -> Contact:
    contact = await LeadRepository(session).contact(contact_id)
    if contact is None:
        raise NotFound("Contact not found.")
    if contact.client_id != client_id:
        raise ValidationFailed("contact_id", "the contact belongs to another client")
    return contact


async def _check_owner(session: AsyncSession, owner_id: str, lead: Lead) -> None:
    if not await LeadRepository(session).is_team_member(owner_id, lead.agency_id, lead.client_id):
        raise ValidationFailed("owner_id", "must be a user with a role in this client")


async def create_lead(session: AsyncSession, client: Client, data: s.LeadCreate) -> Lead:
    region = client_region(client)
    lead = Lead(
        agency_id=client.agency_id,
        client_id=client.id,
        answers={},
        score=0,
        status=LeadStatus.NEW.value,
        status_reason=data.status_reason,
        tags=list(data.tags),
    )
    if data.agent_id is not None:
        agent = await agents.get_agent(session, data.agent_id)
        if agent.client_id != client.id:
            raise ValidationFailed("agent_id", "the agent belongs to another client")
        lead.agent_id = agent.id
    form = await form_of(session, lead)
    lead.answers = check_answers(form, data.answers, region)
    if data.contact_id is not None:
        lead.contact_id = (await _contact_of_client(session, data.contact_id, client.id)).id
    else:
        person = person_from(data.contact, region, "contact.") if data.contact else None
        if person is None or not person.known():
            person = person_in_answers(form, lead.answers, region)
        if person.email or person.phone or person.name:
            contact, _ = await upsert_contact(
                session, client.agency_id, client.id, person, source="api"
            )
            lead.contact_id = contact.id
    if data.owner_id is not None:
        await _check_owner(session, data.owner_id, lead)
        lead.owner_id = data.owner_id
    requested = None if data.status == "new" else data.status
    await _settle(session, lead, form, requested=requested, created=True)
    return lead


async def update_lead(session: AsyncSession, lead: Lead, data: s.LeadUpdate) -> Lead:
    changes = data.model_dump(exclude_unset=True)
    form = await form_of(session, lead)
    if "contact_id" in changes:
        contact_id = changes["contact_id"]
        lead.contact_id = (
            (await _contact_of_client(session, contact_id, lead.client_id)).id
            if contact_id
            else None
        )
    if "answers" in changes:
        client = await session.get(Client, lead.client_id)
        assert client is not None
        sent = changes["answers"]
        given = {k: v for k, v in sent.items() if v is not None}
        merged = {**lead.answers, **check_answers(form, given, client_region(client))}
        lead.answers = {k: v for k, v in merged.items() if sent.get(k, v) is not None}
    if changes.get("owner_id") is not None:
        await _check_owner(session, changes["owner_id"], lead)
    for key in ("owner_id", "tags", "status_reason"):
        if key in changes:
            setattr(lead, key, changes[key])
    await session.flush()
    await _settle(session, lead, form, requested=changes.get("status"))
    return lead


async def set_status(
    session: AsyncSession, lead: Lead, status: str, reason: str | None = None
) -> Lead:
    """Change the status by hand (a person, or the agent's ``qualify_lead``)."""
    lead.status_reason = reason if reason is not None else lead.status_reason
    await _settle(session, lead, await form_of(session, lead), requested=status)
    return lead


async def _settle(
    session: AsyncSession,
    lead: Lead,
    form: list[QualificationField],
    requested: str | None = None,
    *,
    created: bool = False,
) -> None:
    """Recompute the score; apply a requested status, or qualify a new lead whose required
    answers are in and whose score reaches the threshold. Becoming qualified is an event.
    A lead ``created`` now is added here, after the reads, so that it is written once,
    already settled, and ``lead.created`` comes before ``lead.qualified``."""
    settings = await settings_of(session, lead.client_id)
    lead.score = score(lead.answers, settings.rules)
    before = lead.status
    if requested is not None:
        lead.status = requested
    elif (
        lead.status == LeadStatus.NEW
        and settings.qualify_at is not None
        and lead.score >= settings.qualify_at
        and all(lead.answers.get(f.key) not in (None, "") for f in form if f.required)
    ):
        lead.status = LeadStatus.QUALIFIED.value
        lead.status_reason = lead.status_reason or "score"
    became_qualified = lead.status == LeadStatus.QUALIFIED and before != LeadStatus.QUALIFIED
    if became_qualified:
        lead.qualified_at = utcnow()
    if created:
        # Written by one INSERT, not the unit of work: a conversation's capture makes one.
        lead = await LeadRepository(session).insert(lead)
        await record_change(session, lead, "created")
    else:
        await session.flush()
    reasons = [
        reason
        for reason, happened in (("created", created), ("qualified", became_qualified))
        if happened
    ]
    # Both events of a lead made qualified at once go in one statement.
    events = await emit_many(session, [_event(lead, LEAD_EVENTS[reason]) for reason in reasons])
    await _queue_notifications(session, lead, settings, list(zip(reasons, events, strict=True)))


async def _queue_notifications(
    session: AsyncSession,
    lead: Lead,
    settings: LeadSettings,
    notices: list[tuple[str, DomainEvent]],
) -> None:
    """One e-mail job per event the client's recipients asked for; none when nobody is to be
    told (most clients: a job that finds no recipient would cost a lead four statements and
    two transactions of the worker's for nothing). Recipients added later hear of the leads
    that come after."""
    if not settings.notify_emails:
        return
    jobs = [
        NewJob(
            NOTIFY_TASK,
            {"lead_id": lead.id, "reason": reason},
            agency_id=lead.agency_id,
            client_id=lead.client_id,
            idempotency_key=f"{event.id}:{NOTIFY_TASK}",
        )
        for reason, event in notices
        if reason in settings.notify_on
    ]
    if jobs:
        await enqueue_many(session, jobs)


def _event(lead: Lead, event: str) -> NewEvent:
    # No personal data in events: they are plain rows; subscribers load the lead.
    return NewEvent(
        event,
        agency_id=lead.agency_id,
        client_id=lead.client_id,
        entity_type="lead",
        entity_id=lead.id,
        payload={
            "lead_id": lead.id,
            "contact_id": lead.contact_id,
            "agent_id": lead.agent_id,
            "conversation_id": lead.conversation_id,
            "status": lead.status,
            "score": lead.score,
        },
    )


async def add_note(session: AsyncSession, lead: Lead, author_id: str, body: str) -> LeadNote:
    note = LeadNote(
        agency_id=lead.agency_id,
        client_id=lead.client_id,
        lead_id=lead.id,
        author_id=author_id,
        body=body,
    )
    session.add(note)
    await session.flush()
    return note


async def notes(session: AsyncSession, lead: Lead) -> list[LeadNote]:
    return await LeadRepository(session).notes(lead.id)


async def lead_views(session: AsyncSession, leads: list[Lead]) -> list[s.Lead]:
    contacts = await LeadRepository(session).contacts_by_id(
        {lead.contact_id for lead in leads if lead.contact_id}
    )
    return [
        s.Lead.model_validate(lead).model_copy(
            update={
                "contact": (
                    s.Contact.model_validate(contacts[lead.contact_id])
                    if lead.contact_id in contacts
                    else None
                )
            }
        )
        for lead in leads
    ]


# --- from conversations --------------------------------------------------------------------


@dataclass(frozen=True)
class Captured:
    lead: Lead | None
    created: bool


async def capture(session: AsyncSession, conversation: Conversation, region: str) -> Captured:
    """The conversation's answers so far reach its lead; once the visitor gave an e-mail
    address or phone number, the lead (and its contact) exist. The writes are one savepoint:
    if they fail, nothing of them stays (the caller's answers do)."""
    form = await form_of_conversation(session, conversation)
    lead = await LeadRepository(session).lead_of_conversation(conversation.id)
    answers = dict(conversation.lead_fields or {})
    person = person_in_answers(form, answers, region)
    if lead is None and not (person.email or person.phone):
        return Captured(lead=None, created=False)
    async with session.begin_nested():
        return await _write_capture(session, conversation, form, lead, answers, person)


async def _write_capture(
    session: AsyncSession,
    conversation: Conversation,
    form: list[QualificationField],
    lead: Lead | None,
    answers: dict[str, Any],
    person: Person,
) -> Captured:
    source = "phone" if conversation.channel == "phone" else "chat"
    contact_id = lead.contact_id if lead is not None else None
    if person.email or person.phone:
        contact, _ = await upsert_contact(
            session, conversation.agency_id, conversation.client_id, person, source=source
        )
        contact_id = contact_id or contact.id
    created = lead is None
    if lead is None:
        lead = await _lead_for(session, conversation)
    lead.answers = answers
    lead.contact_id = contact_id
    await _settle(session, lead, form, created=created)
    return Captured(lead=lead, created=created)


async def _lead_for(session: AsyncSession, conversation: Conversation) -> Lead:
    return Lead(
        agency_id=conversation.agency_id,
        client_id=conversation.client_id,
        agent_id=conversation.agent_id,
        conversation_id=conversation.id,
        answers={},
        score=0,
        status=LeadStatus.NEW.value,
        tags=[],
    )


async def qualify_from_conversation(
    session: AsyncSession, conversation: Conversation, status: str, reason: str
) -> Lead:
    """The agent's verdict on the conversation's lead (made now if there is none yet)."""
    lead = await LeadRepository(session).lead_of_conversation(conversation.id)
    if lead is not None:
        return await set_status(session, lead, status, reason[:200])
    lead = await _lead_for(session, conversation)
    lead.answers = dict(conversation.lead_fields or {})
    lead.status_reason = reason[:200]
    await _settle(session, lead, await form_of(session, lead), requested=status, created=True)
    return lead
