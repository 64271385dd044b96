"""Helpers for the tenancy tests: signing users in (platform admins have no API keys) and a
tiny DNS server on 127.0.0.1 that answers TXT queries from a dict."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import httpx
import pytest

from demandly.app import create_app
from demandly.config import Settings
from demandly.kit.db import Database
from tests.factories import login_headers


@pytest.fixture
async def admin(world, client: httpx.AsyncClient) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Headers of a signed-in platform administrator."""
    return await login_headers(client, world.platform_admin)


@dataclass
class DnsServer:
    address: str
    txt: dict[str, list[str]] = field(default_factory=dict)
    refused: set[str] = field(default_factory=set)
    queries: list[str] = field(default_factory=list)


class _Responder(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        self.server.queries.append(name)
        values = self.server.txt.get(name)
        if name in self.server.refused:
            response.set_rcode(dns.rcode.REFUSED)
        elif values is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT:
            response.answer.append(
                dns.rrset.from_text_list(
                    question.name, 60, "IN", "TXT", [f'"{value}"' for value in values]
                )
            )
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


@pytest.fixture
async def dns_server() -> AsyncIterator[DnsServer]:
    """An authoritative-style UDP DNS server on 127.0.0.1 serving ``txt``."""
    loop = asyncio.get_running_loop()
    server = DnsServer(address="")
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Responder(server), local_addr=("127.0.0.1", 0)
    )
    host, port = transport.get_extra_info("sockname")[:2]
    server.address = f"{host}:{port}"
    try:
        yield server
    finally:
        transport.close()


@pytest.fixture
async def dns_client(
    settings: Settings, db: Database, dns_server: DnsServer
) -> AsyncIterator[httpx.AsyncClient]:
    """An API client whose app resolves through ``dns_server`` (DEMANDLY_DNS_NAMESERVER)."""
    app = create_app(settings.model_copy(update={"dns_nameserver": dns_server.address}), db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
