"""Fixtures for engine tests: ``openai_stub``, a real OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.engine.openai_stub import OpenAIStub, running_stub


@pytest.fixture(scope="session")
def _openai_stub_server() -> Iterator[OpenAIStub]:
    yield from running_stub()


@pytest.fixture
def openai_stub(_openai_stub_server: OpenAIStub) -> Iterator[OpenAIStub]:
    """The shared stub server, with an empty script and no recorded requests."""
    _openai_stub_server.reset()
    yield _openai_stub_server
    _openai_stub_server.reset()
