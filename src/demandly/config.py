"""Settings, read from the environment with the ``DEMANDLY_`` prefix."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEMANDLY_", extra="ignore")

    data_dir: Path = Path(".demandly")
    database_url: str | None = None
    # Connection used for migrations (table owner). Defaults to database_url.
    migration_database_url: str | None = None
    secret_key: str | None = None
    base_url: str = "http://127.0.0.1:8000"
    # The operator's own name, shown only on the platform's host before anyone signs in;
    # agencies' clients see their agency's brand everywhere.
    platform_name: str = "Demandly"
    environment: str = "development"

    llm_base_url: str | None = None
    llm_api_key: str | None = Field(default=None)
    llm_model: str = "gpt-4o-mini"
    smtp_url: str | None = None
    smtp_from: str = "noreply@localhost"
    redis_url: str | None = None
    # Realtime voice (phone agents in realtime mode): the OpenAI-Realtime-protocol WebSocket
    # endpoint (e.g. wss://api.openai.com/v1) and model, used when the agent's provider
    # connection names none; the key is the LLM key.
    realtime_url: str | None = None
    realtime_model: str = "gpt-realtime"
    # Phone (Twilio): the REST API's base URL (tests point it at a local server speaking
    # Twilio's protocol), how long <Gather> waits for speech to start, the dialer's pace.
    twilio_api_base_url: str | None = None
    phone_gather_timeout_seconds: int = 5
    phone_dialer_batch: int = 20
    # The DNS server that checks custom-domain TXT records ("host:port"); system resolver if unset.
    dns_nameserver: str | None = None
    # Knowledge fetching: CIDRs exempt from the SSRF guard (comma-separated; tests allow
    # 127.0.0.0/8), per-response size cap, whole-fetch timeout; upload size cap.
    fetch_allowed_networks: str = ""
    fetch_max_bytes: int = 10_000_000
    fetch_timeout_seconds: float = 15.0
    upload_max_bytes: int = 20_000_000
    # Optional dense retrieval: an OpenAI-compatible /v1/embeddings endpoint (off when unset).
    embeddings_base_url: str | None = None
    embeddings_api_key: str | None = None
    embeddings_model: str = "text-embedding-3-small"

    conversation_idle_minutes: int = 30
    # Booking reminders before an appointment (minutes, comma-separated); calendars may override.
    reminder_offsets_minutes: str = "1440,60"
    # Public chat limits (per minute; bursts of a third of it, at least 10).
    public_conversations_per_ip: int = 10
    public_messages_per_ip: int = 120
    public_messages_per_conversation: int = 30
    max_body_bytes: int = 1_048_576
    session_ttl_hours: int = 24 * 14
    login_max_failures_before_delay: int = 3
    login_ip_max_failures_before_delay: int = 20
    # argon2id parameters (OWASP's second recommended set by default).
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 1
    log_level: str = "INFO"
    log_json: bool = True
    # The PostgreSQL role the application uses at run time: without BYPASSRLS, without
    # UPDATE/DELETE on the audit table. Created by the migrations.
    # A file the hourly job appends each audit chain's head to (JSON lines; keep it on another
    # machine or write-once storage). The heads are logged as "audit.anchor" either way.
    audit_anchor_file: Path | None = None
    pg_app_role: str = "demandly_app"
    pg_app_password: str = "demandly_app"
    worker_in_process: bool = True
    worker_poll_seconds: float = 0.5

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'demandly.db').resolve()}"

    @property
    def effective_llm_api_key(self) -> str | None:
        return self.llm_api_key or os.environ.get("OPENAI_API_KEY")

    @property
    def is_postgres(self) -> bool:
        return self.effective_database_url.startswith("postgresql")


@lru_cache
def get_settings() -> Settings:
    return Settings()


def reset_settings_cache() -> None:
    get_settings.cache_clear()
