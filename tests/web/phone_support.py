"""The dashboard's phone pages in tests: a local Twilio server that also serves recordings
and can fail, and the phone agent the pages are driven with (fixtures in conftest.py)."""

from __future__ import annotations

import re

import httpx
from aiohttp import web

from demandly.kit.db import Database
from tests.channels.phone.conftest import PhoneAgent, make_phone_agent
from tests.channels.phone.twilio_rest import Account, TwilioRest

AUDIO = b"ID3\x03\x00" + bytes(range(256)) * 8


class TwilioWithRecordings(TwilioRest):
    """The local Twilio server, also serving a recording's audio (``Recordings/RE….mp3``),
    and able to fail like Twilio on a bad day (``down``)."""

    down = False

    def _route(
        self, method: str, rest: str, account: Account, form: dict[str, str], query: dict[str, str]
    ) -> web.Response:
        if self.down:
            return web.json_response(
                {"code": 20500, "message": "Service Unavailable", "status": 503}, status=503
            )
        if method == "GET" and re.match(r"^/Recordings/RE[0-9a-f]{32}\.mp3$", rest):
            return web.Response(body=AUDIO, content_type="audio/mpeg")
        return super()._route(method, rest, account, form, query)


async def phone_agent(api: httpx.AsyncClient, db: Database, twilio: TwilioRest) -> PhoneAgent:
    return await make_phone_agent(api, db, twilio, name="Telefon-Lena")


def phone_base(agent: PhoneAgent, index: int = 0) -> str:
    return f"/app/clients/{agent.tenant.clients[index].id}/phone"
