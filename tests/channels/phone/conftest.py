"""Phone fixtures: the app behind a public URL (as behind a proxy: Twilio signs
``https://phone.example.test/...`` while the test client talks to ``http://testserver``), a
local Twilio REST server, a phone agent with a number, and a caller that behaves like Twilio
(signs every webhook, follows each ``<Gather>`` action)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from twilio.request_validator import RequestValidator

from demandly.app import create_app
from demandly.channels.phone import twiml
from demandly.config import Settings
from demandly.kit.db import Database
from tests.channels.phone.twilio_rest import Account, TwilioRest, sid
from tests.conftest import make_settings
from tests.conversations.conftest import agent_body
from tests.factories import Tenant, make_tenant

API = "/api/v1"
PUBLIC = "https://phone.example.test"


@pytest.fixture(scope="session")
async def twilio() -> AsyncIterator[TwilioRest]:
    async with TwilioRest() as server:
        yield server


@pytest.fixture(scope="session")
def phone_settings(
    database_url: str, twilio: TwilioRest, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return make_settings(
        database_url,
        tmp_path_factory.mktemp("phone"),
        base_url=PUBLIC,
        twilio_api_base_url=twilio.url,
    )


@pytest.fixture(scope="session")
def phone_app(phone_settings: Settings, db: Database) -> FastAPI:
    return create_app(phone_settings, database=db)


@pytest.fixture
async def api(phone_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=phone_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def sign(token: str, url: str, params: dict[str, str]) -> str:
    return RequestValidator(token).compute_signature(url, params)


async def twilio_post(
    api: httpx.AsyncClient,
    token: str,
    url: str,
    params: dict[str, str],
    *,
    signed_url: str | None = None,
) -> httpx.Response:
    """POST ``params`` to ``url`` (public, absolute) the way Twilio does, signed for
    ``signed_url`` (default: ``url``)."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    signature = sign(token, signed_url or url, params)
    return await api.post(path, data=params, headers={"X-Twilio-Signature": signature})


@dataclass
class PhoneAgent:
    tenant: Tenant
    account: Account
    connection_id: str
    agent_id: str
    number: str
    number_id: str

    @property
    def owner(self) -> dict[str, str]:
        return self.tenant.headers("agency_owner")


async def make_phone_agent(
    api: httpx.AsyncClient,
    db: Database,
    twilio: TwilioRest,
    tenant: Tenant | None = None,
    **overrides: Any,
) -> PhoneAgent:
    """A published phone agent, a verified Twilio connection and a number assigned to it,
    all through the API."""
    tenant = tenant or await make_tenant(db)
    owner = tenant.headers("agency_owner")
    body = agent_body(tenant.clients[0].id, kind="phone", **overrides)
    created = await api.post(f"{API}/agents", json=body, headers=owner)
    assert created.status_code == 201, created.text
    agent_id = created.json()["id"]
    assert (await api.post(f"{API}/agents/{agent_id}/publish", headers=owner)).status_code == 200
    account = twilio.account()
    connection = await api.post(
        f"{API}/twilio-connections",
        json={
            "agency_id": tenant.agency.id,
            "name": "Twilio",
            "account_sid": account.sid,
            "auth_token": account.auth_token,
        },
        headers=owner,
    )
    assert connection.status_code == 201, connection.text
    number = f"+4930{secrets.randbelow(10**8):08d}"
    account.add_number(number)
    imported = await api.post(
        f"{API}/phone-numbers/import",
        json={"connection_id": connection.json()["id"]},
        headers=owner,
    )
    assert imported.status_code == 200, imported.text
    number_id = imported.json()[0]["id"]
    assigned = await api.patch(
        f"{API}/phone-numbers/{number_id}", json={"agent_id": agent_id}, headers=owner
    )
    assert assigned.status_code == 200, assigned.text
    return PhoneAgent(tenant, account, connection.json()["id"], agent_id, number, number_id)


@dataclass
class Caller:
    """Twilio's side of one inbound call: the incoming webhook, then every ``<Gather>``
    action with what the caller said."""

    api: httpx.AsyncClient
    agent: PhoneAgent
    caller: str = "+4917612345678"
    call_sid: str = field(default_factory=lambda: sid("CA"))
    heard: list[twiml.Heard] = field(default_factory=list)
    last_xml: str = ""

    def _params(self, **extra: str) -> dict[str, str]:
        return {
            "CallSid": self.call_sid,
            "AccountSid": self.agent.account.sid,
            "From": self.caller,
            "To": self.agent.number,
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
            **extra,
        }

    async def _post(self, url: str, params: dict[str, str]) -> twiml.Heard:
        response = await twilio_post(self.api, self.agent.account.auth_token, url, params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/xml")
        self.last_xml = response.text
        heard = twiml.read(response.text)
        self.heard.append(heard)
        return heard

    async def dial_in(self) -> twiml.Heard:
        url = f"{PUBLIC}/twilio/voice/incoming"
        return await self._post(url, self._params(CallStatus="ringing"))

    @property
    def last(self) -> twiml.Heard:
        return self.heard[-1]

    async def say(self, text: str, confidence: str = "0.92") -> twiml.Heard:
        assert self.last.action == "gather", self.last_xml
        extra = {"SpeechResult": text, "Confidence": confidence} if text else {}
        return await self._post(
            self.last.gather_url or "", self._params(CallStatus="in-progress", **extra)
        )

    async def press(self, digits: str) -> twiml.Heard:
        assert self.last.action == "gather", self.last_xml
        return await self._post(
            self.last.gather_url or "", self._params(CallStatus="in-progress", Digits=digits)
        )

    async def status(self, status: str, sequence: int, **extra: str) -> httpx.Response:
        params = self._params(CallStatus=status, SequenceNumber=str(sequence), **extra)
        return await twilio_post(
            self.api, self.agent.account.auth_token, f"{PUBLIC}/twilio/voice/status", params
        )
