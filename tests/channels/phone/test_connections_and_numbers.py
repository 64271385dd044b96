"""Twilio connections and numbers against a local server speaking Twilio's REST protocol:
the paths, the authentication and the parameters the SDK sends are Twilio's."""

from __future__ import annotations

import httpx

from demandly.kit.db import Database
from tests.channels.phone.conftest import API, PUBLIC, make_phone_agent
from tests.channels.phone.twilio_rest import TwilioRest
from tests.factories import make_tenant


async def test_a_connection_is_verified_with_twilio_and_keeps_its_token_secret(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    tenant = await make_tenant(db)
    owner = tenant.headers("agency_owner")
    account = twilio.account()
    body = {
        "agency_id": tenant.agency.id,
        "name": "Agentur-Twilio",
        "account_sid": account.sid,
        "auth_token": "wrong-token-123",
    }
    refused = await api.post(f"{API}/twilio-connections", json=body, headers=owner)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["details"][0]["field"] == "auth_token"

    created = await api.post(
        f"{API}/twilio-connections", json={**body, "auth_token": account.auth_token}, headers=owner
    )
    assert created.status_code == 201, created.text
    connection = created.json()
    assert connection["friendly_name"] == "Praxis Test" and connection["verified_at"]
    assert connection["auth_token_set"] is True
    assert account.auth_token not in created.text
    fetched = twilio.of(account, "GET", r"\.json")
    assert fetched and fetched[-1].user == account.sid

    other = await make_tenant(db)
    foreign = await api.get(
        f"{API}/twilio-connections/{connection['id']}", headers=other.headers("agency_owner")
    )
    assert foreign.status_code == 404
    member = await api.patch(
        f"{API}/twilio-connections/{connection['id']}",
        json={"name": "x"},
        headers=tenant.headers("client_admin"),
    )
    assert member.status_code in (403, 404)


async def test_an_api_key_connection_authenticates_with_the_key(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    tenant = await make_tenant(db)
    account = twilio.account(api_key=True)
    assert account.api_key is not None
    key_sid, secret = account.api_key
    created = await api.post(
        f"{API}/twilio-connections",
        json={
            "agency_id": tenant.agency.id,
            "client_id": tenant.clients[0].id,
            "name": "Praxis",
            "account_sid": account.sid,
            "api_key_sid": key_sid,
            "api_key_secret": secret,
        },
        headers=tenant.headers("client_admin"),
    )
    assert created.status_code == 201, created.text
    assert created.json()["client_id"] == tenant.clients[0].id
    assert twilio.of(account, "GET", r"\.json")[-1].user == key_sid
    half = await api.post(
        f"{API}/twilio-connections",
        json={"agency_id": tenant.agency.id, "name": "x", "account_sid": account.sid,
              "api_key_sid": key_sid},
        headers=tenant.headers("agency_owner"),
    )  # fmt: skip
    assert half.status_code == 422


async def test_numbers_are_searched_bought_assigned_and_released(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(api, db, twilio)
    owner = agent.owner
    assigned = twilio.of(agent.account, "POST", r"/IncomingPhoneNumbers/PN[0-9a-f]{32}\.json")
    assert assigned[-1].form["VoiceUrl"] == f"{PUBLIC}/twilio/voice/incoming"
    assert assigned[-1].form["StatusCallback"] == f"{PUBLIC}/twilio/voice/status"
    assert assigned[-1].form["VoiceMethod"] == "POST"

    agent.account.available = ["+4930111222333", "+4930111222444"]
    found = await api.get(
        f"{API}/phone-numbers/available",
        params={"connection_id": agent.connection_id, "country": "DE", "contains": "444"},
        headers=owner,
    )
    assert found.status_code == 200, found.text
    assert [n["number"] for n in found.json()] == ["+4930111222444"]
    search = twilio.of(agent.account, "GET", "/AvailablePhoneNumbers/DE/Local.json")[-1]
    assert search.query["Contains"] == "444" and search.query["VoiceEnabled"] == "true"

    bought = await api.post(
        f"{API}/phone-numbers",
        json={
            "connection_id": agent.connection_id,
            "number": "+4930111222444",
            "agent_id": agent.agent_id,
        },
        headers=owner,
    )
    assert bought.status_code == 201, bought.text
    number = bought.json()
    assert number["agent_id"] == agent.agent_id
    assert number["client_id"] == agent.tenant.clients[0].id
    purchase = twilio.of(agent.account, "POST", "/IncomingPhoneNumbers.json")[-1]
    assert purchase.form["PhoneNumber"] == "+4930111222444"
    assert purchase.form["VoiceUrl"] == f"{PUBLIC}/twilio/voice/incoming"

    listed = await api.get(
        f"{API}/phone-numbers", params={"agent_id": agent.agent_id}, headers=owner
    )
    assert {n["number"] for n in listed.json()["items"]} == {agent.number, "+4930111222444"}

    released = await api.delete(f"{API}/phone-numbers/{number['id']}", headers=owner)
    assert released.status_code == 204
    assert twilio.of(
        agent.account, "DELETE", rf"/IncomingPhoneNumbers/{number['twilio_sid']}\.json"
    )
    assert (await api.get(f"{API}/phone-numbers/{number['id']}", headers=owner)).status_code == 404

    busy = await api.delete(f"{API}/twilio-connections/{agent.connection_id}", headers=owner)
    assert busy.status_code == 409


async def test_twilio_refusing_a_purchase_is_a_clear_error(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(api, db, twilio)
    refused = await api.post(
        f"{API}/phone-numbers",
        json={"connection_id": agent.connection_id, "number": "+4930999999999"},
        headers=agent.owner,
    )
    assert refused.status_code == 502
    assert refused.json()["error"]["code"] == "twilio_error"
    assert "not available" in refused.json()["error"]["message"]


async def test_a_number_cannot_go_to_another_agencys_agent(
    api: httpx.AsyncClient, db: Database, twilio: TwilioRest
) -> None:
    agent = await make_phone_agent(api, db, twilio)
    other = await make_phone_agent(api, db, twilio)
    moved = await api.patch(
        f"{API}/phone-numbers/{agent.number_id}",
        json={"agent_id": other.agent_id},
        headers=agent.owner,
    )
    assert moved.status_code == 404
