"""Login sessions, API keys, 2FA recovery codes and login throttling state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from demandly.kit.db import Base, RecordModel, TenantMixin


class LoginSession(RecordModel):
    """A dashboard/API session. Only the token's hash is stored."""

    __tablename__ = "login_sessions"
    __id_prefix__ = "ses"

    user_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    last_seen_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    ip: Mapped[str | None] = mapped_column(String(64), default=None)
    user_agent: Mapped[str | None] = mapped_column(String(300), default=None)
    # A login that passed the password but still owes a TOTP code.
    pending_totp: Mapped[bool] = mapped_column(default=False)


class ApiKey(RecordModel, TenantMixin):
    """``dmd_…`` keys scoped to an agency or a client with a role; shown once, stored hashed."""

    __tablename__ = "api_keys"
    __id_prefix__ = "key"
    # Use is not a change worth an audit event; revoking records ``api_key.revoked`` itself.
    __audit_ignore__ = ("last_used_at", "revoked_at")

    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    display_prefix: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(32))
    created_by_user_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class RecoveryCode(RecordModel):
    __tablename__ = "recovery_codes"
    __id_prefix__ = "rcv"

    user_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class LoginThrottle(Base):
    """Consecutive failed logins per key (``account:<email hash>`` or ``ip:<address>``)."""

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(default=None)
    blocked_until: Mapped[datetime | None] = mapped_column(default=None)


class PasswordReset(RecordModel):
    """A password-reset link sent by e-mail: single use, short-lived, only its hash stored."""

    __tablename__ = "password_resets"
    __id_prefix__ = "pwr"

    user_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    ip: Mapped[str | None] = mapped_column(String(64), default=None)
