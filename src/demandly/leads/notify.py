"""The e-mail that tells a client about a new or qualified lead, in the agency's brand: who
it is, the answers by the form's labels, the score, and links to the lead and transcript."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from demandly.agents.schemas import QualificationField
from demandly.integrations.email import (
    Brand,
    OutgoingEmail,
    brand_for,
    branded_html,
    queue_email,
)
from demandly.kit.crypto import hash_token
from demandly.leads import service
from demandly.leads.models import Contact, Lead
from demandly.leads.repository import LeadRepository
from demandly.tenancy.models import Client

CONTACT_DETAILS = ("name", "email", "phone", "company")
TEXTS = {
    "de": {
        "created": "Neue Anfrage",
        "qualified": "Qualifizierte Anfrage",
        "intro": "Für {client} ist eine Anfrage eingegangen.",
        "unnamed": "ohne Namen",
        "name": "Name",
        "email": "E-Mail",
        "phone": "Telefon",
        "company": "Firma",
        "score": "Punkte",
        "status": "Status",
        "lead": "Anfrage öffnen",
        "transcript": "Gesprächsverlauf ansehen",
        "yes": "ja",
        "no": "nein",
    },
    "en": {
        "created": "New lead",
        "qualified": "Qualified lead",
        "intro": "A new enquiry came in for {client}.",
        "unnamed": "unnamed",
        "name": "Name",
        "email": "E-mail",
        "phone": "Phone",
        "company": "Company",
        "score": "Score",
        "status": "Status",
        "lead": "Open the lead",
        "transcript": "Read the conversation",
        "yes": "yes",
        "no": "no",
    },
}


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def _label(field: QualificationField, language: str) -> str:
    other = "en" if language == "de" else "de"
    return getattr(field.label, language) or getattr(field.label, other) or field.key


def _value(value: Any, t: dict[str, str]) -> str:
    if isinstance(value, bool):
        return t["yes"] if value else t["no"]
    return str(value)


def _rows(
    lead: Lead, contact: Contact | None, form: list[QualificationField], language: str
) -> list[tuple[str, str]]:
    """The contact's details, then each answer not already shown, by the form's labels."""
    t = TEXTS[language]
    rows: list[tuple[str, str]] = []
    shown: set[str] = set()
    for key in CONTACT_DETAILS if contact is not None else ():
        value = getattr(contact, key)
        if value:
            rows.append((t[key], value))
            shown.add(value.casefold())
    labels = {f.key: _label(f, language) for f in form}
    for key, value in lead.answers.items():
        if value is None or value == "" or str(value).casefold() in shown:
            continue
        rows.append((labels.get(key, key), _value(value, t)))
    rows.append((t["score"], str(lead.score)))
    rows.append((t["status"], lead.status))
    return rows


def render(
    lead: Lead,
    contact: Contact | None,
    client: Client,
    form: list[QualificationField],
    reason: str,
    base_url: str,
    brand: Brand,
) -> Rendered:
    lang = client.locale if client.locale in TEXTS else "en"
    t = TEXTS[lang]
    who = (contact.name if contact and contact.name else None) or t["unnamed"]
    subject = f"{t[reason]}: {who}"
    rows = _rows(lead, contact, form, lang)
    base = base_url.rstrip("/")
    links = [(t["lead"], f"{base}/app/leads/{lead.id}")]
    if lead.conversation_id:
        links.append((t["transcript"], f"{base}/app/conversations/{lead.conversation_id}"))
    intro = t["intro"].format(client=client.name)
    text = "\n".join(
        [intro, "", *(f"{k}: {v}" for k, v in rows), "", *(f"{k}: {u}" for k, u in links)]
    )
    cells = "".join(
        f'<tr><td style="padding:4px 12px 4px 0;color:#6b7280;vertical-align:top">'
        f'{html.escape(k)}</td><td style="padding:4px 0">{html.escape(v)}</td></tr>'
        for k, v in rows
    )
    buttons = "".join(
        f'<p style="margin:8px 0"><a href="{html.escape(u, quote=True)}" '
        f'style="color:{brand.primary_color}">{html.escape(k)}</a></p>'
        for k, u in links
    )
    body = (
        f"<p>{html.escape(intro)}</p>"
        f'<table role="presentation" cellpadding="0" cellspacing="0">{cells}</table>{buttons}'
    )
    return Rendered(subject=subject, text=text, html=branded_html(brand, subject, body))


async def notify(session: AsyncSession, lead_id: str, reason: str, base_url: str) -> int:
    """Queue the e-mails about ``lead_id`` (``reason``: created or qualified) to the client's
    recipients; returns how many. Nothing for a lead gone meanwhile or a contact whose
    processing is restricted."""
    repo = LeadRepository(session)
    lead = await repo.lead(lead_id)
    if lead is None:
        return 0
    settings = await service.settings_of(session, lead.client_id)
    if reason not in settings.notify_on or not settings.notify_emails:
        return 0
    contact = await repo.contact(lead.contact_id) if lead.contact_id else None
    if contact is not None and contact.processing_restricted:
        return 0
    client = await session.get(Client, lead.client_id)
    if client is None:
        return 0
    form = await service.form_of(session, lead)
    brand = await brand_for(session, lead.agency_id)
    rendered = render(lead, contact, client, form, reason, base_url, brand)
    for address in settings.notify_emails:
        email = OutgoingEmail(
            to=address,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            reply_to=contact.email if contact else None,
        )
        await queue_email(
            session,
            email,
            brand=brand,
            agency_id=lead.agency_id,
            client_id=lead.client_id,
            idempotency_key=f"lead.{reason}:{lead.id}:{hash_token(address)[:16]}",
        )
    return len(settings.notify_emails)
