"""The SMTP server fixtures of tests/integrations/smtp.py."""

from tests.integrations.smtp import mail_outbox, smtp_server, use_smtp  # noqa: F401
