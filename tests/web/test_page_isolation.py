"""Walks every dashboard route (every route of the ``PageRoute`` class, so screens added later
are walked too) with another agency's owner, filling each path parameter with ids of the
victim's rows, and proves that nothing of the victim comes back, nothing of it changes, and
nothing answers with a server error. The victim is the demo agency with its week of history,
so nearly every tenant table holds rows to aim at."""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict

import httpx
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from demandly.bootstrap import DEMO_LOGINS, DEMO_SLUG, _seed
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.tenancy.models import Client
from demandly.tenancy.repository import TenancyRepository
from demandly.web.deps import PageRoute
from tests.factories import make_tenant
from tests.test_tenant_isolation import fingerprint, tenant_rows
from tests.web.support import browser, csrf_of, sign_in

PARAM = re.compile(r"{(\w+)(?::\w+)?}")
# Routes that end the walker's own session, or are public by design (a token is the key).
SKIPPED = re.compile(
    r"^/(logout|login|password/|invitations/|brand-assets/|app/account/sessions/end-all)"
)
STATUS_REFUSED = {403, 404, 405, 410, 422}


def page_routes(app: FastAPI) -> list[tuple[str, str]]:
    routes = []
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, PageRoute) and not SKIPPED.match(route.path):
            for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
                routes.append((method, route.path))
    return routes


def test_the_walk_covers_the_dashboard(app: FastAPI) -> None:
    paths = {path for _, path in page_routes(app)}
    for screen in ("agents", "inbox", "leads", "calendar", "knowledge", "phone", "settings"):
        assert any(f"/app/clients/{{client_id}}/{screen}" in path for path in paths), screen
    assert {"/app", "/app/team", "/app/settings", "/app/audit", "/app/account"} <= paths


async def victim(db: Database) -> tuple[str, list[str], dict[str, list[str]]]:
    """The demo agency: its id, its clients' names, and ids of its rows by id prefix."""
    await _seed(db)
    async with db.session(Scope.for_system()) as session:
        agency = await TenancyRepository(session).agency_by_slug(DEMO_SLUG)
        assert agency is not None
        clients = (
            (await session.execute(TenancyRepository(session).clients(agency.id))).scalars().all()
        )
        names = [client.name for client in clients if isinstance(client, Client)]
        agency_id = agency.id
    by_prefix: dict[str, list[str]] = defaultdict(list)
    for row in await tenant_rows(db, agency_id):
        prefix = row.id.split("_", 1)[0]
        if len(by_prefix[prefix]) < 2:
            by_prefix[prefix].append(row.id)
    return agency_id, names, by_prefix


def fillings(path: str, ids: dict[str, list[str]]) -> list[str]:
    """The path with its parameters filled by the victim's ids: the client parameter with
    each victim client, every other one with each of a few ids of every victim table."""
    params = PARAM.findall(path)
    if not params:
        return [path]
    candidates = [id_ for values in ids.values() for id_ in values]
    filled = []
    for client_id in ids["cli"] if "client_id" in params else [""]:
        for other in candidates if set(params) - {"client_id"} else [""]:
            url = path
            for name in params:
                url = url.replace(f"{{{name}}}", client_id if name == "client_id" else other)
            filled.append(url)
    return filled


async def test_another_agency_reaches_nothing_of_the_victim(app: FastAPI, db: Database) -> None:
    agency_id, names, ids = await victim(db)
    attacker = await make_tenant(db)
    before = await fingerprint(db, agency_id)
    leaks: list[str] = []
    async with browser(app) as client:
        token = await sign_in(client, attacker.users["agency_owner"])
        for method, path in page_routes(app):
            for url in fillings(path, ids):
                response = await _call(client, method, url, token)
                leaks += _problems(method, path, url, response, names)
    assert leaks == []
    assert await fingerprint(db, agency_id) == before


async def test_a_client_admin_reaches_nothing_of_another_client(app: FastAPI, db: Database) -> None:
    agency_id, _, ids = await victim(db)
    clients = {row.id for row in await tenant_rows(db, agency_id) if row.table == "clients"}
    login = next(login for login in DEMO_LOGINS if login.role == "client_admin")
    async with browser(app) as client:
        response = await client.post(
            "/login", data={"email": login.email, "password": login.password}
        )
        assert response.status_code == 303
        home = await client.get("/app")
        token = csrf_of(home.text)
        own = set(re.findall(r"/app/clients/(cli_[a-z0-9]+)/", home.text))
        foreign = sorted(clients - own)
        assert own and foreign, "the demo's client admin sits on one of two clients"
        problems: list[str] = []
        for method, path in page_routes(app):
            if "{client_id}" not in path:
                continue
            for url in fillings(path, {**ids, "cli": foreign}):
                response = await _call(client, method, url, token)
                if response.status_code not in STATUS_REFUSED:
                    problems.append(f"{method} {url}: {response.status_code}")
    assert problems == []


async def _call(client: httpx.AsyncClient, method: str, url: str, token: str) -> httpx.Response:
    # A stream that answered 200 would never end: a timeout counts as a leak.
    try:
        return await asyncio.wait_for(
            client.request(method, url, data={"csrf_token": token} if method == "POST" else None),
            timeout=20,
        )
    except TimeoutError:
        return httpx.Response(599, text="timed out")


def _problems(
    method: str, path: str, url: str, response: httpx.Response, names: list[str]
) -> list[str]:
    found = []
    if response.status_code >= 500:
        found.append(f"{method} {url}: {response.status_code}")
    elif PARAM.search(path) is None:
        pass  # the attacker's own pages and actions (home, team …): checked for names below
    elif response.status_code not in STATUS_REFUSED:
        found.append(f"{method} {url}: {response.status_code}")
    for name in names:
        if name in response.text:
            found.append(f"{method} {url}: shows {name!r}")
    return found
