"""A local server speaking Twilio's REST protocol (API 2010-04-01) for the calls the phone
channel makes through the official SDK: it checks HTTP Basic auth and answers with Twilio's
JSON shapes; every request is recorded (method, path, form, query) for the tests to inspect."""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

PREFIX = "/2010-04-01/Accounts/{account}"
META = {
    "first_page_uri": "/",
    "next_page_uri": None,
    "previous_page_uri": None,
    "page": 0,
    "page_size": 50,
    "start": 0,
    "end": 0,
    "uri": "/",
}


def sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


@dataclass
class Recorded:
    method: str
    path: str
    form: dict[str, str]
    multi: dict[str, list[str]]
    query: dict[str, str]
    user: str


@dataclass
class Account:
    sid: str
    auth_token: str
    api_key: tuple[str, str] | None = None
    numbers: dict[str, dict[str, Any]] = field(default_factory=dict)
    available: list[str] = field(default_factory=list)

    def add_number(self, number: str, **extra: Any) -> dict[str, Any]:
        resource = {
            "sid": sid("PN"),
            "account_sid": self.sid,
            "phone_number": number,
            "friendly_name": extra.pop("friendly_name", number),
            "voice_url": extra.pop("voice_url", None),
            "status_callback": None,
            "capabilities": {"voice": True, "sms": True, "mms": False, "fax": False},
            **extra,
        }
        self.numbers[resource["sid"]] = resource
        return resource


class TwilioRest:
    """Accounts are registered by the tests (``account()``); unknown credentials get 401."""

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.requests: list[Recorded] = []
        self.url = ""
        # Calls.json answers this HTTP status when set (Twilio refusing a call).
        self.refuse_calls: int | None = None
        # Messages.json answers this HTTP status when set (Twilio failing).
        self.refuse_messages: int | None = None
        self._runner: web.AppRunner | None = None

    def account(self, *, api_key: bool = False) -> Account:
        created = Account(sid=sid("AC"), auth_token=secrets.token_hex(16))
        if api_key:
            created.api_key = (sid("SK"), secrets.token_hex(16))
        self.accounts[created.sid] = created
        return created

    def of(self, account: Account, method: str, suffix: str) -> list[Recorded]:
        """The requests to ``/2010-04-01/Accounts/{sid}{suffix}`` (suffix a regex)."""
        pattern = re.compile(f"^/2010-04-01/Accounts/{account.sid}{suffix}$")
        return [r for r in self.requests if r.method == method and pattern.match(r.path)]

    # --- the server

    async def __aenter__(self) -> TwilioRest:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def _authorised(self, request: web.Request, account: Account) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        if (user, password) == (account.sid, account.auth_token):
            return user
        if account.api_key and (user, password) == account.api_key:
            return user
        return None

    async def _handle(self, request: web.Request) -> web.Response:
        posted = await request.post()
        multi: dict[str, list[str]] = {}
        for key, value in posted.items():
            multi.setdefault(key, []).append(str(value))
        form = {k: v[-1] for k, v in multi.items()}
        match = re.match(r"^/2010-04-01/Accounts/(AC[0-9a-f]{32})(.*)$", request.path)
        account = self.accounts.get(match.group(1)) if match else None
        user = self._authorised(request, account) if account else None
        self.requests.append(
            Recorded(request.method, request.path, form, multi, dict(request.query), user or "")
        )
        if account is None or user is None or match is None:
            return _error(401, 20003, "Authenticate")
        return self._route(request.method, match.group(2), account, form, dict(request.query))

    def _route(
        self, method: str, rest: str, account: Account, form: dict[str, str], query: dict[str, str]
    ) -> web.Response:
        if rest == ".json" and method == "GET":
            return web.json_response(
                {"sid": account.sid, "friendly_name": "Praxis Test", "status": "active"}
            )
        if rest == "/IncomingPhoneNumbers.json":
            if method == "GET":
                items = list(account.numbers.values())
                return web.json_response({"incoming_phone_numbers": items, **META})
            if form.get("PhoneNumber") not in account.available:
                return _error(400, 21422, "PhoneNumber is not available")
            account.available.remove(form["PhoneNumber"])
            return web.json_response(
                account.add_number(form["PhoneNumber"], voice_url=form.get("VoiceUrl")), status=201
            )
        number = re.match(r"^/IncomingPhoneNumbers/(PN[0-9a-f]{32})\.json$", rest)
        if number:
            resource = account.numbers.get(number.group(1))
            if resource is None:
                return _error(404, 20404, "Not found")
            if method == "DELETE":
                del account.numbers[number.group(1)]
                return web.Response(status=204)
            resource.update(
                voice_url=form.get("VoiceUrl"), status_callback=form.get("StatusCallback")
            )
            return web.json_response(resource)
        available = re.match(r"^/AvailablePhoneNumbers/([A-Z]{2})/Local\.json$", rest)
        if available:
            items = [
                {
                    "phone_number": n,
                    "friendly_name": n,
                    "locality": "Berlin",
                    "region": "BE",
                    "iso_country": available.group(1),
                    "capabilities": {"voice": True, "SMS": True, "MMS": False},
                }
                for n in account.available
                if query.get("Contains", "") in n
            ]
            return web.json_response({"available_phone_numbers": items, "uri": "/"})
        if rest == "/Calls.json" and method == "POST":
            if self.refuse_calls:
                return _error(self.refuse_calls, 21211, "Invalid 'To' Phone Number")
            return web.json_response(
                {"sid": sid("CA"), "account_sid": account.sid, "status": "queued", **_lower(form)},
                status=201,
            )
        call = re.match(r"^/Calls/(CA[0-9a-f]{32})(/Recordings)?\.json$", rest)
        if call and method == "POST":
            if call.group(2):
                body = {"sid": sid("RE"), "call_sid": call.group(1), "status": "in-progress"}
                return web.json_response(body, status=201)
            return web.json_response({"sid": call.group(1), "status": form.get("Status", "")})
        if rest == "/Messages.json" and method == "POST":
            if self.refuse_messages:
                return _error(self.refuse_messages, 20500, "Internal Server Error")
            refused = _message_refused(account, form)
            if refused is not None:
                return refused
            return web.json_response(
                {
                    "sid": sid("SM"),
                    "status": "queued",
                    "to": form.get("To"),
                    "body": form.get("Body"),
                },
                status=201,
            )
        return _error(404, 20404, "The requested resource was not found")


def _lower(form: dict[str, str]) -> dict[str, str]:
    return {"to": form.get("To", ""), "from": form.get("From", "")}


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {"code": code, "message": message, "more_info": "", "status": status}, status=status
    )


E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def _message_refused(account: Account, form: dict[str, str]) -> web.Response | None:
    """Twilio's checks of a message: an E.164 ``To``, a ``From`` the account owns (with SMS),
    a ``Body`` of 1-1600 characters."""
    if not E164.match(form.get("To", "")):
        return _error(400, 21211, "Invalid 'To' Phone Number")
    owned = {n["phone_number"]: n for n in account.numbers.values()}
    sender = owned.get(form.get("From", ""))
    if sender is None or not sender["capabilities"].get("sms"):
        return _error(400, 21606, "The 'From' phone number is not a valid SMS-capable number")
    if not 0 < len(form.get("Body", "")) <= 1600:
        return _error(400, 21617, "The concatenated message body exceeds the 1600 character limit")
    return None
