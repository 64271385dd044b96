"""Realtime mode end to end: a signed incoming call to a realtime agent, Twilio's side of the
Media Stream (a client speaking its documented protocol) against a live uvicorn server, and a
local server speaking the OpenAI Realtime protocol as the model."""

from __future__ import annotations

import base64
import json
import secrets
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from twilio.request_validator import RequestValidator

from demandly.channels.phone.media import stream_token
from demandly.channels.phone.models import PhoneNumber, TwilioConnection
from demandly.config import Settings
from demandly.kit.context import Scope
from demandly.kit.db import Database
from tests.channels.phone.realtime_stub import RealtimeStub, Script, Session, Turn, audio
from tests.channels.phone.twilio_media_client import TwilioMediaClient
from tests.channels.phone.twilio_rest import Account, TwilioRest
from tests.conftest import LiveServer, start_server
from tests.conversations.conftest import agent_body
from tests.factories import Tenant, make_tenant

API = "/api/v1"
WS_POLICY_VIOLATION = 1008
WS_TRY_AGAIN_LATER = 1013
AGENCY_KEY = "sk-agency-own-key-1234"


@pytest.fixture(scope="module")
async def model() -> AsyncIterator[RealtimeStub]:
    async with RealtimeStub() as stub:
        yield stub


@pytest.fixture(scope="module")
def server(
    settings: Settings,
    model: RealtimeStub,
    twilio: TwilioRest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    process = start_server(
        settings,
        tmp_path_factory.mktemp("media") / "server.log",
        DEMANDLY_REALTIME_URL=model.url,
        DEMANDLY_TWILIO_API_BASE_URL=twilio.url,
    )
    yield process
    process.stop()


@dataclass
class IncomingCall:
    tenant: Tenant
    account: Account
    stream_url: str
    parameters: dict[str, str]
    call_sid: str

    @property
    def call_id(self) -> str:
        return self.parameters["call_id"]

    @property
    def conversation_id(self) -> str:
        return self.parameters["conversation_id"]

    def hang_ups(self, twilio: TwilioRest) -> list[dict[str, str]]:
        """What the server asked Twilio to do with this call (``Calls/{Sid}.json``)."""
        return [r.form for r in twilio.of(self.account, "POST", f"/Calls/{self.call_sid}\\.json")]

    def caller(self, **options: Any) -> TwilioMediaClient:
        options.setdefault("parameters", self.parameters)
        options.setdefault("call_sid", self.call_sid)
        return TwilioMediaClient(self.stream_url, **options)

    async def conversation(self, server: LiveServer) -> dict[str, Any]:
        async with httpx.AsyncClient(
            base_url=server.url, headers=self.tenant.headers("agency_owner")
        ) as http:
            found = await http.get(f"{API}/conversations/{self.conversation_id}")
            assert found.status_code == 200, found.text
            return found.json()


async def incoming_call(
    server: LiveServer, db: Database, twilio: TwilioRest, *, model_url: str | None = None
) -> IncomingCall:
    """A realtime phone agent on a number of its own, and a call to it through the signed
    voice webhook: the TwiML's ``<Stream>`` is where Twilio would connect. With
    ``model_url``, the agent uses a provider connection of its agency at that address."""
    tenant = await make_tenant(db)
    owner = tenant.headers("agency_owner")
    body = agent_body(
        tenant.clients[0].id,
        kind="phone",
        phone={"voice_mode": "realtime", "realtime_voice": "marin"},
    )
    async with httpx.AsyncClient(base_url=server.url, headers=owner) as http:
        if model_url is not None:
            connection = await http.post(
                f"{API}/provider-connections",
                json={
                    "agency_id": tenant.agency.id,
                    "name": "Agency's own",
                    "base_url": model_url,
                    "api_key": AGENCY_KEY,
                    "default_model": "gpt-4o-mini",
                    "region": "eu",
                },
            )
            assert connection.status_code == 201, connection.text
            body["llm"] = {"connection_id": connection.json()["id"]}
        created = await http.post(f"{API}/agents", json=body)
        assert created.status_code == 201, created.text
        agent_id = created.json()["id"]
        assert (await http.post(f"{API}/agents/{agent_id}/publish")).status_code == 200
    account = twilio.account()
    number = f"+4930{secrets.randbelow(10**8):08d}"
    async with db.session(Scope.for_agency(tenant.agency.id)) as session:
        connection = TwilioConnection(
            agency_id=tenant.agency.id,
            name="Twilio",
            account_sid=account.sid,
            auth_token=account.auth_token,
        )
        session.add(connection)
        await session.flush()
        session.add(
            PhoneNumber(
                agency_id=tenant.agency.id,
                client_id=tenant.clients[0].id,
                connection_id=connection.id,
                twilio_sid="PN" + secrets.token_hex(16),
                number=number,
                agent_id=agent_id,
            )
        )
        await session.commit()
    call_sid = "CA" + secrets.token_hex(16)
    params = {
        "CallSid": call_sid,
        "AccountSid": account.sid,
        "From": "+4917612345678",
        "To": number,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }
    url = f"{server.url}/twilio/voice/incoming"
    signature = RequestValidator(account.auth_token).compute_signature(url, params)
    async with httpx.AsyncClient() as http:
        answered = await http.post(url, data=params, headers={"X-Twilio-Signature": signature})
    assert answered.status_code == 200, answered.text
    stream = ET.fromstring(answered.text).find("./Connect/Stream")
    assert stream is not None, answered.text
    parameters = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return IncomingCall(tenant, account, stream.get("url", ""), parameters, call_sid)


async def next_session(model: RealtimeStub, started_before: int) -> Session:
    return await model.session(started_before)


def markers(payloads: list[str]) -> list[int]:
    """The byte each chunk of stub audio is filled with (the stub's chunk numbering)."""
    return [base64.b64decode(p)[0] for p in payloads]


@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_the_agent_greets_first_and_audio_passes_through_untouched(
    server: LiveServer,
    db: Database,
    model: RealtimeStub,
    twilio: TwilioRest,
    compression: str | None,
) -> None:
    """Compressed frames are uvicorn's to read: the same call then runs on its path."""
    model.script = Script(greeting_chunks=7)
    call = await incoming_call(server, db, twilio)
    before = len(model.sessions)
    async with call.caller(compression=compression) as caller:
        session = await next_session(model, before)
        assert session.path.startswith("/v1/realtime?model=gpt-realtime")
        config = (await session.wait_for("session.update"))[0]["session"]
        assert config["audio"]["input"]["format"] == {"type": "audio/pcmu"}
        assert config["audio"]["output"]["format"] == {"type": "audio/pcmu"}
        assert config["audio"]["input"]["turn_detection"]["type"] == "server_vad"
        assert config["audio"]["output"]["voice"] == "marin"
        assert "Lena" in config["instructions"] and "89 Euro" in config["instructions"]
        tools = {tool["name"] for tool in config["tools"]}
        assert {"save_lead_details", "end_conversation", "request_handoff"} <= tools
        greeting = (await session.wait_for("response.create"))[0]
        assert "Guten Tag, hier ist Lena" in greeting["response"]["instructions"]

        # The greeting's audio arrives as sent, a mark after every 100 ms and at its end.
        await caller.wait_for("mark", 2)
        assert markers(caller.audio()) == [0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16]
        events = [m["event"] for m in caller.received]
        assert events == ["media"] * 5 + ["mark"] + ["media"] * 2 + ["mark"]
        assert all(m["streamSid"] == caller.stream_sid for m in caller.received)

        # The caller's audio reaches the model byte for byte.
        sent = [audio(0x20 + n) for n in range(3)]
        for payload in sent:
            await caller.media(payload)
        appended = await session.wait_for("input_audio_buffer.append", 3)
        assert [e["audio"] for e in appended[:3]] == sent
        await caller.stop()
        await session.ended()


async def test_an_agent_with_its_own_provider_connection_uses_it(
    server: LiveServer, db: Database, model: RealtimeStub, twilio: TwilioRest
) -> None:
    model.script = Script(greeting_chunks=1)
    # The agency's connection names the endpoint as an HTTP base URL, like for chat.
    http_url = model.url.replace("ws://", "http://")
    call = await incoming_call(server, db, twilio, model_url=http_url)
    before = len(model.sessions)
    async with call.caller() as caller:
        session = await next_session(model, before)
        await caller.wait_for("mark", 1)
        assert session.authorization == f"Bearer {AGENCY_KEY}"
        assert session.path == "/v1/realtime?model=gpt-realtime"
        await caller.stop()
        await session.ended()


async def test_barge_in_clears_twilio_and_truncates_at_what_the_caller_heard(
    server: LiveServer, db: Database, model: RealtimeStub, twilio: TwilioRest
) -> None:
    model.script = Script(
        greeting_chunks=10,
        turns=[Turn("Ich möchte einen Termin.", say="Gern.", chunks=2)],
        late_delta=True,
    )
    call = await incoming_call(server, db, twilio)
    before = len(model.sessions)
    async with call.caller(auto_marks=False) as caller:
        session = await next_session(model, before)
        await caller.wait_for("mark", 2)  # 200 ms of greeting queued at Twilio
        greeting_item = session.sent_of_type("response.output_audio.delta")[0]["item_id"]
        await caller.play(1)  # the caller has heard the first 100 ms of it
        await caller.speak(frames=2)  # ... and talks over the rest

        await caller.wait_for("clear")
        truncate = (await session.wait_for("conversation.item.truncate"))[0]
        assert truncate["item_id"] == greeting_item
        assert truncate["content_index"] == 0
        # Heard: the 100 ms echoed plus the time since (the clock's exact arithmetic is
        # tested on Playback), never more than the 200 ms sent.
        assert 100 <= truncate["audio_end_ms"] <= 200

        # The answer to what the caller said plays; the interrupted greeting's late chunk
        # (0x55, in flight when the caller spoke up) never does.
        await caller.wait_for("media", 12)
        greeting = [0x10 + n for n in range(10)]
        assert markers(caller.audio()) == [*greeting, 0x10, 0x11]
        order = [m["event"] for m in caller.received]
        # The answer after the clear.
        assert order[:13] == (["media"] * 5 + ["mark"]) * 2 + ["clear"]
        await caller.stop()


async def test_a_tool_call_mid_call_runs_in_the_calls_workspace(
    server: LiveServer, db: Database, model: RealtimeStub, twilio: TwilioRest
) -> None:
    model.script = Script(
        greeting_chunks=1,
        turns=[
            Turn(
                "Ich heiße Max Mustermann.",
                say="Danke, Herr Mustermann.",
                call=("save_lead_details", {"fields": {"name": "Max Mustermann"}}),
                after_call="Ich habe Ihren Namen notiert.",
            )
        ],
    )
    call = await incoming_call(server, db, twilio)
    before = len(model.sessions)
    async with call.caller() as caller:
        session = await next_session(model, before)
        await caller.wait_for("mark", 1)
        await caller.speak()
        created = await session.wait_for("conversation.item.create")
        output = created[0]["item"]
        assert output["type"] == "function_call_output"
        assert json.loads(output["output"])["ok"] is True
        # The model speaks again once the tool has answered.
        await session.wait_for("response.create", 2)
        await caller.wait_for("media", 1 + 2 + 2)
        await caller.stop()
        await session.ended()

    conversation = await call.conversation(server)
    assert conversation["lead_fields"] == {"name": "Max Mustermann"}
    said = [(m["role"], m["content"]) for m in conversation["messages"] if m["content"]]
    assert ("user", "Ich heiße Max Mustermann.") in said
    assert ("assistant", "Danke, Herr Mustermann.") in said
    assert said[-1] == ("assistant", "Ich habe Ihren Namen notiert.")


async def test_the_agent_ends_the_call_and_both_sockets_close(
    server: LiveServer, db: Database, model: RealtimeStub, twilio: TwilioRest
) -> None:
    model.script = Script(
        greeting_chunks=1,
        turns=[
            Turn(
                "Das war alles, tschüss.",
                say="Auf Wiederhören!",
                chunks=3,
                call=("end_conversation", {"reason": "finished"}),
            )
        ],
    )
    call = await incoming_call(server, db, twilio)
    before = len(model.sessions)
    async with call.caller() as caller:
        session = await next_session(model, before)
        await caller.wait_for("mark", 1)
        await caller.speak()
        await caller.ended()
        await session.ended()
        assert caller.close_code == 1000
        # The goodbye was played before the line closed; the model was not asked for more.
        assert markers(caller.audio()) == [0x10, 0x10, 0x11, 0x12]
        assert len(session.of_type("response.create")) == 1

    assert call.hang_ups(twilio) == [{"Status": "completed"}]
    conversation = await call.conversation(server)
    assert conversation["status"] == "ended"
    said = [(m["role"], m["content"]) for m in conversation["messages"] if m["content"]]
    assert ("assistant", "Auf Wiederhören!") in said


async def test_hang_up_closes_the_model_socket_and_the_transcript_stays(
    server: LiveServer, db: Database, model: RealtimeStub, twilio: TwilioRest
) -> None:
    model.script = Script(
        greeting_chunks=1,
        turns=[Turn("Wann haben Sie geöffnet?", say="Montag bis Freitag von acht bis 18 Uhr.")],
    )
    call = await incoming_call(server, db, twilio)
    before = len(model.sessions)
    async with call.caller() as caller:
        session = await next_session(model, before)
        await caller.wait_for("mark", 1)
        await caller.speak()
        await caller.wait_for("mark", 2)  # the answer's, at its end
        await caller.stop()
        await session.ended()
        await caller.ended()

    conversation = await call.conversation(server)
    assert conversation["status"] == "ended"
    said = [(m["role"], m["content"]) for m in conversation["messages"] if m["content"]]
    assert said == [
        ("assistant", "Guten Tag, hier ist Lena von der Praxis. Wie kann ich helfen?"),
        ("user", "Wann haben Sie geöffnet?"),
        ("assistant", "Montag bis Freitag von acht bis 18 Uhr."),
    ]
    assert call.hang_ups(twilio) == []  # the caller hung up; nothing to end


async def test_keypad_digits_reach_the_model_as_text(
    server: LiveServer, db: Database, model: RealtimeStub, twilio: TwilioRest
) -> None:
    model.script = Script(greeting_chunks=1)
    call = await incoming_call(server, db, twilio)
    before = len(model.sessions)
    async with call.caller() as caller:
        session = await next_session(model, before)
        await caller.wait_for("mark", 1)
        await caller.dtmf("123#")
        created = (await session.wait_for("conversation.item.create"))[0]["item"]
        assert created["role"] == "user"
        assert "123" in created["content"][0]["text"]
        await session.wait_for("response.create", 2)
        await caller.stop()
        await session.ended()

    conversation = await call.conversation(server)
    said = [(m["role"], m["content"]) for m in conversation["messages"] if m["content"]]
    assert ("user", "DTMF: 123") in said


async def test_when_the_model_is_unavailable_the_call_ends(
    server: LiveServer, db: Database, model: RealtimeStub, twilio: TwilioRest
) -> None:
    call = await incoming_call(server, db, twilio)
    refused_before = model.refused
    model.refuse = True
    try:
        async with call.caller() as caller:
            await caller.ended()
    finally:
        model.refuse = False
    assert model.refused == refused_before + 1
    assert caller.close_code == WS_TRY_AGAIN_LATER and caller.received == []
    conversation = await call.conversation(server)
    assert conversation["status"] == "ended"
    assert conversation["end_reason"] == "model_unavailable"
    assert call.hang_ups(twilio) == [{"Status": "completed"}]


async def refused(call: IncomingCall, **options: Any) -> int | None:
    async with call.caller(**options) as caller:
        await caller.ended()
        return caller.close_code


async def test_unknown_unsigned_and_second_streams_are_refused(
    server: LiveServer, db: Database, model: RealtimeStub, twilio: TwilioRest
) -> None:
    model.script = Script(greeting_chunks=1)
    call = await incoming_call(server, db, twilio)
    other = await incoming_call(server, db, twilio)
    params = call.parameters
    before = len(model.sessions)

    unsigned = {k: v for k, v in params.items() if k != "token"}
    assert await refused(call, parameters=unsigned) == WS_POLICY_VIOLATION
    forged = {**params, "token": params["token"][:-4] + "0000"}
    assert await refused(call, parameters=forged) == WS_POLICY_VIOLATION
    # A genuine token of another call does not open this one.
    borrowed = {**params, "token": other.parameters["token"]}
    assert await refused(call, parameters=borrowed) == WS_POLICY_VIOLATION
    # Signed, but no such call.
    unknown = {**params, "call_id": "call_unknown", "token": stream_token("call_unknown")}
    assert await refused(call, parameters=unknown) == WS_POLICY_VIOLATION
    # The call's own parameters from another Twilio call.
    assert await refused(call, call_sid="CA" + "f" * 32) == WS_POLICY_VIOLATION
    assert len(model.sessions) == before  # no model was ever contacted

    async with call.caller() as caller:
        session = await next_session(model, before)
        await caller.wait_for("mark", 1)
        # A second stream for a call that has one.
        assert await refused(call) == WS_POLICY_VIOLATION
        await caller.stop()
        await session.ended()
    # Once over, the call takes no new stream.
    assert await refused(call) == WS_POLICY_VIOLATION
    assert len(model.sessions) == before + 1


async def test_a_stream_that_never_starts_properly_is_refused(server: LiveServer) -> None:
    import websockets

    url = server.url.replace("http://", "ws://") + "/twilio/media-stream"
    async with websockets.connect(url) as socket:
        await socket.send(json.dumps({"event": "connected", "protocol": "Call"}))
        await socket.send(json.dumps({"event": "media", "media": {"payload": "//8="}}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == WS_POLICY_VIOLATION
