"""Leads: answers by the agent's form, scores by the client's rules, qualifying on their own,
events in the outbox, notes, filters, and a CSV export a spreadsheet cannot be attacked with."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx

from demandly.kit.db import Database
from demandly.kit.time import utcnow
from tests.conversations.conftest import agent_body
from tests.factories import Tenant, World
from tests.leads.conftest import API, events_of, post_contact, post_lead

FORM = [
    {"key": "name", "label": {"de": "Name", "en": "Name"}, "type": "text"},
    {"key": "email", "label": {"de": "E-Mail"}, "type": "email"},
    {"key": "phone", "label": {"de": "Telefon"}, "type": "phone"},
    {
        "key": "service",
        "label": {"de": "Leistung"},
        "type": "choice",
        "options": ["Zahnreinigung", "Implantat"],
    },
    {"key": "budget", "label": {"de": "Budget"}, "type": "number", "required": False},
    {"key": "new_patient", "label": {"de": "Neu"}, "type": "boolean", "required": False},
]
RULES = [
    {"field": "service", "op": "equals", "value": "implantat", "points": 40},
    {"field": "budget", "op": "gte", "value": 1000, "points": 30},
    {"field": "new_patient", "op": "exists", "points": 5},
    {"field": "service", "op": "in", "value": ["Zahnreinigung"], "points": 10},
    {"field": "name", "op": "contains", "value": "dr.", "points": 1},
    {"field": "budget", "op": "lte", "value": 100, "points": -20},
]


async def _agent(client: httpx.AsyncClient, tenant: Tenant) -> str:
    response = await client.post(
        f"{API}/agents",
        json=agent_body(tenant.clients[0].id, qualification=FORM),
        headers=tenant.headers("agency_owner"),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _scoring(
    client: httpx.AsyncClient, tenant: Tenant, rules: list[dict[str, Any]], qualify_at: Any
) -> None:
    response = await client.put(
        f"{API}/clients/{tenant.clients[0].id}/lead-scoring",
        json={"rules": rules, "qualify_at": qualify_at},
        headers=tenant.headers("client_member"),
    )
    assert response.status_code == 200, response.text


async def test_answers_follow_the_agents_form_and_name_the_contact(
    client: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    agent_id = await _agent(client, tenant)
    await _scoring(client, tenant, RULES, 0)
    lead = await post_lead(
        client,
        tenant,
        agent_id=agent_id,
        answers={
            "name": "Dr. Eva Klein",
            "email": "Eva@Example.de",
            "phone": "0171 2345678",
            "service": "IMPLANTAT",
            "budget": "1500",
        },
        tags=["Messe", "messe", "vip"],
    )
    # Every required answer is in and the score reaches 0: qualified at once.
    assert lead["id"].startswith("lead_") and lead["status"] == "qualified"
    assert lead["answers"] == {
        "name": "Dr. Eva Klein",
        "email": "eva@example.de",
        "phone": "+491712345678",
        "service": "Implantat",
        "budget": 1500,
    }
    assert lead["score"] == 40 + 30 + 1
    assert lead["tags"] == ["Messe", "vip"]
    contact = lead["contact"]
    assert (contact["name"], contact["email"], contact["phone"], contact["source"]) == (
        "Dr. Eva Klein",
        "eva@example.de",
        "+491712345678",
        "api",
    )
    assert await events_of(db, lead["id"]) == ["lead.created", "lead.qualified"]

    for answers, field in (
        ({"colour": "blau"}, "answers.colour"),
        ({"phone": "123"}, "answers.phone"),
        ({"service": "Bleaching"}, "answers.service"),
        ({"budget": "viel"}, "answers.budget"),
        ({"new_patient": "vielleicht"}, "answers.new_patient"),
    ):
        response = await client.post(
            f"{API}/leads",
            json={"client_id": tenant.clients[0].id, "agent_id": agent_id, "answers": answers},
            headers=tenant.headers("client_member"),
        )
        assert response.status_code == 422, (answers, response.text)
        assert response.json()["error"]["details"][0]["field"] == field


async def test_the_score_sums_matching_rules_and_qualifies_at_the_threshold(
    client: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    agent_id = await _agent(client, tenant)
    await _scoring(client, tenant, RULES, 70)
    got = await client.get(
        f"{API}/clients/{tenant.clients[0].id}/lead-scoring",
        headers=tenant.headers("client_viewer"),
    )
    assert got.json()["qualify_at"] == 70 and len(got.json()["rules"]) == len(RULES)

    # All required answers, but 40 + 5 points: not enough.
    lead = await post_lead(
        client,
        tenant,
        agent_id=agent_id,
        answers={
            "name": "Eva",
            "email": "eva.score@example.de",
            "phone": "+49 171 2345679",
            "service": "Implantat",
            "new_patient": False,
        },
    )
    assert (lead["score"], lead["status"]) == (45, "new")
    assert await events_of(db, lead["id"]) == ["lead.created"]

    headers = tenant.headers("client_member")
    raised = await client.patch(
        f"{API}/leads/{lead['id']}", json={"answers": {"budget": 2000}}, headers=headers
    )
    assert raised.status_code == 200, raised.text
    body = raised.json()
    assert (body["score"], body["status"]) == (75, "qualified")
    assert body["qualified_at"] is not None and body["answers"]["name"] == "Eva"
    assert await events_of(db, lead["id"]) == ["lead.created", "lead.qualified"]

    # A qualified lead stays qualified when its score falls; the event is not repeated.
    lowered = await client.patch(
        f"{API}/leads/{lead['id']}", json={"answers": {"budget": 50}}, headers=headers
    )
    assert (lowered.json()["score"], lowered.json()["status"]) == (25, "qualified")
    removed = await client.patch(
        f"{API}/leads/{lead['id']}", json={"answers": {"budget": None}}, headers=headers
    )
    assert "budget" not in removed.json()["answers"] and removed.json()["score"] == 45
    assert await events_of(db, lead["id"]) == ["lead.created", "lead.qualified"]


async def test_missing_required_answers_keep_a_lead_new(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    agent_id = await _agent(client, tenant)
    await _scoring(client, tenant, RULES, 0)
    lead = await post_lead(
        client, tenant, agent_id=agent_id, answers={"name": "Tom", "email": "tom@example.de"}
    )
    assert lead["status"] == "new"
    completed = await client.patch(
        f"{API}/leads/{lead['id']}",
        json={"answers": {"phone": "+49 171 2345670", "service": "Zahnreinigung"}},
        headers=tenant.headers("client_member"),
    )
    assert (completed.json()["status"], completed.json()["score"]) == ("qualified", 10)


async def test_without_a_threshold_nothing_qualifies_on_its_own(
    client: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    await _scoring(client, tenant, [], None)
    lead = await post_lead(client, tenant, answers={"anything": "goes"})
    assert lead["status"] == "new" and lead["contact_id"] is None
    headers = tenant.headers("client_member")
    for status in ("contacted", "qualified", "won"):
        response = await client.patch(
            f"{API}/leads/{lead['id']}", json={"status": status}, headers=headers
        )
        assert response.json()["status"] == status
    assert await events_of(db, lead["id"]) == ["lead.created", "lead.qualified"]


async def test_bad_rules_are_refused(client: httpx.AsyncClient, tenant: Tenant) -> None:
    url = f"{API}/clients/{tenant.clients[0].id}/lead-scoring"
    for rule in (
        {"field": "x", "op": "in", "value": "a", "points": 1},
        {"field": "x", "op": "gte", "value": "zehn", "points": 1},
        {"field": "x", "op": "equals", "points": 1},
        {"field": "x", "op": "like", "value": "a", "points": 1},
        {"field": "x", "op": "exists", "points": 5000},
        {"field": "1x", "op": "exists", "points": 1},
    ):
        response = await client.put(
            url, json={"rules": [rule]}, headers=tenant.headers("client_member")
        )
        assert response.status_code == 422, rule
    viewer = await client.put(url, json={"rules": []}, headers=tenant.headers("client_viewer"))
    assert viewer.status_code == 403


async def test_notes_owner_and_contact(client: httpx.AsyncClient, tenant: Tenant) -> None:
    headers = tenant.headers("client_member")
    contact = await post_contact(client, tenant, name="Nora", email="nora@example.de")
    lead = await post_lead(client, tenant, contact={"email": "NORA@example.de", "name": "N."})
    assert lead["contact_id"] == contact["id"]

    note = await client.post(
        f"{API}/leads/{lead['id']}/notes", json={"body": "Rückruf morgen"}, headers=headers
    )
    assert note.status_code == 201, note.text
    assert note.json()["body"] == "Rückruf morgen"
    detail = await client.get(f"{API}/leads/{lead['id']}", headers=headers)
    assert [n["body"] for n in detail.json()["notes"]] == ["Rückruf morgen"]

    owner = tenant.users["client_member"].id
    assigned = await client.patch(
        f"{API}/leads/{lead['id']}", json={"owner_id": owner}, headers=headers
    )
    assert assigned.json()["owner_id"] == owner
    stranger = await client.patch(
        f"{API}/leads/{lead['id']}", json={"owner_id": "usr_nobody"}, headers=headers
    )
    assert stranger.status_code == 422
    assert stranger.json()["error"]["details"][0]["field"] == "owner_id"


async def test_filters_select_leads(client: httpx.AsyncClient, tenant: Tenant) -> None:
    agent_id = await _agent(client, tenant)
    await _scoring(client, tenant, [{"field": "budget", "op": "exists", "points": 10}], None)
    start = utcnow().isoformat()
    plain = await post_lead(client, tenant, tags=["kalt"], answers={})
    hot = await post_lead(
        client, tenant, agent_id=agent_id, tags=["heiß_1", "vip"], answers={"budget": 5}
    )
    won = await post_lead(client, tenant, status="won", tags=["vip"])
    headers = tenant.headers("client_viewer")

    async def ids(**params: Any) -> set[str]:
        params["client_id"] = tenant.clients[0].id
        response = await client.get(f"{API}/leads", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return {item["id"] for item in response.json()["items"]}

    assert await ids(since=start) == {plain["id"], hot["id"], won["id"]}
    assert await ids(tag="vip") == {hot["id"], won["id"]}
    assert await ids(tag="heiß_1") == {hot["id"]}
    assert await ids(tag="heiß") == set()
    assert await ids(status="won") == {won["id"]}
    assert await ids(min_score=10) == {hot["id"]}
    assert plain["id"] in await ids(max_score=0)
    assert hot["id"] not in await ids(max_score=9)
    assert await ids(agent_id=agent_id) == {hot["id"]}
    assert await ids(until=start) & {plain["id"], hot["id"], won["id"]} == set()
    for bad in ({"status": "hot"}, {"tag": "%"}, {"tag": "a\x00"}, {"min_score": "x"}):
        response = await client.get(f"{API}/leads", params=bad, headers=headers)
        assert response.status_code == 422, bad


async def test_the_csv_export_is_filtered_and_safe_in_spreadsheets(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    hostile = await post_lead(
        client,
        tenant,
        contact={
            "name": '=HYPERLINK("http://evil")',
            "email": "evil@example.de",
            "company": "-2+3",
        },
        answers={"note": "@SUM(A1)"},
        tags=["export"],
    )
    await post_lead(client, tenant, contact={"name": "Other"}, tags=["skip"])
    restricted = await post_contact(
        client, tenant, name="Gesperrt", email="sperre@example.de", processing_restricted=True
    )
    await post_lead(client, tenant, contact_id=restricted["id"], tags=["export"])

    response = await client.get(
        f"{API}/leads/export.csv",
        params={"client_id": tenant.clients[0].id, "tag": "export"},
        headers=tenant.headers("client_viewer"),
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["id"] for r in rows] == [hostile["id"]]
    assert rows[0]["name"] == '\'=HYPERLINK("http://evil")'
    assert rows[0]["company"] == "'-2+3"
    assert rows[0]["answers"] == "note: @SUM(A1)"
    assert rows[0]["email"] == "evil@example.de" and rows[0]["tags"] == "export"


async def test_the_export_streams_many_leads(client: httpx.AsyncClient, tenant: Tenant) -> None:
    made = {
        (await post_lead(client, tenant, tags=["bulk"], answers={"n": i}))["id"] for i in range(7)
    }
    response = await client.get(
        f"{API}/leads/export.csv",
        params={"tag": "bulk", "client_id": tenant.clients[0].id},
        headers=tenant.headers("client_viewer"),
    )
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert {r["id"] for r in rows} == made
    assert rows[0]["id"] > rows[-1]["id"]


async def test_other_tenants_reach_no_lead(client: httpx.AsyncClient, world: World) -> None:
    lead = await post_lead(client, world.a, contact={"email": "lead@example.de"})
    url = f"{API}/clients/{world.a.clients[0].id}/lead-scoring"
    for headers in (world.b.headers("agency_owner"), world.b.headers("client_admin")):
        for method, path, body in (
            ("GET", f"{API}/leads/{lead['id']}", None),
            ("PATCH", f"{API}/leads/{lead['id']}", {"status": "won"}),
            ("POST", f"{API}/leads/{lead['id']}/notes", {"body": "x"}),
            ("GET", url, None),
            ("PUT", url, {"rules": []}),
            ("GET", f"{API}/leads/export.csv?client_id={world.a.clients[0].id}", None),
        ):
            response = await client.request(method, path, json=body, headers=headers)
            assert response.status_code == 404, (method, path, response.text)
        listed = await client.get(f"{API}/leads", headers=headers)
        assert lead["id"] not in {item["id"] for item in listed.json()["items"]}
        export = await client.get(f"{API}/leads/export.csv", headers=headers)
        assert lead["id"] not in export.text
    # A lead cannot point at another tenant's contact or agent.
    contact_id = lead["contact_id"]
    foreign = await client.post(
        f"{API}/leads",
        json={"client_id": world.b.clients[0].id, "contact_id": contact_id},
        headers=world.b.headers("client_member"),
    )
    assert foreign.status_code == 404
