"""Contacts: one person per client, found again by e-mail or phone, numbers in E.164 read in
the client's region, merged on request, and invisible to other tenants."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import select

from demandly.audit.models import AuditEvent
from demandly.kit.context import Scope
from demandly.kit.db import Database
from tests.factories import Tenant, World
from tests.leads.conftest import API, post_contact, post_lead, set_client_timezone


async def test_a_contact_is_stored_normalised(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await post_contact(
        client,
        tenant,
        name="Maria Sommer",
        email="  Maria.Sommer@Example.DE ",
        phone="030 1234567",
        company="Praxis Sommer",
        custom_fields={"versicherung": "privat"},
        consent_contact=True,
    )
    assert created["id"].startswith("ctc_")
    assert created["email"] == "maria.sommer@example.de"
    assert created["phone"] == "+49301234567"
    assert (created["company"], created["source"]) == ("Praxis Sommer", "manual")
    assert created["custom_fields"] == {"versicherung": "privat"}
    assert created["consent_contact"] is True and created["do_not_call"] is False


async def test_national_numbers_are_read_in_the_clients_region(
    client: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    swiss = tenant.clients[1].id
    await set_client_timezone(db, swiss, "Europe/Zurich", "de")
    created = await post_contact(
        client,
        tenant,
        client_id=swiss,
        name="Urs",
        phone="044 668 18 00",
        role="agency_owner",
    )
    assert created["phone"] == "+41446681800"


async def test_bad_addresses_and_numbers_are_refused_by_name(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    for body, field in (
        ({"email": "not-an-address"}, "email"),
        ({"phone": "12"}, "phone"),
        ({"phone": "030 12"}, "phone"),
        ({"phone": "hello world"}, "phone"),
        ({"company": "Nur Firma"}, "body"),
    ):
        response = await client.post(
            f"{API}/contacts",
            json={"client_id": tenant.clients[0].id, **body},
            headers=tenant.headers("client_member"),
        )
        assert response.status_code == 422, (body, response.text)
        fields = [d["field"] for d in response.json()["error"]["details"]]
        assert any(f.endswith(field) or f == field for f in fields), (body, fields)


async def test_the_same_person_twice_is_one_contact(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    first = await post_contact(client, tenant, name="Max", email="max@example.de")
    again = await post_contact(
        client, tenant, email="MAX@example.de", phone="+49 30 1234567", company="ACME", expect=200
    )
    assert again["id"] == first["id"]
    # Blanks are filled; what was known stays.
    assert (again["name"], again["phone"], again["company"]) == ("Max", "+49301234567", "ACME")
    by_phone = await post_contact(
        client, tenant, name="Maximilian", phone="030/1234567", expect=200
    )
    assert by_phone["id"] == first["id"] and by_phone["name"] == "Max"


async def test_details_naming_two_contacts_merge_them(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    by_mail = await post_contact(client, tenant, name="Anna", email="anna@example.de")
    by_phone = await post_contact(client, tenant, name="Anna K.", phone="+49 89 1234567")
    lead = await post_lead(client, tenant, contact_id=by_phone["id"])
    both = await post_contact(
        client, tenant, email="anna@example.de", phone="089 1234567", expect=200
    )
    assert both["id"] == by_mail["id"] and both["phone"] == "+49891234567"
    headers = tenant.headers("client_member")
    gone = await client.get(f"{API}/contacts/{by_phone['id']}", headers=headers)
    assert gone.status_code == 404
    moved = await client.get(f"{API}/leads/{lead['id']}", headers=headers)
    assert moved.json()["contact_id"] == by_mail["id"]


async def test_merging_moves_leads_and_fills_blanks(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    headers = tenant.headers("client_member")
    target = await post_contact(client, tenant, name="Jonas", email="jonas@example.de")
    other = await post_contact(
        client,
        tenant,
        name="J. Berger",
        phone="+49 40 1234567",
        company="Berger GmbH",
        do_not_call=True,
        custom_fields={"quelle": "messe"},
    )
    leads = [await post_lead(client, tenant, contact_id=other["id"]) for _ in range(2)]

    merged = await client.post(
        f"{API}/contacts/{target['id']}/merge", json={"other_id": other["id"]}, headers=headers
    )
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert (body["name"], body["email"], body["phone"]) == (
        "Jonas",
        "jonas@example.de",
        "+49401234567",
    )
    assert body["company"] == "Berger GmbH" and body["do_not_call"] is True
    assert body["custom_fields"] == {"quelle": "messe"}
    listed = await client.get(f"{API}/leads", params={"contact_id": target["id"]}, headers=headers)
    assert {item["id"] for item in listed.json()["items"]} == {lead["id"] for lead in leads}
    assert (await client.get(f"{API}/contacts/{other['id']}", headers=headers)).status_code == 404

    itself = await client.post(
        f"{API}/contacts/{target['id']}/merge", json={"other_id": target["id"]}, headers=headers
    )
    assert itself.status_code == 422


async def test_changing_to_another_contacts_address_is_a_conflict(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    headers = tenant.headers("client_member")
    first = await post_contact(client, tenant, name="Eins", email="eins@example.de")
    second = await post_contact(client, tenant, name="Zwei", email="zwei@example.de")
    clash = await client.patch(
        f"{API}/contacts/{second['id']}", json={"email": "EINS@example.de"}, headers=headers
    )
    assert clash.status_code == 409
    assert clash.json()["error"]["details"]["contact_id"] == first["id"]

    changed = await client.patch(
        f"{API}/contacts/{second['id']}",
        json={"phone": "0221 1234567", "custom_fields": {"a": 1}, "company": "Zwei AG"},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["phone"] == "+492211234567"
    cleared = await client.patch(
        f"{API}/contacts/{second['id']}",
        json={"company": None, "custom_fields": {"a": None, "b": "x"}},
        headers=headers,
    )
    assert cleared.json()["company"] is None and cleared.json()["custom_fields"] == {"b": "x"}
    bad = await client.patch(
        f"{API}/contacts/{second['id']}", json={"phone": "999"}, headers=headers
    )
    assert bad.status_code == 422


async def test_search_and_deletion(client: httpx.AsyncClient, tenant: Tenant) -> None:
    headers = tenant.headers("client_member")
    found = await post_contact(client, tenant, name="Zahnarzt Praxis_Nord", email="nord@praxis.de")
    await post_contact(client, tenant, name="Jemand Anderes", email="x@example.org")
    listed = await client.get(
        f"{API}/contacts",
        params={"client_id": tenant.clients[0].id, "q": "praxis_"},
        headers=headers,
    )
    assert [c["id"] for c in listed.json()["items"]] == [found["id"]]
    wildcard = await client.get(
        f"{API}/contacts", params={"client_id": tenant.clients[0].id, "q": "%"}, headers=headers
    )
    assert wildcard.json()["items"] == []

    lead = await post_lead(client, tenant, contact_id=found["id"])
    deleted = await client.delete(f"{API}/contacts/{found['id']}", headers=headers)
    assert deleted.status_code == 204
    assert (await client.get(f"{API}/leads/{lead['id']}", headers=headers)).status_code == 404


async def test_other_tenants_see_nothing(client: httpx.AsyncClient, world: World) -> None:
    contact = await post_contact(client, world.a, name="Geheim", email="geheim@example.de")
    for headers in (world.b.headers("agency_owner"), world.b.headers("client_admin")):
        for method, path, body in (
            ("GET", f"{API}/contacts/{contact['id']}", None),
            ("PATCH", f"{API}/contacts/{contact['id']}", {"name": "X"}),
            ("DELETE", f"{API}/contacts/{contact['id']}", None),
            ("POST", f"{API}/contacts/{contact['id']}/merge", {"other_id": contact["id"]}),
        ):
            response = await client.request(method, path, json=body, headers=headers)
            assert response.status_code == 404, (method, path, response.text)
        foreign_client = await client.post(
            f"{API}/contacts",
            json={"client_id": world.a.clients[0].id, "email": "geheim@example.de"},
            headers=headers,
        )
        assert foreign_client.status_code == 404
        listed = await client.get(f"{API}/contacts", headers=headers)
        assert contact["id"] not in {c["id"] for c in listed.json()["items"]}
    # A client user of the same agency does not reach another client's contacts.
    other_client = await post_contact(
        client, world.a, client_id=world.a.clients[1].id, name="Nebenan", role="agency_owner"
    )
    response = await client.get(
        f"{API}/contacts/{other_client['id']}", headers=world.a.headers("client_admin")
    )
    assert response.status_code == 404


async def test_a_viewer_reads_but_does_not_write(client: httpx.AsyncClient, tenant: Tenant) -> None:
    contact = await post_contact(client, tenant, name="Lesbar")
    viewer = tenant.headers("client_viewer")
    assert (await client.get(f"{API}/contacts/{contact['id']}", headers=viewer)).status_code == 200
    response = await client.patch(
        f"{API}/contacts/{contact['id']}", json={"name": "Nein"}, headers=viewer
    )
    assert response.status_code == 403


async def test_changes_to_people_are_audited_without_values(
    client: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    contact = await post_contact(client, tenant, name="Audit", email="audit@example.de")
    other = await post_contact(client, tenant, name="Zweit", phone="+49 30 7654321")
    lead = await post_lead(client, tenant, contact_id=other["id"])
    headers = tenant.headers("client_member")
    await client.patch(f"{API}/contacts/{contact['id']}", json={"name": "Neu"}, headers=headers)
    await client.post(
        f"{API}/contacts/{contact['id']}/merge", json={"other_id": other["id"]}, headers=headers
    )
    async with db.session(Scope.for_system()) as session:
        rows = await session.execute(
            select(AuditEvent).where(
                AuditEvent.entity_id.in_([contact["id"], other["id"], lead["id"]])
            )
        )
        events = [(e.action, e.entity_id, e.changed_fields) for e in rows.scalars()]
    assert ("contact.updated", contact["id"], ["name"]) in events
    assert ("contact.updated", contact["id"], ["phone"]) in events
    assert ("lead.updated", lead["id"], ["contact_id"]) in events
    assert {
        ("contact.created", contact["id"]),
        ("contact.deleted", other["id"]),
        ("contact.merged", contact["id"]),
    } <= {(a, i) for a, i, _ in events}
    assert "Neu" not in str(events) and "audit@example.de" not in str(events)


async def test_the_same_person_at_the_same_moment_is_still_one_contact(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    async def create(i: int) -> httpx.Response:
        return await client.post(
            f"{API}/contacts",
            json={"client_id": tenant.clients[0].id, "name": f"Paul {i}", "email": "p@example.de"},
            headers=tenant.headers("client_member"),
        )

    responses = await asyncio.gather(*(create(i) for i in range(8)))
    assert sorted(r.status_code for r in responses) == [200] * 7 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
