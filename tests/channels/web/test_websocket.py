"""The conversation WebSocket, against a real uvicorn server with a real WebSocket client."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from demandly.kit.db import Database
from tests.conftest import LiveServer
from tests.conversations.conftest import agent_body
from tests.factories import make_tenant

API = "/api/v1"


async def published_agent(server: LiveServer, db: Database, **overrides: Any) -> str:
    tenant = await make_tenant(db)
    async with httpx.AsyncClient(
        base_url=server.url, headers=tenant.headers("agency_owner")
    ) as http:
        created = await http.post(
            f"{API}/agents", json=agent_body(tenant.clients[0].id, **overrides)
        )
        assert created.status_code == 201, created.text
        agent = created.json()
        assert (await http.post(f"{API}/agents/{agent['id']}/publish")).status_code == 200
    return agent["public_key"]


async def start(server: LiveServer, public_key: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url) as http:
        started = await http.post(
            f"{API}/public/agents/{public_key}/conversations", json={"consent": True}
        )
        assert started.status_code == 201, started.text
        return started.json()


def socket_url(server: LiveServer, started: dict[str, Any], token: str | None = None) -> str:
    base = server.url.replace("http://", "ws://")
    token = started["token"] if token is None else token
    return f"{base}{API}/public/conversations/{started['conversation_id']}/ws?token={token}"


async def until_done(socket: Any) -> list[dict[str, Any]]:
    events = []
    while True:
        event = json.loads(await socket.recv())
        events.append(event)
        if event["type"] in ("done", "resumed", "pong", "error"):
            return events


async def test_a_turn_over_the_socket(live_server: LiveServer, db: Database) -> None:
    started = await start(live_server, await published_agent(live_server, db))
    async with websockets.connect(socket_url(live_server, started)) as socket:
        assert json.loads(await socket.recv()) == {"type": "ready", "status": "active"}
        await socket.send(
            json.dumps({"type": "message", "text": "Hallo", "client_message_id": "w1"})
        )
        events = await until_done(socket)
        kinds = [e["type"] for e in events]
        assert kinds[0] == "message" and events[0]["message"]["role"] == "user"
        assert "delta" in kinds and kinds[-1] == "done"
        reply = [e["message"] for e in events if e["type"] == "message"][-1]
        assert reply["role"] == "assistant" and reply["content"]

        # A dropped connection comes back and asks for what it missed.
        await socket.send(json.dumps({"type": "resume", "after_seq": 1}))
        replayed = await until_done(socket)
        assert [e["message"]["seq"] for e in replayed[:-1]] == [2, reply["seq"]]
        await socket.send(json.dumps({"type": "ping"}))
        assert json.loads(await socket.recv()) == {"type": "pong"}

        # The same message again (a retry) is not stored twice.
        await socket.send(
            json.dumps({"type": "message", "text": "Hallo", "client_message_id": "w1"})
        )
        again = await until_done(socket)
        assert [e["message"]["id"] for e in again if e["type"] == "message"] == [
            events[0]["message"]["id"],
            reply["id"],
        ]


async def test_bad_frames_get_errors_and_the_socket_stays(
    live_server: LiveServer, db: Database
) -> None:
    started = await start(live_server, await published_agent(live_server, db))
    async with websockets.connect(socket_url(live_server, started)) as socket:
        await socket.recv()
        for frame in (
            "not json",
            json.dumps({"type": "shout"}),
            json.dumps({"type": "message", "text": " "}),
        ):
            await socket.send(frame)
            error = json.loads(await socket.recv())
            assert error["type"] == "error" and error["code"] == "validation_error"
        await socket.send(json.dumps({"type": "message", "text": "x" * 4001}))
        assert json.loads(await socket.recv())["field"] == "text"
        await socket.send(json.dumps({"type": "ping"}))
        assert json.loads(await socket.recv()) == {"type": "pong"}


async def test_a_wrong_token_or_website_is_refused(live_server: LiveServer, db: Database) -> None:
    key = await published_agent(
        live_server, db, widget={"allowed_origins": ["https://praxis.example"]}
    )
    started = await start(live_server, key)
    with pytest.raises(InvalidStatus):
        async with websockets.connect(socket_url(live_server, started, token="vt_wrong")):
            pass
    with pytest.raises(InvalidStatus):
        async with websockets.connect(
            socket_url(live_server, started), origin="https://evil.example"
        ):
            pass
    async with websockets.connect(
        socket_url(live_server, started), origin="https://praxis.example"
    ) as ok:
        assert json.loads(await ok.recv())["type"] == "ready"
