"""Walks every route in the app's route table with the credentials of another agency and of a
lower role, and proves that no foreign data ever comes back and nothing foreign changes.

Nothing here names a route: routes added later are walked too. The victim's data is made
generically: every collection POST is called as the victim's owner with a body generated from
its schema, then every row the victim agency owns in any tenant table becomes a target.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import select

from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.models import Base
from tests.factories import Tenant, make_tenant

API = "/api/v1"
PARAM = re.compile(r"{(\w+)(?::\w+)?}")
# Routes that end the caller's own credentials would stop the walk early.
SELF_ENDING = re.compile(r"/auth/(logout|logout-all)$")


@dataclass(frozen=True)
class Row:
    table: str
    id: str
    client_id: str | None


def api_routes(app: FastAPI) -> list[tuple[str, str, Any]]:
    """(method, full path, route) for every API route, including those of included routers."""
    walked = []
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute) and (route.path or "").startswith(API):
            for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
                walked.append((method, route.path, route))
    return walked


def test_the_walk_sees_the_whole_route_table(app: FastAPI) -> None:
    walked = {(method, path) for method, path, _ in api_routes(app)}
    documented = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if path.startswith(API)
    }
    assert documented and documented <= walked


async def tenant_rows(db: Database, agency_id: str) -> list[Row]:
    rows: list[Row] = []
    async with db.session(Scope.for_system()) as session:
        for mapper in Base.registry.mappers:
            cls = mapper.class_
            if not getattr(cls, "__tenant__", False):
                continue
            owner_col = cls.id if cls.__tablename__ == "agencies" else cls.agency_id
            for obj in (await session.execute(select(cls).where(owner_col == agency_id))).scalars():
                _, client_id = obj.tenant_owner()
                rows.append(Row(cls.__tablename__, str(obj.id), client_id))
    return rows


async def fingerprint(db: Database, agency_id: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    async with db.session(Scope.for_system()) as session:
        for mapper in Base.registry.mappers:
            cls = mapper.class_
            if not getattr(cls, "__tenant__", False) or not hasattr(cls, "updated_at"):
                continue
            owner_col = cls.id if cls.__tablename__ == "agencies" else cls.agency_id
            found = await session.execute(
                select(cls.id, cls.updated_at).where(owner_col == agency_id)
            )
            result[cls.__tablename__] = sorted((r.id, str(r.updated_at)) for r in found)
    return result


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[1]]
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        schema = _resolve(options[0], defs) if options else {"type": "null"}
    return schema


def example_value(
    name: str, schema: dict[str, Any], defs: dict[str, Any], ids: dict[str, str]
) -> Any:
    schema = _resolve(schema, defs)
    if name in ids:
        return ids[name]
    if "enum" in schema:
        # The humblest role fits a client place, which is where bodies point (one_place).
        return "client_viewer" if "client_viewer" in schema["enum"] else schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    kind = schema.get("type")
    if kind == "string":
        fmt = schema.get("format", "")
        if fmt == "email" or "email" in name:
            return f"walker-{name}@example.com"
        if fmt in ("uri", "url") or name.endswith("url"):
            return "https://example.test/"
        if fmt == "date-time":
            return "2030-01-01T10:00:00Z"
        if "color" in name or "colour" in name:
            return "#336699"
        if name in ("timezone", "time_zone"):
            return "Europe/Berlin"
        if name == "locale" or name == "language":
            return "de"
        if name == "domain":
            return "walker.example.test"
        if "password" in name:
            return "walker tenant isolation 2026!"
        value = f"walker {name}"
        return value[: schema.get("maxLength", 64)].ljust(schema.get("minLength", 0), "x")
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    if kind == "object":
        required = schema.get("required", [])
        props = schema.get("properties", {})
        return {key: example_value(key, props[key], defs, ids) for key in required if key in props}
    return None


def example_body(app: FastAPI, route: Any, ids: dict[str, str]) -> dict[str, Any] | None:
    if route.body_field is None:
        return None
    openapi = app.openapi()
    defs = openapi.get("components", {}).get("schemas", {})
    operation = openapi["paths"][route.path]
    for method_spec in operation.values():
        if method_spec.get("operationId") == route.unique_id:
            content = method_spec.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                schema = _resolve(content["application/json"]["schema"], defs)
                props = schema.get("properties", {})
                body = example_value("body", schema, defs, ids) or {}
                # Fill every optional id-like field too: a foreign id anywhere must not pass.
                for key in props:
                    if key in ids:
                        body[key] = ids[key]
                return body
    return {}


def one_place(body: dict[str, Any] | None) -> dict[str, Any] | None:
    """Bodies that take ``agency_id|client_id`` want one of the two: the client, the deeper."""
    if body is not None and body.get("client_id") and "agency_id" in body:
        body = {k: v for k, v in body.items() if k != "agency_id"}
    return body


def query_params(route: Any, ids: dict[str, str]) -> dict[str, str]:
    return {p.name: ids[p.name] for p in route.dependant.query_params if p.name in ids}


async def seed_victim(app: FastAPI, client: httpx.AsyncClient, victim: Tenant) -> None:
    """Every collection create, called once by the victim's owner, to fill as many tables
    as the API can."""
    ids = {"agency_id": victim.agency.id, "client_id": victim.clients[1].id}
    for method, path, route in api_routes(app):
        if method != "POST" or PARAM.search(path) or SELF_ENDING.search(path):
            continue
        body = one_place(example_body(app, route, ids))
        await client.request(
            method,
            path,
            json=body,
            params=query_params(route, ids),
            headers=victim.headers("agency_owner"),
        )


def foreign_for_client_user(rows: list[Row], own_client: str) -> list[Row]:
    """What a client user of the same agency must not see: other clients' rows and the
    agency's own rows (the agency record itself, its brand, is theirs to see)."""
    return [r for r in rows if r.table != "agencies" and r.client_id != own_client]


def one_per_table(rows: list[Row]) -> list[Row]:
    seen: dict[str, Row] = {}
    for row in rows:
        seen.setdefault(row.table, row)
    return list(seen.values())


async def walk(
    app: FastAPI,
    client: httpx.AsyncClient,
    headers: dict[str, str],
    foreign: list[Row],
    id_params: dict[str, str],
) -> list[str]:
    """Returns the list of violations (empty when isolation holds)."""
    violations: list[str] = []
    foreign_ids = {r.id for r in foreign}
    for method, path, route in api_routes(app):
        if SELF_ENDING.search(path):
            continue
        params = PARAM.findall(path)
        targets = one_per_table(foreign) if params else [None]
        for target in targets:
            url = PARAM.sub(target.id, path) if target else path
            body = one_place(example_body(app, route, id_params))
            response = await client.request(
                method, url, json=body, params=query_params(route, id_params), headers=headers
            )
            where = f"{method} {url} -> {response.status_code}"
            if os.environ.get("WALK_DEBUG"):
                print(where)
            if response.status_code >= 500:
                violations.append(f"server error: {where}")
            if target is not None and 200 <= response.status_code < 300:
                violations.append(f"foreign {target.table} reached: {where}")
            leaked = [i for i in foreign_ids if i in response.text]
            if leaked:
                violations.append(f"foreign ids in body: {where}: {leaked[:3]}")
    return violations


@pytest.fixture
async def victim(db: Database, app: FastAPI, client: httpx.AsyncClient) -> Tenant:
    tenant = await make_tenant(db)
    await seed_victim(app, client, tenant)
    return tenant


async def test_another_agency_reaches_nothing(
    app: FastAPI, client: httpx.AsyncClient, db: Database, victim: Tenant
) -> None:
    attacker = await make_tenant(db)
    rows = await tenant_rows(db, victim.agency.id)
    tables = {r.table for r in rows}
    assert {"agencies", "clients", "memberships", "api_keys"} <= tables
    before = await fingerprint(db, victim.agency.id)
    id_params = {"agency_id": victim.agency.id, "client_id": victim.clients[0].id}
    for role in ("agency_owner", "client_admin"):
        violations = await walk(app, client, attacker.headers(role), rows, id_params)
        assert violations == [], "\n".join(violations)
    assert await fingerprint(db, victim.agency.id) == before


async def test_a_client_user_reaches_nothing_of_other_clients(
    app: FastAPI, client: httpx.AsyncClient, db: Database, victim: Tenant
) -> None:
    rows = await tenant_rows(db, victim.agency.id)
    own = victim.clients[0].id
    foreign = foreign_for_client_user(rows, own)
    assert any(r.client_id == victim.clients[1].id for r in foreign)
    before = await fingerprint(db, victim.agency.id)
    id_params = {"agency_id": victim.agency.id, "client_id": victim.clients[1].id}
    for role in ("client_viewer", "client_admin"):
        violations = await walk(app, client, victim.headers(role), foreign, id_params)
        assert violations == [], "\n".join(violations)
    after = await fingerprint(db, victim.agency.id)
    foreign_ids = {r.id for r in foreign}
    changed = {
        table: [
            row
            for row in after[table]
            if row not in before.get(table, []) and row[0] in foreign_ids
        ]
        for table in after
    }
    assert all(not rows for rows in changed.values()), changed
