"""Helpers for the agents tests: a complete agent body, creating agents and connections over
the API, reading the first error field."""

from __future__ import annotations

from typing import Any

import httpx

from tests.factories import Tenant

API = "/api/v1"
ORIGIN = "https://www.praxis-example.de"


def error_field(response: httpx.Response) -> str:
    return str(response.json()["error"]["details"][0]["field"])


def agent_body(client_id: str, **overrides: Any) -> dict[str, Any]:
    """A dental practice's receptionist, with every section filled in."""
    body: dict[str, Any] = {
        "client_id": client_id,
        "name": "Empfang Zahnarztpraxis",
        "kind": "chat",
        "language": "de",
        "persona_name": "Lena",
        "greeting": "Guten Tag! Wie kann ich helfen?",
        "instructions": "Sei freundlich.\nFrage nach dem Anliegen.",
        "llm": {
            "connection_id": None,
            "model": "gpt-4o-mini",
            "temperature": 0.2,
            "max_tokens": 400,
        },
        "tools": ["save_lead_details", "request_handoff", "end_conversation"],
        "qualification": [
            {"key": "name", "label": {"de": "Name", "en": "Name"}, "type": "text"},
            {"key": "email", "label": {"de": "E-Mail"}, "type": "email"},
            {
                "key": "insurance",
                "label": {"de": "Versicherung", "en": "Insurance"},
                "type": "choice",
                "options": ["gesetzlich", "privat"],
                "hint": "gesetzlich oder privat",
            },
            {
                "key": "callback_ok",
                "label": {"en": "Callback?"},
                "type": "boolean",
                "required": False,
            },
        ],
        "faq": [{"question": "Wo parke ich?", "answer": "Im Hof hinter der Praxis."}],
        "business_hours": {
            "timezone": "Europe/Berlin",
            "weekly": [
                {"weekday": 0, "opens": "08:00", "closes": "12:00"},
                {"weekday": 0, "opens": "14:00", "closes": "18:00"},
                {"weekday": 4, "opens": "08:00", "closes": "13:00"},
            ],
            "closed_dates": ["2026-12-24", "2026-12-25"],
            "out_of_hours_message": "Wir sind gerade nicht erreichbar.",
        },
        "handoff": {"keywords": ["Mensch", "Mitarbeiter"], "after_turns_without_progress": 3},
        "widget": {
            "allowed_origins": [ORIGIN],
            "primary_color": "#0055AA",
            "accent_color": "#ffcc00",
            "position": "bottom-left",
            "avatar_url": "https://cdn.example.com/lena.png",
            "privacy_notice": "Wir verarbeiten Ihre Angaben zur Terminvereinbarung.",
        },
        "price_info": "Eine Kontrolle kostet gesetzlich Versicherte nichts.",
    }
    body.update(overrides)
    return body


async def create_agent(
    client: httpx.AsyncClient, tenant: Tenant, role: str = "agency_owner", **overrides: Any
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/agents",
        json=agent_body(tenant.clients[0].id, **overrides),
        headers=tenant.headers(role),
    )
    assert response.status_code == 201, response.text
    return response.json()


async def publish(client: httpx.AsyncClient, tenant: Tenant, agent_id: str) -> dict[str, Any]:
    response = await client.post(
        f"{API}/agents/{agent_id}/publish", headers=tenant.headers("agency_owner")
    )
    assert response.status_code == 200, response.text
    return response.json()


async def create_connection(
    client: httpx.AsyncClient, tenant: Tenant, **overrides: Any
) -> dict[str, Any]:
    body = {
        "agency_id": tenant.agency.id,
        "name": "Azure EU",
        "base_url": "https://eu.llm.example.com/v1/",
        "api_key": "sk-test-0123456789abcdefWXYZ",
        "default_model": "gpt-4o-mini",
        "region": "eu",
        **overrides,
    }
    response = await client.post(
        f"{API}/provider-connections", json=body, headers=tenant.headers("agency_admin")
    )
    assert response.status_code == 201, response.text
    return response.json()
