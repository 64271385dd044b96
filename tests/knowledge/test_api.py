"""The knowledge API: bases and sources, validation, upload limits, tenants."""

from __future__ import annotations

import httpx
import pytest

from demandly.app import create_app
from demandly.config import Settings
from demandly.kit.db import Database
from tests.factories import Tenant, World
from tests.knowledge.conftest import API, add_source, create_base, run_jobs, search, sources, upload


async def test_a_base_is_created_listed_renamed_and_deleted(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    base = await create_base(client, tenant, "de")
    assert base["language"] == "de" and base["client_id"] == tenant.clients[0].id
    headers = tenant.headers("client_viewer")
    listed = await client.get(
        f"{API}/knowledge-bases", params={"client_id": tenant.clients[0].id}, headers=headers
    )
    assert [b["id"] for b in listed.json()["items"]] == [base["id"]]

    owner = tenant.headers("agency_owner")
    patched = await client.patch(
        f"{API}/knowledge-bases/{base['id']}", json={"name": "Praxis-Wissen"}, headers=owner
    )
    assert patched.status_code == 200 and patched.json()["name"] == "Praxis-Wissen"
    assert (
        await client.delete(f"{API}/knowledge-bases/{base['id']}", headers=owner)
    ).status_code == 204
    gone = await client.get(f"{API}/knowledge-bases/{base['id']}", headers=owner)
    assert gone.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "text", "title": "x"},
        {"kind": "text", "title": "x", "text": ""},
        {"kind": "qa", "title": "x", "pairs": []},
        {"kind": "url", "url": "ftp://example.com/file"},
        {"kind": "website", "url": "https://example.com", "limits": {"max_pages": 0}},
        {"kind": "video", "title": "x"},
        {"kind": "text", "title": "x", "text": "y", "extra": 1},
    ],
)
async def test_bad_sources_are_refused_with_the_field(
    client: httpx.AsyncClient, tenant: Tenant, body: dict
) -> None:
    base = await create_base(client, tenant)
    response = await client.post(
        f"{API}/knowledge-bases/{base['id']}/sources",
        json=body,
        headers=tenant.headers("agency_owner"),
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["message"]


async def test_malformed_json_and_empty_uploads_are_refused(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    base = await create_base(client, tenant)
    url = f"{API}/knowledge-bases/{base['id']}/sources"
    owner = tenant.headers("agency_owner")
    broken = await client.post(
        url, content=b"{not json", headers={**owner, "content-type": "application/json"}
    )
    assert broken.status_code == 422
    empty = await upload(client, tenant, base["id"], "leer.txt", b"")
    assert empty.status_code == 400
    wrong_field = await client.post(url, files={"document": ("a.txt", b"hallo")}, headers=owner)
    assert wrong_field.status_code == 400


async def test_a_viewer_may_search_but_not_add_sources(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    base = await create_base(client, tenant)
    response = await client.post(
        f"{API}/knowledge-bases/{base['id']}/sources",
        json={"kind": "text", "title": "t", "text": "Hallo"},
        headers=tenant.headers("client_viewer"),
    )
    assert response.status_code == 403
    assert await search(client, tenant, base["id"], "Hallo") == []


async def test_another_agency_gets_404_everywhere(
    client: httpx.AsyncClient, tenant: Tenant, world: World, db: Database
) -> None:
    base = await create_base(client, tenant)
    source = await add_source(
        client, tenant, base["id"], {"kind": "text", "title": "Preise", "text": "Füllung 80 €"}
    )
    await run_jobs(db)
    foreign = world.b.headers("agency_owner")
    kb = f"{API}/knowledge-bases/{base['id']}"
    calls = [
        ("GET", kb, None),
        ("PATCH", kb, {"name": "x"}),
        ("GET", f"{kb}/sources", None),
        ("POST", f"{kb}/sources", {"kind": "text", "title": "t", "text": "x"}),
        ("POST", f"{kb}/search", {"query": "Füllung"}),
        ("POST", f"{kb}/sources/{source['id']}/refresh", None),
        ("DELETE", f"{kb}/sources/{source['id']}", None),
        ("DELETE", kb, None),
    ]
    for method, url, body in calls:
        response = await client.request(method, url, json=body, headers=foreign)
        assert response.status_code == 404, (method, url, response.status_code)
    listed = await client.get(f"{API}/knowledge-bases", headers=foreign)
    assert base["id"] not in listed.text
    # The other client of the same agency is foreign to a client user too.
    other = await create_base(client, tenant, client_index=1)
    denied = await client.get(
        f"{API}/knowledge-bases/{other['id']}", headers=tenant.headers("client_admin")
    )
    assert denied.status_code == 404
    assert len(await sources(client, tenant, base["id"])) == 1


async def test_an_upload_over_the_limit_gets_413(
    settings: Settings, db: Database, tenant: Tenant
) -> None:
    small = settings.model_copy(update={"upload_max_bytes": 10_000})
    app = create_app(small, database=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        base = await create_base(client, tenant)
        too_big = await upload(client, tenant, base["id"], "gross.txt", b"a" * 20_000, "text/plain")
        assert too_big.status_code == 413
        assert "10000 bytes" in too_big.json()["error"]["message"]
        fits = await upload(client, tenant, base["id"], "klein.txt", b"Hallo Welt", "text/plain")
        assert fits.status_code == 201
        assert fits.json()["status"] == "queued" and fits.json()["file_name"] == "klein.txt"


async def test_refresh_while_queued_is_a_conflict(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    base = await create_base(client, tenant)
    source = await add_source(
        client, tenant, base["id"], {"kind": "text", "title": "t", "text": "Hallo"}
    )
    url = f"{API}/knowledge-bases/{base['id']}/sources/{source['id']}/refresh"
    owner = tenant.headers("agency_owner")
    assert (await client.post(url, headers=owner)).status_code == 409
    await run_jobs(db)
    again = await client.post(url, headers=owner)
    assert again.status_code == 202 and again.json()["status"] == "queued"
