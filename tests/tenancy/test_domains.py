from __future__ import annotations

import httpx

from demandly.app import create_app
from demandly.config import Settings
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.tenancy.service import resolve_agency_by_host
from tests.factories import World, make_tenant, unique
from tests.tenancy.conftest import DnsServer

API = "/api/v1"


def a_domain() -> str:
    return f"{unique('app').lower()}.agency.example"


async def test_add_list_and_remove_domain(client: httpx.AsyncClient, world: World) -> None:
    headers = world.a.headers("agency_admin")
    url = f"{API}/agencies/{world.a.agency.id}/domains"
    name = a_domain()
    created = await client.post(url, json={"domain": f"  {name.upper()}. "}, headers=headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["domain"] == name
    assert body["verified"] is False
    assert body["txt_record"] == {
        "type": "TXT",
        "name": f"_demandly-challenge.{name}",
        "value": f"demandly-verify={body['verification_token']}",
    }
    listed = await client.get(url, headers=headers)
    assert body["id"] in [d["id"] for d in listed.json()["items"]]

    removed = await client.delete(f"{url}/{body['id']}", headers=headers)
    assert removed.status_code == 204
    listed = await client.get(url, headers=headers)
    assert body["id"] not in [d["id"] for d in listed.json()["items"]]


async def test_domain_is_unique_across_the_platform(
    client: httpx.AsyncClient, world: World
) -> None:
    name = a_domain()
    first = await client.post(
        f"{API}/agencies/{world.a.agency.id}/domains",
        json={"domain": name},
        headers=world.a.headers("agency_owner"),
    )
    assert first.status_code == 201
    second = await client.post(
        f"{API}/agencies/{world.b.agency.id}/domains",
        json={"domain": name},
        headers=world.b.headers("agency_owner"),
    )
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "domain_taken"


async def test_invalid_domains_are_422(client: httpx.AsyncClient, world: World) -> None:
    url = f"{API}/agencies/{world.a.agency.id}/domains"
    for bad in ("localhost", "bad_label.example.com", "-x.example.com", "1.2.3.4", "a b.com"):
        response = await client.post(
            url, json={"domain": bad}, headers=world.a.headers("agency_owner")
        )
        assert response.status_code == 422, bad
        assert response.json()["error"]["details"][0]["field"] == "domain"


async def test_the_platforms_own_host_and_its_subdomains_are_refused(
    settings: Settings, db: Database, world: World
) -> None:
    app = create_app(settings.model_copy(update={"base_url": "https://App.Platform.example/"}), db)
    url = f"{API}/agencies/{world.a.agency.id}/domains"
    headers = world.a.headers("agency_owner")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        for reserved in ("app.platform.example", "Brand.APP.platform.example."):
            response = await http.post(url, json={"domain": reserved}, headers=headers)
            assert response.status_code == 422, reserved
            error = response.json()["error"]
            assert error["code"] == "domain_reserved"
            assert error["details"][0]["field"] == "domain"
        # A sibling of the platform's host is someone else's name, not the platform's.
        sibling = await http.post(
            url, json={"domain": f"{unique('x').lower()}.platform.example"}, headers=headers
        )
        assert sibling.status_code == 201, sibling.text
        listed = await http.get(url, headers=headers)
    assert "app.platform.example" not in [d["domain"] for d in listed.json()["items"]]


async def test_domains_of_other_agencies_and_lower_roles(
    client: httpx.AsyncClient, world: World
) -> None:
    created = await client.post(
        f"{API}/agencies/{world.b.agency.id}/domains",
        json={"domain": a_domain()},
        headers=world.b.headers("agency_owner"),
    )
    domain_id = created.json()["id"]
    foreign = f"{API}/agencies/{world.b.agency.id}/domains/{domain_id}"
    own_key = world.a.headers("agency_owner")
    assert (await client.delete(foreign, headers=own_key)).status_code == 404
    assert (await client.post(f"{foreign}/verify", headers=own_key)).status_code == 404
    # A client admin sees the agency but may not manage its domains.
    listed = await client.get(
        f"{API}/agencies/{world.a.agency.id}/domains", headers=world.a.headers("client_admin")
    )
    assert listed.status_code == 403


async def test_verification_against_a_dns_server(
    dns_client: httpx.AsyncClient, dns_server: DnsServer, db: Database
) -> None:
    tenant = await make_tenant(db)
    headers = tenant.headers("agency_owner")
    name = a_domain()
    created = await dns_client.post(
        f"{API}/agencies/{tenant.agency.id}/domains", json={"domain": name}, headers=headers
    )
    domain = created.json()
    verify = f"{API}/agencies/{tenant.agency.id}/domains/{domain['id']}/verify"

    async with db.session(Scope.for_system()) as session:
        assert await resolve_agency_by_host(session, name) is None

    missing = await dns_client.post(verify, headers=headers)
    assert missing.status_code == 422
    assert missing.json()["error"]["code"] == "domain_not_verified"
    assert "no TXT record" in missing.json()["error"]["message"]
    assert dns_server.queries == [f"_demandly-challenge.{name}"]

    dns_server.txt[f"_demandly-challenge.{name}"] = ["google-site-verification=abc"]
    wrong = await dns_client.post(verify, headers=headers)
    assert wrong.status_code == 422
    assert domain["txt_record"]["value"] in wrong.json()["error"]["message"]

    dns_server.txt[f"_demandly-challenge.{name}"].append(domain["txt_record"]["value"])
    verified = await dns_client.post(verify, headers=headers)
    assert verified.status_code == 200, verified.text
    assert verified.json()["verified"] is True
    assert verified.json()["verified_at"]

    async with db.session(Scope.for_agency(tenant.agency.id)) as session:
        agency = await resolve_agency_by_host(session, f"{name.upper()}:443")
        assert agency is not None and agency.id == tenant.agency.id
        assert await resolve_agency_by_host(session, "unknown.example") is None


async def test_failing_dns_server_is_a_clear_422(
    dns_client: httpx.AsyncClient, dns_server: DnsServer, db: Database
) -> None:
    tenant = await make_tenant(db)
    headers = tenant.headers("agency_owner")
    name = a_domain()
    created = await dns_client.post(
        f"{API}/agencies/{tenant.agency.id}/domains", json={"domain": name}, headers=headers
    )
    dns_server.refused.add(f"_demandly-challenge.{name}")
    response = await dns_client.post(
        f"{API}/agencies/{tenant.agency.id}/domains/{created.json()['id']}/verify",
        headers=headers,
    )
    assert response.status_code == 422
    assert "failed" in response.json()["error"]["message"]
    listed = await dns_client.get(f"{API}/agencies/{tenant.agency.id}/domains", headers=headers)
    assert [d["verified"] for d in listed.json()["items"]] == [False]
