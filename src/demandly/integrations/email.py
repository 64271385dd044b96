"""Outgoing e-mail: the one branded layout, the outbox job and the SMTP delivery.

Every domain sends through ``queue_email``: the message becomes an ``email.send`` job in the
caller's transaction, so it goes out if and only if the change that caused it commits. The job
payload holds personal data (addresses, names, answers), so it is sealed with the keyring; only
the task opens it. Mail goes out in the agency's name (white label), never the platform's.

Delivery: ``DEMANDLY_SMTP_URL`` (``smtp://user:pass@host:port``, ``smtps://`` for implicit TLS,
``?starttls=true`` to upgrade a plain connection). Without it, messages are written as ``.eml``
files to ``{data_dir}/outbox/`` so a demo works without a mail server. A failed delivery raises,
and the job system retries it with backoff.
"""

from __future__ import annotations

import asyncio
import base64
import html
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.config import Settings
from demandly.jobs.models import Job
from demandly.jobs.service import enqueue
from demandly.kit.crypto import get_keyring
from demandly.kit.ids import ulid
from demandly.kit.logging import get_logger
from demandly.kit.time import utcnow
from demandly.tenancy.branding import DEFAULT_PRIMARY, brand_of, color_or, contrast_color
from demandly.tenancy.branding import Brand as AgencyBrand
from demandly.tenancy.repository import TenancyRepository

log = get_logger(__name__)

SEND_TASK = "email.send"
OUTBOX_FOLDER = "outbox"
DEFAULT_COLOR = DEFAULT_PRIMARY
SMTP_TIMEOUT_SECONDS = 30.0
# Binds the sealed payload to its purpose: a token sealed for something else will not open.
_PAYLOAD_AAD = b"demandly/email.send/v1"
_LINE_BREAKS = re.compile(r"[\r\n\t\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    content_type: str  # e.g. 'text/calendar; method=REQUEST; charset=utf-8'


@dataclass(frozen=True)
class OutgoingEmail:
    to: str
    subject: str
    text: str
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    reply_to: str | None = None


@dataclass(frozen=True)
class Brand:
    """The agency's white-label identity, never "Demandly"."""

    name: str
    primary_color: str
    logo_url: str | None
    # The From display name of its e-mails (the agency's sender name, else its name).
    sender_name: str = field(default="", compare=False)

    @property
    def from_name(self) -> str:
        """The From display name: the sender name when set, else the agency's name."""
        return self.sender_name or self.name


# --- brand and layout ----------------------------------------------------------------------


def email_brand(brand: AgencyBrand) -> Brand:
    """An agency's brand as e-mails need it."""
    return Brand(
        name=brand.name,
        primary_color=brand.primary,
        logo_url=brand.logo_url,
        sender_name=brand.sender_name,
    )


async def brand_for(session: AsyncSession, agency_id: str) -> Brand:
    """The agency's brand (``tenancy.branding``: the same the dashboard and booking pages
    show), looked up once per message batch and handed to ``queue_email``."""
    agency = await TenancyRepository(session).agency(agency_id)
    if agency is None:
        raise LookupError(f"agency {agency_id} not found in this scope")
    return email_brand(brand_of(agency))


def branded_html(brand: Brand, title: str, body_html: str) -> str:
    """The one e-mail layout: the agency's logo or name on its colour, the title, the body.
    ``body_html`` is trusted markup built by the caller (who escapes what users typed);
    everything taken from the brand and the title is escaped here."""
    name = html.escape(brand.name)
    color = color_or(brand.primary_color, DEFAULT_COLOR)
    if brand.logo_url:
        header = (
            f'<img src="{html.escape(brand.logo_url, quote=True)}" alt="{name}" '
            'style="max-height:40px;max-width:200px;border:0;display:block">'
        )
    else:
        header = (
            '<span style="font-size:20px;font-weight:bold;'
            f'color:{contrast_color(color)}">{name}</span>'
        )
    return (
        "<!DOCTYPE html>\n"
        '<html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head>"
        '<body style="margin:0;padding:0;background:#f4f5f7;'
        'font-family:Helvetica,Arial,sans-serif;color:#1f2937">'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" '
        'style="background:#f4f5f7"><tr><td align="center" style="padding:24px 12px">'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" '
        'style="max-width:600px;background:#ffffff;border-radius:6px;overflow:hidden">'
        f'<tr><td style="background:{color};padding:16px 24px">{header}</td></tr>'
        f'<tr><td style="padding:24px"><h1 style="font-size:20px;margin:0 0 16px">'
        f"{html.escape(title)}</h1>{body_html}</td></tr>"
        '<tr><td style="padding:16px 24px;font-size:12px;color:#6b7280;'
        f'border-top:1px solid #e5e7eb">{name}</td></tr>'
        "</table></td></tr></table></body></html>"
    )


# --- the outbox ----------------------------------------------------------------------------


def _seal(email: OutgoingEmail, sender_name: str) -> dict[str, Any]:
    plain = {
        "to": email.to,
        "subject": email.subject,
        "text": email.text,
        "html": email.html,
        "reply_to": email.reply_to,
        "sender_name": sender_name,
        "attachments": [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "content": base64.b64encode(a.content).decode("ascii"),
            }
            for a in email.attachments
        ],
    }
    return {"sealed": get_keyring().encrypt(json.dumps(plain), _PAYLOAD_AAD)}


def open_payload(payload: dict[str, Any]) -> tuple[OutgoingEmail, str]:
    """The e-mail and sender name sealed into an ``email.send`` job."""
    plain = json.loads(get_keyring().decrypt(payload["sealed"], _PAYLOAD_AAD))
    email = OutgoingEmail(
        to=plain["to"],
        subject=plain["subject"],
        text=plain["text"],
        html=plain["html"],
        reply_to=plain["reply_to"],
        attachments=tuple(
            Attachment(
                filename=a["filename"],
                content_type=a["content_type"],
                content=base64.b64decode(a["content"]),
            )
            for a in plain["attachments"]
        ),
    )
    return email, plain["sender_name"]


async def queue_email(
    session: AsyncSession,
    email: OutgoingEmail,
    *,
    brand: Brand,
    agency_id: str,
    client_id: str | None,
    idempotency_key: str | None = None,
    run_at: datetime | None = None,
) -> Job:
    """Queue ``email`` in the caller's transaction, from the brand's sender name (the caller
    has the brand already: it rendered the message with it)."""
    return await enqueue(
        session,
        SEND_TASK,
        _seal(email, brand.from_name),
        agency_id=agency_id,
        client_id=client_id,
        idempotency_key=idempotency_key,
        run_at=run_at,
    )


# --- delivery ------------------------------------------------------------------------------


def _one_line(value: str) -> str:
    # Header values: a line break would end the header (header injection).
    return _LINE_BREAKS.sub(" ", value).strip()


def _add_attachment(message: EmailMessage, attachment: Attachment) -> None:
    kind, *raw_params = (p.strip() for p in attachment.content_type.split(";"))
    maintype, _, subtype = kind.partition("/")
    params = {}
    for raw in raw_params:
        key, _, value = raw.partition("=")
        if key and value:
            params[key.strip().lower()] = value.strip().strip('"')
    message.add_attachment(
        attachment.content,
        maintype=maintype or "application",
        subtype=subtype or "octet-stream",
        filename=_one_line(attachment.filename),
        params=params,
    )


def build_message(settings: Settings, email: OutgoingEmail, sender_name: str) -> EmailMessage:
    message = EmailMessage()
    username, _, domain = settings.smtp_from.rpartition("@")
    message["From"] = Address(display_name=_one_line(sender_name), username=username, domain=domain)
    message["To"] = _one_line(email.to)
    if email.reply_to:
        message["Reply-To"] = _one_line(email.reply_to)
    message["Subject"] = _one_line(email.subject)
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain=domain or None)
    message.set_content(email.text)
    if email.html:
        message.add_alternative(email.html, subtype="html")
    for attachment in email.attachments:
        _add_attachment(message, attachment)
    return message


@dataclass(frozen=True)
class SmtpTarget:
    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool


def parse_smtp_url(url: str) -> SmtpTarget:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("DEMANDLY_SMTP_URL must look like smtp://user:pass@host:port")
    query = parse_qs(parts.query)
    start_tls = query.get("starttls", ["false"])[0].lower() in ("1", "true", "yes")
    return SmtpTarget(
        hostname=parts.hostname,
        port=parts.port or (465 if scheme == "smtps" else 587 if start_tls else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_tls=scheme == "smtps",
        start_tls=start_tls and scheme == "smtp",
    )


def _write_to_outbox(settings: Settings, message: EmailMessage) -> Path:
    folder = settings.data_dir / OUTBOX_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{utcnow():%Y%m%dT%H%M%S}-{ulid()}.eml"
    path.write_bytes(message.as_bytes())
    return path


async def send_now(settings: Settings, email: OutgoingEmail, sender_name: str) -> None:
    """Deliver over SMTP, or write an .eml file when no SMTP server is configured. Raises when
    the server refuses or cannot be reached (the job retries)."""
    message = build_message(settings, email, sender_name)
    if not settings.smtp_url:
        path = await asyncio.to_thread(_write_to_outbox, settings, message)
        log.info("email_written_to_outbox", file=path.name, folder=str(path.parent))
        return
    target = parse_smtp_url(settings.smtp_url)
    await aiosmtplib.send(
        message,
        hostname=target.hostname,
        port=target.port,
        username=target.username,
        password=target.password,
        use_tls=target.use_tls,
        start_tls=target.start_tls,
        timeout=SMTP_TIMEOUT_SECONDS,
    )
    log.info("email_sent", message_id=message["Message-ID"])
