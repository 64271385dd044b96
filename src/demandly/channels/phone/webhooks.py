"""What Twilio calls: the voice webhooks of a call and its status and recording callbacks.

Every request must carry a valid ``X-Twilio-Signature`` over the public URL
(``DEMANDLY_BASE_URL`` + path + query, whatever host a proxy forwarded to) and the POST
parameters, made with the Auth Token of the connection the number or call belongs to; anything
else answers 403. All of them are idempotent: Twilio retries.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from demandly.auth.dependencies import get_database, request_actor
from demandly.channels.phone import service
from demandly.channels.phone.models import Call
from demandly.config import Settings
from demandly.kit.context import Actor
from demandly.kit.db import Database

router = APIRouter(prefix="/twilio", tags=["twilio webhooks"], include_in_schema=False)
CallId = Annotated[str, Query(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]
OptionalCallId = Annotated[
    str | None, Query(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")
]
Sequence = Annotated[int, Query(ge=1, le=100_000)]
MAX_PARAM_LENGTH = 5000


def _xml(document: str) -> Response:
    return Response(content=document, media_type="application/xml")


async def _webhook(request: Request) -> service.Webhook:
    """The URL Twilio called as the public sees it, the form it posted, the signature."""
    settings: Settings = request.app.state.settings
    url = service.public_url(settings, request.url.path)
    query = request.scope.get("query_string", b"").decode("latin-1")
    if query:
        url = f"{url}?{query}"
    params: dict[str, str] = {}
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form = await request.form()
        params = {k: v[:MAX_PARAM_LENGTH] for k, v in form.items() if isinstance(v, str)}
    return service.Webhook(url, params, request.headers.get("x-twilio-signature"))


def _parts(request: Request) -> tuple[Database, Settings, Actor]:
    # The caller is the data subject acting; the audit trail records them as a visitor.
    return (
        get_database(request),
        request.app.state.settings,
        request_actor(request, kind="visitor"),
    )


async def _call(request: Request, call_id: str | None = None) -> tuple[Call, service.Webhook]:
    hook = await _webhook(request)
    return await service.authenticate_call(get_database(request), hook, call_id), hook


@router.post("/voice/incoming")
async def incoming(request: Request) -> Response:
    """A call to one of our numbers: the opening TwiML (consent question, greeting or
    media stream)."""
    db, settings, actor = _parts(request)
    hook = await _webhook(request)
    number = await service.authenticate_incoming(db, hook)
    return _xml(await service.answer_incoming(db, settings, number, hook.params, actor))


@router.post("/voice/outbound")
async def outbound(request: Request, call: CallId) -> Response:
    """The person (or machine) we called answered."""
    db, settings, actor = _parts(request)
    found, hook = await _call(request, call)
    return _xml(await service.answer_outbound(db, settings, found, hook.params, actor))


@router.post("/voice/consent")
async def consent(request: Request, call: CallId) -> Response:
    """The answer to the recording question."""
    db, settings, actor = _parts(request)
    found, hook = await _call(request, call)
    speech, digits = hook.params.get("SpeechResult"), hook.params.get("Digits")
    return _xml(await service.answer_consent(db, settings, found, speech, digits, actor))


@router.post("/voice/gather")
async def gather(request: Request, call: CallId, seq: Sequence) -> Response:
    """What the caller said (or keyed) after prompt ``seq``: one engine turn."""
    db, settings, actor = _parts(request)
    hook = await _webhook(request)
    found = await service.authenticate_gather(db, hook, call)
    speech, digits = hook.params.get("SpeechResult"), hook.params.get("Digits")
    return _xml(await service.gather_turn(db, settings, found, seq, speech, digits, actor))


@router.post("/voice/dial")
async def dial(request: Request, call: CallId) -> Response:
    """The transfer's <Dial> ended."""
    db, _, actor = _parts(request)
    found, hook = await _call(request, call)
    status = hook.params.get("DialCallStatus", "")
    return _xml(await service.dial_ended(db, found, status, actor))


@router.post("/voice/status", status_code=204)
async def status(request: Request, call: OptionalCallId = None) -> Response:
    """Status callback: queued → ringing → in-progress → a final state. Outbound calls name
    our call id (the callback may come before Twilio's CallSid was stored); a number's
    callback for inbound calls names only the CallSid."""
    db, settings, actor = _parts(request)
    found, hook = await _call(request, call)
    await service.apply_status(db, settings, found, hook.params, actor)
    return Response(status_code=204)


@router.post("/recording/status", status_code=204)
async def recording_status(request: Request) -> Response:
    """Recording status callback: the recording's sid, URL, status and duration."""
    db, _, actor = _parts(request)
    found, hook = await _call(request)
    await service.apply_recording(db, found, hook.params, actor)
    return Response(status_code=204)
