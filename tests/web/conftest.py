"""Fixtures of the dashboard's phone pages: the app wired to a local Twilio server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from demandly.app import create_app
from demandly.config import Settings
from demandly.kit.db import Database
from tests.channels.phone.conftest import PUBLIC
from tests.conftest import make_settings
from tests.web.phone_support import TwilioWithRecordings


@pytest.fixture(scope="session")
async def web_twilio() -> AsyncIterator[TwilioWithRecordings]:
    async with TwilioWithRecordings() as server:
        yield server


@pytest.fixture(scope="session")
def web_phone_app(
    database_url: str,
    web_twilio: TwilioWithRecordings,
    db: Database,
    tmp_path_factory: pytest.TempPathFactory,
) -> FastAPI:
    settings: Settings = make_settings(
        database_url,
        Path(tmp_path_factory.mktemp("web-phone")),
        base_url=PUBLIC,
        twilio_api_base_url=web_twilio.url,
    )
    return create_app(settings, database=db)


@pytest.fixture
async def api(web_phone_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=web_phone_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
