"""A real SMTP server for tests (aiosmtpd on 127.0.0.1, a free port) and the settings that
point the ``email.send`` task at it.

Use in a test module or conftest::

    from tests.integrations.smtp import mail_outbox, smtp_server, use_smtp  # noqa: F401

``smtp_server`` collects every delivered message as an ``email.message.EmailMessage``;
``use_smtp`` makes ``get_settings()`` (which the task reads) deliver to it;
``mail_outbox`` makes it write ``.eml`` files instead (no SMTP URL) and gives their folder.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from demandly.config import reset_settings_cache

SMTP_USER = "mailer"
SMTP_PASSWORD = "s3cret pass/word"
SMTP_FROM = "leads@mail.agency.example"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpServer:
    """Accepts mail for anyone; ``refuse_next(n)`` answers the next ``n`` messages with a
    temporary failure (451), as a busy or greylisting server does."""

    def __init__(self, *, require_auth: bool = False) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.logins: list[str] = []
        self._refuse = 0
        self._lock = threading.Lock()
        self.controller = Controller(
            self,
            hostname=self.host,
            port=self.port,
            auth_require_tls=False,
            auth_required=require_auth,
            authenticator=self._authenticate,
        )

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def refuse_next(self, count: int) -> None:
        with self._lock:
            self._refuse = count

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any):  # type: ignore[no-untyped-def]
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == SMTP_USER
            and data.password.decode() == SMTP_PASSWORD
        )
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            if self._refuse > 0:
                self._refuse -= 1
                return "451 4.3.0 Try again later"
            message = message_from_bytes(envelope.content, policy=policy.default)
            assert isinstance(message, EmailMessage)
            self.messages.append(message)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.messages if address in str(m["To"])]

    async def wait_for(self, count: int, within: float = 10.0) -> list[EmailMessage]:
        """Wait until ``count`` messages arrived (delivery runs in the server's thread)."""
        async with asyncio.timeout(within):
            while len(self.messages) < count:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        return list(self.messages)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.controller.start()
    yield server
    server.controller.stop()


@contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """Set (or, with None, unset) environment variables and re-read the settings; restore."""
    saved = {key: os.environ.get(key) for key in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    reset_settings_cache()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_settings_cache()


@pytest.fixture
def use_smtp(smtp_server: SmtpServer, tmp_path: Path) -> Iterator[SmtpServer]:
    """The e-mail task delivers to ``smtp_server``, from ``SMTP_FROM``."""
    with environment(
        DEMANDLY_SMTP_URL=smtp_server.url,
        DEMANDLY_SMTP_FROM=SMTP_FROM,
        DEMANDLY_DATA_DIR=str(tmp_path),
    ):
        yield smtp_server


@pytest.fixture
def mail_outbox(tmp_path: Path) -> Iterator[Path]:
    """No SMTP server configured: the e-mail task writes .eml files into the returned folder."""
    with environment(
        DEMANDLY_SMTP_URL=None, DEMANDLY_SMTP_FROM=SMTP_FROM, DEMANDLY_DATA_DIR=str(tmp_path)
    ):
        yield tmp_path / "outbox"


def outbox_messages(folder: Path) -> list[EmailMessage]:
    """The .eml files in an outbox folder, oldest first."""
    messages = []
    for path in sorted(folder.glob("*.eml")):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        messages.append(message)
    return messages
