from __future__ import annotations

from demandly.kit.db import Database
from tests.auth.helpers import browser, sign_in


async def test_me_lists_the_users_memberships(app, db: Database, world) -> None:  # type: ignore[no-untyped-def]
    member = world.a.users["agency_member"]
    async with browser(app) as http:
        await sign_in(http, member.email)
        body = (await http.get("/api/v1/me")).json()
    assert body["api_key"] is None
    assert body["user"]["id"] == member.id and body["user"]["email"] == member.email
    assert body["user"]["totp_enabled"] is False and body["user"]["is_platform_admin"] is False
    [membership] = body["memberships"]
    assert membership["role"] == "agency_member"
    assert membership["agency_id"] == world.a.agency.id and membership["client_id"] is None
    assert membership["assigned_client_ids"] == [world.a.clients[0].id]
    assert membership["id"].startswith("mem_")


async def test_me_for_client_users_and_platform_admins(app, world) -> None:  # type: ignore[no-untyped-def]
    viewer = world.a.users["client_viewer"]
    async with browser(app) as http:
        await sign_in(http, viewer.email)
        [membership] = (await http.get("/api/v1/me")).json()["memberships"]
    assert membership["client_id"] == world.a.clients[0].id
    assert membership["role"] == "client_viewer" and membership["assigned_client_ids"] == []
    async with browser(app) as http:
        await sign_in(http, world.platform_admin.email)
        body = (await http.get("/api/v1/me")).json()
    assert body["user"]["is_platform_admin"] is True and body["memberships"] == []
