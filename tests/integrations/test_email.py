"""E-mail goes out in the agency's name, through the outbox, to a real SMTP server; without
one it lands as an .eml file; a refusing server means a retry, not a lost message."""

from __future__ import annotations

from pathlib import Path

import pytest

from demandly.config import Settings
from demandly.integrations.email import (
    Attachment,
    Brand,
    OutgoingEmail,
    brand_for,
    branded_html,
    parse_smtp_url,
    queue_email,
    send_now,
)
from demandly.jobs.models import Job
from demandly.jobs.worker import Worker
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.tenancy.models import Agency
from tests.factories import make_agency, unique
from tests.integrations.smtp import (
    SMTP_FROM,
    SMTP_USER,
    SmtpServer,
    environment,
    outbox_messages,
)
from tests.jobs.helpers import Clock, load_job

INVITE = b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n"


async def _branded_agency(db: Database) -> Agency:
    tenant = await make_agency(db, name=unique("Nordlicht"), clients=1)
    async with db.session(Scope.for_system()) as session:
        agency = await session.get(Agency, tenant.agency.id)
        assert agency is not None
        agency.branding = {
            "display_name": "Nordlicht Digital",
            "sender_name": "Nordlicht Leads",
            "primary_color": "#0f4c81",
            "logo_url": "https://nordlicht.example/logo.png",
        }
        await session.commit()
    return agency


def _email(to: str, **overrides: object) -> OutgoingEmail:
    values: dict[str, object] = {
        "to": to,
        "subject": "Neue Anfrage",
        "text": "Max Mustermann möchte einen Termin.",
        "html": "<p>Max Mustermann möchte einen Termin.</p>",
        "attachments": (
            Attachment("termin.ics", INVITE, "text/calendar; method=REQUEST; charset=utf-8"),
        ),
        "reply_to": "max@example.de",
    }
    values.update(overrides)
    return OutgoingEmail(**values)  # type: ignore[arg-type]


async def _queue(db: Database, agency: Agency, email: OutgoingEmail, commit: bool = True) -> Job:
    async with db.session(Scope.for_agency(agency.id)) as session:
        brand = await brand_for(session, agency.id)
        job = await queue_email(session, email, brand=brand, agency_id=agency.id, client_id=None)
        if commit:
            await session.commit()
        else:
            await session.rollback()
    return job


async def test_a_queued_email_arrives_in_the_agencys_name_with_html_and_invite(
    db: Database, use_smtp: SmtpServer
) -> None:
    agency = await _branded_agency(db)
    to = f"{unique('praxis')}@example.de"
    job = await _queue(db, agency, _email(to))

    # Personal data never sits in the queue in the clear.
    stored = await load_job(db, job.id)
    assert stored.name == "email.send"
    assert to not in str(stored.payload) and "Mustermann" not in str(stored.payload)

    await Worker(db).run_until_idle()
    assert (await load_job(db, job.id)).status == "succeeded"
    [message] = use_smtp.to(to)
    assert message["From"].addresses[0].display_name == "Nordlicht Leads"
    assert message["From"].addresses[0].addr_spec == SMTP_FROM
    assert str(message["Subject"]) == "Neue Anfrage"
    assert str(message["Reply-To"]) == "max@example.de"
    assert message.get_body(("plain",)).get_content().strip() == (
        "Max Mustermann möchte einen Termin."
    )
    assert "<p>Max Mustermann" in message.get_body(("html",)).get_content()
    [invite] = list(message.iter_attachments())
    assert invite.get_content_type() == "text/calendar"
    assert invite.get_param("method") == "REQUEST"
    assert invite.get_filename() == "termin.ics"
    assert invite.get_content().encode() == INVITE


async def test_an_email_queued_in_a_rolled_back_transaction_is_never_sent(
    db: Database, use_smtp: SmtpServer
) -> None:
    agency = await _branded_agency(db)
    to = f"{unique('nobody')}@example.de"
    await _queue(db, agency, _email(to), commit=False)
    await Worker(db).run_until_idle()
    assert use_smtp.to(to) == []


async def test_a_refusing_server_means_a_retry_and_then_delivery(
    db: Database, use_smtp: SmtpServer
) -> None:
    agency = await _branded_agency(db)
    to = f"{unique('retry')}@example.de"
    job = await _queue(db, agency, _email(to))
    use_smtp.refuse_next(1)
    clock = Clock()
    worker = Worker(db, clock=clock)

    await worker.run_until_idle()
    failed = await load_job(db, job.id)
    assert (failed.status, failed.attempts) == ("queued", 1)
    assert failed.last_error is not None and "451" in failed.last_error
    assert to not in failed.last_error
    assert use_smtp.to(to) == []

    clock.advance(minutes=5)
    await worker.run_until_idle()
    assert (await load_job(db, job.id)).status == "succeeded"
    assert len(use_smtp.to(to)) == 1


async def test_an_unreachable_server_fails_the_attempt(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    agency = await _branded_agency(db)
    to = f"{unique('down')}@example.de"
    server = SmtpServer()  # never started: nothing listens on its port
    with environment(DEMANDLY_SMTP_URL=server.url, DEMANDLY_DATA_DIR=str(tmp_path)):
        job = await _queue(db, agency, _email(to))
        await Worker(db).run_until_idle()
    failed = await load_job(db, job.id)
    assert (failed.status, failed.attempts) == ("queued", 1)
    assert not (tmp_path / "outbox").exists()


async def test_without_an_smtp_server_the_message_is_written_to_the_outbox_folder(
    db: Database, mail_outbox: Path
) -> None:
    agency = await _branded_agency(db)
    to = f"{unique('demo')}@example.de"
    job = await _queue(db, agency, _email(to))
    await Worker(db).run_until_idle()
    assert (await load_job(db, job.id)).status == "succeeded"
    [message] = [m for m in outbox_messages(mail_outbox) if str(m["To"]) == to]
    assert message["From"].addresses[0].display_name == "Nordlicht Leads"
    assert str(message["Subject"]) == "Neue Anfrage"
    assert len(list(message.iter_attachments())) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_credentials_in_the_url_log_in(tmp_path: Path, settings: Settings) -> None:
    server = SmtpServer(require_auth=True)
    server.controller.start()
    try:
        url = f"smtp://{SMTP_USER}:s3cret%20pass%2Fword@{server.host}:{server.port}"
        configured = settings.model_copy(update={"smtp_url": url, "smtp_from": SMTP_FROM})
        await send_now(configured, _email("kunde@example.de", attachments=()), "Nordlicht")
        assert server.logins == [SMTP_USER]
        assert len(server.messages) == 1
    finally:
        server.controller.stop()


async def test_line_breaks_cannot_add_headers(tmp_path: Path, settings: Settings) -> None:
    configured = settings.model_copy(update={"smtp_url": None, "data_dir": tmp_path})
    email = _email(
        "kunde@example.de\r\nBcc: victim@example.de",
        subject="Hallo\r\nBcc: victim@example.de",
        attachments=(),
    )
    await send_now(configured, email, "Evil\nBcc: victim@example.de")
    [message] = outbox_messages(tmp_path / "outbox")
    assert message["Bcc"] is None
    assert "\n" not in str(message["Subject"])


def test_smtp_urls() -> None:
    implicit = parse_smtp_url("smtps://u:p%40ss@mail.example")
    assert (implicit.port, implicit.use_tls, implicit.start_tls) == (465, True, False)
    assert (implicit.username, implicit.password) == ("u", "p@ss")
    upgrade = parse_smtp_url("smtp://mail.example?starttls=true")
    assert (upgrade.port, upgrade.use_tls, upgrade.start_tls) == (587, False, True)
    plain = parse_smtp_url("smtp://127.0.0.1:2525")
    assert (plain.port, plain.use_tls, plain.start_tls, plain.username) == (
        2525,
        False,
        False,
        None,
    )


async def test_the_layout_carries_the_agencys_brand_and_escapes_it(db: Database) -> None:
    agency = await _branded_agency(db)
    async with db.session(Scope.for_agency(agency.id)) as session:
        brand = await brand_for(session, agency.id)
    assert brand == Brand("Nordlicht Digital", "#0f4c81", "https://nordlicht.example/logo.png")
    page = branded_html(brand, "Neue Anfrage", "<p>Hallo</p>")
    assert "#0f4c81" in page and 'src="https://nordlicht.example/logo.png"' in page
    assert "Demandly" not in page

    hostile = Brand('<script>x</script>"', "red;background:url(x)", None)
    page = branded_html(hostile, "<b>t</b>", "<p>ok</p>")
    assert "<script>" not in page and "<b>t</b>" not in page
    assert "url(x)" not in page
