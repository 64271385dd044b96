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
    environment: str = "development"

    llm_base_url: str | None = None
    llm_api_key: str | None = Field(default=None)
    llm_model: str = "gpt-4o-mini"
    smtp_url: str | None = None
    redis_url: str | None = None
    # The DNS server that checks custom-domain TXT records ("host:port"); system resolver if unset.
    dns_nameserver: str | None = None

    conversation_idle_minutes: int = 30
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
