"""The web channel's tests share the published agent and visitor fixtures of the
conversation tests."""

from tests.conversations.conftest import (  # noqa: F401
    _openai_stub_server,
    agent,
    openai_stub,
    tenant,
    visitor,
)
