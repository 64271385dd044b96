"""The official Twilio SDK, asynchronous, per connection.

``twilio_api_base_url`` (tests: a local server speaking Twilio's REST protocol) replaces the
scheme and host of every URL the SDK builds (``https://api.twilio.com/2010-04-01/...``); the
paths, parameters and authentication stay exactly the SDK's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from demandly.config import Settings
from demandly.kit.errors import DemandlyError

REQUEST_TIMEOUT_SECONDS = 15.0


class TwilioUnavailable(DemandlyError):
    """Twilio refused or could not be reached; the message says what Twilio answered."""

    status_code = 502
    code = "twilio_error"

    def __init__(self, message: str, *, status: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.status = status


class _RebasedHttpClient(AsyncTwilioHttpClient):
    def __init__(self, base_url: str | None) -> None:
        super().__init__(timeout=REQUEST_TIMEOUT_SECONDS)
        self.base = urlsplit(base_url) if base_url else None

    async def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        auth: tuple[str, str] | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Response:
        if self.base is not None:
            parts = urlsplit(url)
            url = urlunsplit(
                (self.base.scheme, self.base.netloc, parts.path, parts.query, parts.fragment)
            )
        if auth is not None:
            # The SDK would wrap the credentials in aiohttp's ``BasicAuth``, deprecated since
            # aiohttp 3.14 and gone in 4.0 (twilio-python#931): the header is the same.
            headers = {**(headers or {}), "Authorization": aiohttp.encode_basic_auth(*auth)}
        return await super().request(method, url, headers=headers, **kwargs)


@asynccontextmanager
async def twilio_client(
    settings: Settings,
    account_sid: str,
    *,
    auth_token: str | None = None,
    api_key_sid: str | None = None,
    api_key_secret: str | None = None,
) -> AsyncIterator[Client]:
    """A client for one account: an API key when there is one, else the Auth Token. Any
    failure inside becomes ``TwilioUnavailable`` (a 502 with Twilio's message), never a 500."""
    if api_key_sid and api_key_secret:
        username, password = api_key_sid, api_key_secret
    else:
        username, password = account_sid, auth_token or ""
    http = _RebasedHttpClient(settings.twilio_api_base_url)
    try:
        yield Client(username, password, account_sid, http_client=http)
    except TwilioRestException as exc:
        raise TwilioUnavailable(
            f"Twilio answered {exc.status}: {exc.msg}",
            status=exc.status,
            details={"twilio_code": exc.code},
        ) from None
    except (TwilioException, aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise TwilioUnavailable(f"Twilio could not be reached ({type(exc).__name__}).") from None
    finally:
        await http.close()
