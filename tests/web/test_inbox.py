"""The live inbox: the list and its filters, the event stream, the transcript, and taking
over, answering and handing back from the dashboard."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from demandly.conversations import service
from demandly.conversations.models import Channel, Conversation, Message
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.tenancy.models import User
from demandly.web.screens import inbox as inbox_screen
from tests.conversations.conftest import PublishedAgent, publish_agent, say, start
from tests.factories import Tenant, make_tenant
from tests.web.support import browser, sign_in


@pytest.fixture
async def visitor(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    """A visitor with an address of its own (the public API limits starts per address)."""
    address = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def inbox_url(tenant: Tenant, suffix: str = "") -> str:
    return f"/app/clients/{tenant.clients[0].id}/inbox{suffix}"


async def started_by_service(db: Database, agent: PublishedAgent, channel: Channel) -> str:
    """A conversation started without the public API (no rate limit), as a phone call would."""
    async with db.session(Scope.for_system()) as session:
        from demandly.agents.models import Agent

        row = await session.get(Agent, agent.id)
        assert row is not None and row.current_version_id
        conversation, _, _ = await service.start(
            session,
            agency_id=agent.tenant.agency.id,
            client_id=agent.tenant.clients[0].id,
            agent_id=agent.id,
            agent_version_id=row.current_version_id,
            channel=channel,
            language="de",
            greeting="Praxis Sommer, guten Tag.",
            consent=True,
        )
        await session.commit()
        return conversation.id


async def test_the_inbox_lists_conversations_and_filters_narrow_them(
    app, db: Database, client: httpx.AsyncClient, visitor: httpx.AsyncClient
) -> None:  # type: ignore[no-untyped-def]
    agent = await publish_agent(client, await make_tenant(db))
    web = await start(visitor, agent.public_key)
    await say(visitor, web, "Bieten Sie Zahnreinigung an?")
    phone = await started_by_service(db, agent, Channel.PHONE)
    async with browser(app) as page:
        await sign_in(page, agent.tenant.users["client_viewer"])
        listing = await page.get(inbox_url(agent.tenant))
        assert listing.status_code == 200
        assert web["conversation_id"] in listing.text and phone in listing.text
        assert "Zahnreinigung" in listing.text  # the last message as preview
        assert 'sse-connect="' + inbox_url(agent.tenant, "/stream") in listing.text
        # Newest activity first: the phone call started last.
        assert listing.text.index(phone) < listing.text.index(web["conversation_id"])

        phones = await page.get(inbox_url(agent.tenant), params={"channel": "phone"})
        assert phone in phones.text and web["conversation_id"] not in phones.text
        ended = await page.get(inbox_url(agent.tenant), params={"status": "ended"})
        assert phone not in ended.text and "No conversations yet." in ended.text
        by_agent = await page.get(inbox_url(agent.tenant), params={"agent_id": agent.id})
        assert phone in by_agent.text
        future = await page.get(inbox_url(agent.tenant), params={"since": "2999-01-01"})
        assert phone not in future.text

        wrong = await page.get(inbox_url(agent.tenant), params={"since": "yesterday"})
        assert wrong.status_code == 422
        assert "Enter a date such as 2026-03-31." in wrong.text


async def test_the_inbox_pages_by_fifty(app, db: Database, client: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    agent = await publish_agent(client, await make_tenant(db))
    ids = [await started_by_service(db, agent, Channel.TEST) for _ in range(52)]
    async with browser(app) as page:
        await sign_in(page, agent.tenant.users["client_member"])
        first = await page.get(inbox_url(agent.tenant))
        assert first.text.count("data-conversation=") == 50
        assert ids[-1] in first.text and ids[0] not in first.text
        next_url = first.text.split('class="pager"')[1].split('href="')[1].split('"')[0]
        second = await page.get(next_url.replace("&amp;", "&"))
        assert second.status_code == 200
        assert second.text.count("data-conversation=") == 2
        assert ids[0] in second.text and ids[1] in second.text
        assert "sse-connect" not in second.text  # only the first page is live


# --- the event stream ----------------------------------------------------------------------


class Stream:
    """A streaming GET driven straight through ASGI (httpx's ASGI transport buffers the whole
    body), so that a test reads events as they come and then hangs up."""

    def __init__(self, app: Any, path: str, cookies: httpx.Cookies) -> None:
        self.app, self.path = app, path
        self.cookie = "; ".join(f"{name}={value}" for name, value in cookies.items())
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.hung_up = asyncio.Event()
        self.requested = False
        self.text = ""
        self.status = 0

    async def __aenter__(self) -> Stream:
        path, _, query = self.path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [
                (b"host", b"testserver"),
                (b"accept", b"text/event-stream"),
                (b"cookie", self.cookie.encode()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        self.task = asyncio.create_task(self.app(scope, self._receive, self._send))
        start = await asyncio.wait_for(self.messages.get(), 10)
        self.status = start["status"]
        self.headers = {k.decode(): v.decode() for k, v in start["headers"]}
        return self

    async def _receive(self) -> dict[str, Any]:
        if not self.requested:
            self.requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.hung_up.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        await self.messages.put(message)

    async def read_until(self, found: Callable[[str], bool], seconds: float = 15) -> str:
        async def read() -> str:
            while not found(self.text):
                message = await self.messages.get()
                self.text += message.get("body", b"").decode()
                if not message.get("more_body", False):
                    break
            return self.text

        return await asyncio.wait_for(read(), seconds)

    async def __aexit__(self, *exc: object) -> None:
        self.hung_up.set()
        await asyncio.wait_for(self.task, 10)  # the stream ends when the browser hangs up


async def test_the_stream_sends_a_conversation_started_after_it_opened(
    app, db: Database, client: httpx.AsyncClient, visitor: httpx.AsyncClient
) -> None:  # type: ignore[no-untyped-def]
    agent = await publish_agent(client, await make_tenant(db))
    async with browser(app) as page:
        await sign_in(page, agent.tenant.users["client_viewer"])
        async with Stream(app, inbox_url(agent.tenant, "/stream"), page.cookies) as stream:
            assert stream.status == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            await stream.read_until(lambda text: "retry:" in text)
            started = await start(visitor, agent.public_key)
            text = await stream.read_until(lambda text: started["conversation_id"] in text)
        assert "event: conversation" in text
        assert f'data-conversation="{started["conversation_id"]}"' in text


async def test_a_stream_ends_when_the_user_signs_out(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as page:
        token = await sign_in(page, tenant.users["client_member"])
        async with Stream(app, inbox_url(tenant, "/stream"), page.cookies) as stream:
            await stream.read_until(lambda text: "retry:" in text)
            async with browser(app) as other:
                other.cookies = page.cookies
                out = await other.post("/logout", data={"csrf_token": token})
                assert out.status_code == 303
            text = await stream.read_until(lambda text: "event: close" in text)
        assert "event: close" in text


async def test_the_transcript_stream_sends_new_messages_and_status_changes(
    app, db: Database, client: httpx.AsyncClient, visitor: httpx.AsyncClient
) -> None:  # type: ignore[no-untyped-def]
    agent = await publish_agent(client, await make_tenant(db))
    started = await start(visitor, agent.public_key)
    url = inbox_url(agent.tenant, f"/{started['conversation_id']}")
    async with browser(app) as page:
        token = await sign_in(page, agent.tenant.users["client_member"])
        async with Stream(app, f"{url}/stream", page.cookies) as stream:
            await stream.read_until(lambda text: "retry:" in text)
            await say(visitor, started, "Haben Sie morgen einen Termin frei?")
            text = await stream.read_until(lambda text: "morgen einen Termin" in text)
            assert "event: message" in text
            taken = await page.post(f"{url}/takeover", data={"csrf_token": token})
            assert taken.status_code == 303
            text = await stream.read_until(lambda text: "event: status" in text)
        status = text.split("event: status", 1)[1]
        assert "Handed off" in status and "/release" in status


async def test_a_quiet_stream_sends_keep_alives(app, db: Database, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(inbox_screen, "KEEPALIVE_SECONDS", 0.3)
    monkeypatch.setattr(inbox_screen, "POLL_SECONDS", 0.1)
    tenant = await make_tenant(db)
    async with browser(app) as page:
        await sign_in(page, tenant.users["client_viewer"])
        async with Stream(app, inbox_url(tenant, "/stream"), page.cookies) as stream:
            text = await stream.read_until(lambda text: ": keep-alive" in text)
    assert "event:" not in text


# --- the transcript and its actions --------------------------------------------------------


async def test_take_over_reply_and_release_from_the_transcript(
    app, db: Database, client: httpx.AsyncClient, visitor: httpx.AsyncClient
) -> None:  # type: ignore[no-untyped-def]
    agent = await publish_agent(client, await make_tenant(db))
    started = await start(visitor, agent.public_key)
    await say(visitor, started, "Ich möchte mit einem Menschen sprechen.")
    url = inbox_url(agent.tenant, f"/{started['conversation_id']}")
    async with browser(app) as page:
        token = await sign_in(page, agent.tenant.users["client_member"])
        shown = await page.get(url)
        assert shown.status_code == 200
        assert "Ich möchte mit einem Menschen sprechen." in shown.text
        if "/takeover" in shown.text:
            taken = await page.post(f"{url}/takeover", data={"csrf_token": token})
            assert taken.status_code == 303 and taken.headers["location"] == url
        after = await page.get(url)
        assert "Handed off" in after.text and "/release" in after.text

        blank = await page.post(f"{url}/reply", data={"csrf_token": token, "text": "  "})
        assert blank.status_code == 422
        assert "This field is required." in blank.text
        answered = await page.post(
            f"{url}/reply", data={"csrf_token": token, "text": "Hier ist Frau Sommer."}
        )
        assert answered.status_code == 303
        transcript = await page.get(url)
        assert "Hier ist Frau Sommer." in transcript.text
        assert "Reply sent." in transcript.text
        assert 'class="msg staff"' in transcript.text

        released = await page.post(f"{url}/release", data={"csrf_token": token})
        assert released.status_code == 303
        again = await page.post(f"{url}/release", data={"csrf_token": token})
        assert again.status_code == 409
        assert "The conversation is not handed off." in again.text

    visible = await visitor.get(
        f"/api/v1/public/conversations/{started['conversation_id']}/messages",
        headers={"Authorization": f"Bearer {started['token']}"},
    )
    assert visible.json()["messages"][-1]["content"] == "Hier ist Frau Sommer."
    async with db.session(Scope.for_system()) as session:
        status = await session.scalar(
            select(Conversation.status).where(Conversation.id == started["conversation_id"])
        )
        author = await session.scalar(
            select(Message.author_user_id).where(
                Message.conversation_id == started["conversation_id"], Message.role == "human"
            )
        )
        member = await session.get(User, agent.tenant.users["client_member"].id)
    assert status == "active"
    assert member is not None and author == member.id


async def test_a_viewer_sees_no_buttons_and_may_not_act(
    app, db: Database, client: httpx.AsyncClient, visitor: httpx.AsyncClient
) -> None:  # type: ignore[no-untyped-def]
    agent = await publish_agent(client, await make_tenant(db))
    started = await start(visitor, agent.public_key)
    url = inbox_url(agent.tenant, f"/{started['conversation_id']}")
    async with browser(app) as page:
        token = await sign_in(page, agent.tenant.users["client_viewer"])
        shown = await page.get(url)
        assert shown.status_code == 200
        assert "Take over" not in shown.text and "Send reply" not in shown.text
        for action, data in (("takeover", {}), ("reply", {"text": "Hallo"}), ("release", {})):
            refused = await page.post(f"{url}/{action}", data={"csrf_token": token, **data})
            assert refused.status_code == 403, action


async def test_another_agencys_conversation_is_not_found(
    app, db: Database, client: httpx.AsyncClient, visitor: httpx.AsyncClient
) -> None:  # type: ignore[no-untyped-def]
    agent = await publish_agent(client, await make_tenant(db))
    started = await start(visitor, agent.public_key)
    stranger = await make_tenant(db)
    async with browser(app) as page:
        token = await sign_in(page, stranger.users["agency_owner"])
        theirs = inbox_url(agent.tenant, f"/{started['conversation_id']}")
        assert (await page.get(theirs)).status_code == 404
        assert (await page.get(inbox_url(agent.tenant))).status_code == 404
        # Their conversation under our own client's address is not found either.
        ours = inbox_url(stranger, f"/{started['conversation_id']}")
        response = await page.get(ours)
        assert response.status_code == 404
        assert "Bieten Sie" not in response.text
        taken = await page.post(f"{ours}/takeover", data={"csrf_token": token})
        assert taken.status_code == 404
        assert (await page.get(f"{ours}/stream")).status_code == 404


async def test_the_inbox_speaks_german(app, db: Database, client: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    agent = await publish_agent(client, await make_tenant(db))
    await started_by_service(db, agent, Channel.PHONE)
    async with browser(app) as page:
        token = await sign_in(page, agent.tenant.users["client_member"])
        await page.post("/app/language", data={"lang": "de", "next": "/app", "csrf_token": token})
        listing = await page.get(inbox_url(agent.tenant))
    assert "Posteingang" in listing.text
    assert "Letzte Nachricht" in listing.text
    assert "Telefon" in listing.text and "Aktiv" in listing.text
