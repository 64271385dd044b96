"""Leads out of conversations, through the public chat API: a German visitor who gives name,
e-mail and phone becomes one contact and one lead, and the client's inbox gets the lead in the
agency's brand; an LLM agent's qualify_lead sets the verdict."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, select, text

from demandly.conversations.models import Conversation
from demandly.jobs.models import DomainEvent, Job
from demandly.jobs.service import enqueue
from demandly.jobs.worker import Worker
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.leads.models import Contact, Lead
from demandly.tenancy.models import Agency
from tests.conversations.conftest import API, publish_agent, replies, say, start
from tests.conversations.test_llm_turns import llm_agent
from tests.engine.openai_stub import OpenAIStub, StubToolCall
from tests.factories import Tenant, unique
from tests.integrations.smtp import SMTP_FROM, SmtpServer

FORM = [
    {"key": "name", "label": {"de": "Name", "en": "Name"}, "type": "text"},
    {"key": "email", "label": {"de": "E-Mail", "en": "E-mail"}, "type": "email"},
    {"key": "phone", "label": {"de": "Telefonnummer", "en": "Phone"}, "type": "phone"},
]


async def _brand(db: Database, tenant: Tenant) -> None:
    async with db.session(Scope.for_system()) as session:
        agency = await session.get(Agency, tenant.agency.id)
        assert agency is not None
        agency.branding = {
            "display_name": "Nordlicht Digital",
            "sender_name": "Nordlicht Leads",
            "primary_color": "#0f4c81",
        }
        await session.commit()


async def _notify(client: httpx.AsyncClient, tenant: Tenant, *addresses: str) -> None:
    response = await client.put(
        f"{API}/clients/{tenant.clients[0].id}/lead-notifications",
        json={"notify_emails": list(addresses), "notify_on": ["created", "qualified"]},
        headers=tenant.headers("client_admin"),
    )
    assert response.status_code == 200, response.text


async def _leads_of(db: Database, conversation_id: str) -> list[Lead]:
    async with db.session(Scope.for_system()) as session:
        rows = await session.execute(select(Lead).where(Lead.conversation_id == conversation_id))
        return list(rows.scalars())


async def _contacts_of(db: Database, client_id: str) -> list[Contact]:
    async with db.session(Scope.for_system()) as session:
        rows = await session.execute(select(Contact).where(Contact.client_id == client_id))
        return list(rows.scalars())


async def _lead_told(
    client: httpx.AsyncClient, visitor: httpx.AsyncClient, db: Database, tenant: Tenant, text: str
) -> Lead:
    """A visitor tells an agent with the form ``text`` in one message: the lead made of it."""
    agent = await publish_agent(client, tenant, qualification=FORM)
    started = await start(visitor, agent.public_key)
    await say(visitor, started, text)
    [lead] = await _leads_of(db, started["conversation_id"])
    return lead


async def test_a_german_conversation_becomes_a_contact_a_lead_and_an_email(
    client: httpx.AsyncClient,
    visitor: httpx.AsyncClient,
    db: Database,
    tenant: Tenant,
    use_smtp: SmtpServer,
) -> None:
    await _brand(db, tenant)
    inbox = f"{unique('praxis')}@example.de"
    await _notify(client, tenant, inbox)
    agent = await publish_agent(client, tenant, qualification=FORM)
    started = await start(visitor, agent.public_key)

    await say(visitor, started, "Hallo, ich hätte gern einen Termin zur Zahnreinigung.")
    await say(visitor, started, "Ich heiße Maria Sommer")
    await say(visitor, started, "maria.sommer@example.de")
    answer = await say(visitor, started, "030 1234567")
    assert replies(answer)

    conversation_id = started["conversation_id"]
    [lead] = await _leads_of(db, conversation_id)
    assert lead.answers == {
        "name": "Maria Sommer",
        "email": "maria.sommer@example.de",
        "phone": "+49301234567",
    }
    assert lead.status == "qualified" and lead.agent_id == agent.id
    [contact] = await _contacts_of(db, tenant.clients[0].id)
    assert (contact.name, contact.email, contact.phone, contact.source) == (
        "Maria Sommer",
        "maria.sommer@example.de",
        "+49301234567",
        "chat",
    )
    assert lead.contact_id == contact.id

    # The same visitor again, in a new conversation: a second lead, the same contact.
    again = await start(visitor, agent.public_key)
    await say(visitor, again, "Maria Sommer, maria.sommer@example.de, 030 1234567")
    assert len(await _contacts_of(db, tenant.clients[0].id)) == 1
    [second] = await _leads_of(db, again["conversation_id"])
    assert second.contact_id == contact.id and second.id != lead.id

    await Worker(db).run_until_idle()
    mails = use_smtp.to(inbox)
    subjects = sorted(str(m["Subject"]) for m in mails)
    assert subjects == [
        "Neue Anfrage: Maria Sommer",
        "Neue Anfrage: Maria Sommer",
        "Qualifizierte Anfrage: Maria Sommer",
        "Qualifizierte Anfrage: Maria Sommer",
    ]
    mail = next(m for m in mails if m["Subject"] == "Neue Anfrage: Maria Sommer")
    assert mail["From"].addresses[0].display_name == "Nordlicht Leads"
    assert mail["From"].addresses[0].addr_spec == SMTP_FROM
    assert str(mail["Reply-To"]) == "maria.sommer@example.de"
    text = mail.get_body(("plain",)).get_content()
    assert "Telefon: +49301234567" in text and "E-Mail: maria.sommer@example.de" in text
    links = {f"/app/conversations/{c}" for c in (conversation_id, again["conversation_id"])}
    assert any(link in text for link in links)
    html = mail.get_body(("html",)).get_content()
    assert "#0f4c81" in html and "Nordlicht Digital" in html and "Maria Sommer" in html
    assert "Demandly" not in html and "Demandly" not in text


async def test_no_recipients_no_email_and_restricted_contacts_are_not_forwarded(
    client: httpx.AsyncClient,
    visitor: httpx.AsyncClient,
    db: Database,
    tenant: Tenant,
    use_smtp: SmtpServer,
) -> None:
    lead = await _lead_told(
        client, visitor, db, tenant, "Max Muster, max.muster@example.de, 030 7654321"
    )
    await Worker(db).run_until_idle()
    assert use_smtp.to("max.muster@example.de") == []

    inbox = f"{unique('restricted')}@example.de"
    await _notify(client, tenant, inbox)
    contact = await client.get(f"{API}/leads/{lead.id}", headers=tenant.headers("client_admin"))
    contact_id = contact.json()["contact_id"]
    await client.patch(
        f"{API}/contacts/{contact_id}",
        json={"processing_restricted": True},
        headers=tenant.headers("client_admin"),
    )
    fresh = await client.post(
        f"{API}/leads",
        json={"client_id": tenant.clients[0].id, "contact_id": contact_id},
        headers=tenant.headers("client_admin"),
    )
    assert fresh.status_code == 201
    await Worker(db).run_until_idle()
    assert use_smtp.to(inbox) == []


async def _notification_jobs(db: Database, client_id: str) -> list[Job]:
    async with db.session(Scope.for_system()) as session:
        rows = await session.execute(
            select(Job).where(Job.name.startswith("leads.notify"), Job.client_id == client_id)
        )
        return list(rows.scalars())


async def test_only_the_leads_asked_for_are_mailed_and_nothing_is_queued_for_nobody(
    client: httpx.AsyncClient,
    visitor: httpx.AsyncClient,
    db: Database,
    tenant: Tenant,
    use_smtp: SmtpServer,
) -> None:
    lead = await _lead_told(
        client, visitor, db, tenant, "Eva Stein, eva.stein@example.de, 030 1112223"
    )
    assert lead.status == "qualified"
    assert await _notification_jobs(db, lead.client_id) == []

    inbox = f"{unique('qualified-only')}@example.de"
    response = await client.put(
        f"{API}/clients/{tenant.clients[0].id}/lead-notifications",
        json={"notify_emails": [inbox], "notify_on": ["qualified"]},
        headers=tenant.headers("client_admin"),
    )
    assert response.status_code == 200, response.text
    told = await _lead_told(
        client, visitor, db, tenant, "Jan Holm, jan.holm@example.de, 030 4445556"
    )
    await Worker(db).run_until_idle()
    assert [str(m["Subject"]) for m in use_smtp.to(inbox)] == ["Qualifizierte Anfrage: Jan Holm"]
    [job] = await _notification_jobs(db, told.client_id)
    assert job.payload == {"lead_id": told.id, "reason": "qualified"}


async def test_a_notification_queued_by_an_earlier_version_is_still_sent(
    client: httpx.AsyncClient,
    visitor: httpx.AsyncClient,
    db: Database,
    tenant: Tenant,
    use_smtp: SmtpServer,
) -> None:
    """Jobs queued per lead event before the service queued notifications itself."""
    lead = await _lead_told(
        client, visitor, db, tenant, "Ida Kern, ida.kern@example.de, 030 7778889"
    )
    await _notify(client, tenant, inbox := f"{unique('legacy')}@example.de")
    async with db.session(Scope.for_system()) as session:
        event = (
            await session.execute(
                select(DomainEvent).where(
                    DomainEvent.entity_id == lead.id, DomainEvent.type == "lead.created"
                )
            )
        ).scalar_one()
        await enqueue(
            session,
            "leads.notify_created",
            {"event_id": event.id, "event_type": event.type},
            agency_id=lead.agency_id,
            client_id=lead.client_id,
        )
        await session.commit()
    await Worker(db).run_until_idle()
    assert [str(m["Subject"]) for m in use_smtp.to(inbox)] == ["Neue Anfrage: Ida Kern"]


def _as_owner(database_url: str) -> Engine:
    """The database as its owner (the app's role may not create triggers)."""
    sync = database_url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg2")
    return create_engine(sync, isolation_level="AUTOCOMMIT")


def _refuse_leads_of(database_url: str, client_id: str) -> None:
    """The database itself refuses new leads of the client (a real failure mid-capture)."""
    owner = _as_owner(database_url)
    with owner.connect() as connection:
        if owner.dialect.name == "sqlite":
            connection.execute(
                text(
                    f"CREATE TRIGGER refuse_leads BEFORE INSERT ON leads "
                    f"WHEN NEW.client_id = '{client_id}' "
                    f"BEGIN SELECT RAISE(ABORT, 'leads refused'); END"
                )
            )
        else:
            connection.execute(
                text(
                    "CREATE FUNCTION refuse_lead() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'leads refused'; END $$"
                )
            )
            connection.execute(
                text(
                    f"CREATE TRIGGER refuse_leads BEFORE INSERT ON leads FOR EACH ROW "
                    f"WHEN (NEW.client_id = '{client_id}') EXECUTE FUNCTION refuse_lead()"
                )
            )
    owner.dispose()


def _accept_leads_again(database_url: str) -> None:
    owner = _as_owner(database_url)
    with owner.connect() as connection:
        if owner.dialect.name == "sqlite":
            connection.execute(text("DROP TRIGGER refuse_leads"))
        else:
            connection.execute(text("DROP TRIGGER refuse_leads ON leads"))
            connection.execute(text("DROP FUNCTION refuse_lead()"))
    owner.dispose()


async def test_a_captured_lead_and_its_contact_are_on_the_audit_trail(
    client: httpx.AsyncClient, visitor: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    agent = await publish_agent(client, tenant, qualification=FORM)
    started = await start(visitor, agent.public_key)
    await say(visitor, started, "Ich heiße Jana Kraus")
    await say(visitor, started, "jana.kraus@example.de")
    await say(visitor, started, "030 7778889")
    [lead] = await _leads_of(db, started["conversation_id"])
    [contact] = await _contacts_of(db, tenant.clients[0].id)

    async def trail(entity_id: str) -> list[dict[str, Any]]:
        response = await client.get(
            f"{API}/audit-events",
            params={"agency_id": tenant.agency.id, "entity_id": entity_id},
            headers=tenant.headers("agency_owner"),
        )
        assert response.status_code == 200, response.text
        return list(reversed(response.json()["items"]))  # oldest first

    created, *updates = await trail(lead.id)
    assert (created["action"], created["entity_type"]) == ("lead.created", "lead")
    assert created["client_id"] == tenant.clients[0].id
    assert created["actor"]["kind"] == "visitor"
    # The phone number came later: the lead's answers changed, and it became qualified.
    assert {(event["action"], event["actor"]["kind"]) for event in updates} == {
        ("lead.updated", "visitor")
    }
    changed = {field for event in updates for field in event["changed_fields"]}
    assert {"answers", "status", "qualified_at"} <= changed
    contact_events = [event["action"] for event in await trail(contact.id)]
    assert contact_events == ["contact.created", "contact.updated"]
    # The answers are the conversation's too, and answering counts as progress.
    async with db.session(Scope.for_system()) as session:
        conversation = await session.get(Conversation, started["conversation_id"])
        assert conversation is not None
        assert conversation.lead_fields == lead.answers
        assert conversation.turns_without_progress == 0


async def test_when_the_lead_cannot_be_written_the_answers_stay_and_the_next_one_makes_it(
    client: httpx.AsyncClient,
    visitor: httpx.AsyncClient,
    db: Database,
    tenant: Tenant,
    database_url: str,
) -> None:
    agent = await publish_agent(client, tenant, qualification=FORM)
    started = await start(visitor, agent.public_key)
    await say(visitor, started, "Ich heiße Paul Weber")
    _refuse_leads_of(database_url, tenant.clients[0].id)
    try:
        answer = await say(visitor, started, "paul.weber@example.de")
    finally:
        _accept_leads_again(database_url)
    assert replies(answer)  # the visitor's turn went on
    assert await _leads_of(db, started["conversation_id"]) == []
    assert await _contacts_of(db, tenant.clients[0].id) == []  # nothing of the capture stayed
    async with db.session(Scope.for_system()) as session:
        conversation = await session.get(Conversation, started["conversation_id"])
        assert conversation is not None
        assert conversation.lead_fields == {"name": "Paul Weber", "email": "paul.weber@example.de"}

    await say(visitor, started, "030 5556667")
    [lead] = await _leads_of(db, started["conversation_id"])
    assert lead.answers == {
        "name": "Paul Weber",
        "email": "paul.weber@example.de",
        "phone": "+49305556667",
    }
    [contact] = await _contacts_of(db, tenant.clients[0].id)
    assert lead.contact_id == contact.id and contact.email == "paul.weber@example.de"


async def test_an_llm_agent_qualifies_or_disqualifies_the_lead(
    client: httpx.AsyncClient,
    visitor: httpx.AsyncClient,
    db: Database,
    tenant: Tenant,
    openai_stub: OpenAIStub,
) -> None:
    agent = await llm_agent(client, tenant, openai_stub)
    owner = tenant.headers("agency_owner")
    tools = ["save_lead_details", "qualify_lead", "request_handoff", "end_conversation"]
    await client.patch(f"{API}/agents/{agent.id}", json={"tools": tools}, headers=owner)
    await client.post(f"{API}/agents/{agent.id}/publish", headers=owner)
    started = await start(visitor, agent.public_key)

    openai_stub.script_tool_calls(
        StubToolCall(
            "save_lead_details",
            ('{"fields": {"name": "Anna Berg", "email": "anna.berg@example.com"}}',),
            id="c1",
        ),
        StubToolCall(
            "qualify_lead", ('{"status": "disqualified", "reason": "sucht nur Jobs"}',), id="c2"
        ),
    )
    openai_stub.script_text("Danke, Frau Berg!")
    await say(visitor, started, "Anna Berg, anna.berg@example.com, ich suche einen Job")

    [lead] = await _leads_of(db, started["conversation_id"])
    assert (lead.status, lead.status_reason) == ("disqualified", "sucht nur Jobs")
    assert lead.answers == {"name": "Anna Berg", "email": "anna.berg@example.com"}
    results: list[dict[str, Any]] = [
        m for m in openai_stub.requests[-1].body["messages"] if m["role"] == "tool"
    ]
    assert '"status":"disqualified"' in results[-1]["content"].replace(" ", "")
