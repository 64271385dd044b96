"""Every rule of an agent definition gets a 422 that names the field, on create and on edit."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.agents.helpers import API, agent_body, create_agent, error_field
from tests.factories import World

QUALIFICATION = agent_body("x")["qualification"]
WEEKLY = agent_body("x")["business_hours"]["weekly"]


def field_item(**overrides: Any) -> dict[str, Any]:
    return {"key": "phone", "label": {"de": "Telefon"}, "type": "phone", **overrides}


def hours(*ranges: dict[str, Any]) -> dict[str, Any]:
    return {"business_hours": {"weekly": list(ranges)}}


def slot(weekday: int = 1, opens: str = "09:00", closes: str = "17:00") -> dict[str, Any]:
    return {"weekday": weekday, "opens": opens, "closes": closes}


CASES: list[tuple[str, dict[str, Any], str]] = [
    ("kind", {"kind": "sms"}, "kind"),
    ("language", {"language": "fr"}, "language"),
    ("empty name", {"name": ""}, "name"),
    ("name with line break", {"name": "A\nB"}, "name"),
    ("unknown field", {"colour": "blue"}, "colour"),
    ("NUL in greeting", {"greeting": "Hallo\x00"}, "greeting"),
    ("temperature too high", {"llm": {"temperature": 2.5}}, "llm.temperature"),
    ("temperature negative", {"llm": {"temperature": -0.1}}, "llm.temperature"),
    ("max_tokens zero", {"llm": {"max_tokens": 0}}, "llm.max_tokens"),
    ("max_tokens too many", {"llm": {"max_tokens": 4097}}, "llm.max_tokens"),
    ("bad connection id", {"llm": {"connection_id": "no spaces allowed"}}, "llm.connection_id"),
    ("unknown tool", {"tools": ["save_lead_details", "launch_rockets"]}, "tools.1"),
    (
        "duplicate key",
        {"qualification": [*QUALIFICATION, field_item(key="email", type="email")]},
        "qualification.4.key",
    ),
    ("key with capitals", {"qualification": [field_item(key="Phone")]}, "qualification.0.key"),
    ("key with dash", {"qualification": [field_item(key="phone-number")]}, "qualification.0.key"),
    ("key starting with digit", {"qualification": [field_item(key="1st")]}, "qualification.0.key"),
    (
        "key with double underscore",
        {"qualification": [field_item(key="a__b")]},
        "qualification.0.key",
    ),
    ("unknown field type", {"qualification": [field_item(type="url")]}, "qualification.0.type"),
    (
        "choice without options",
        {"qualification": [field_item(type="choice")]},
        "qualification.0.options",
    ),
    (
        "choice with empty options",
        {"qualification": [field_item(type="choice", options=[])]},
        "qualification.0.options",
    ),
    (
        "choice with duplicate options",
        {"qualification": [field_item(type="choice", options=["Ja", "ja"])]},
        "qualification.0.options",
    ),
    (
        "options on a text field",
        {"qualification": [field_item(type="text", options=["a"])]},
        "qualification.0.options",
    ),
    ("label without language", {"qualification": [field_item(label={})]}, "qualification.0.label"),
    (
        "label in French",
        {"qualification": [field_item(label={"fr": "Nom"})]},
        "qualification.0.label.fr",
    ),
    ("empty FAQ answer", {"faq": [{"question": "Q?", "answer": ""}]}, "faq.0.answer"),
    ("closes before opens", hours(slot(closes="08:00")), "business_hours.weekly.0.closes"),
    (
        "closes when it opens",
        hours(slot(opens="09:00", closes="09:00")),
        "business_hours.weekly.0.closes",
    ),
    ("time without leading zero", hours(slot(opens="9:00")), "business_hours.weekly.0.opens"),
    ("time 24:00", hours(slot(closes="24:00")), "business_hours.weekly.0.closes"),
    ("weekday 7", hours(slot(weekday=7)), "business_hours.weekly.0.weekday"),
    (
        "overlapping ranges",
        hours(slot(opens="08:00", closes="12:00"), slot(opens="11:30", closes="15:00")),
        "business_hours.weekly.1",
    ),
    (
        "unknown time zone",
        {"business_hours": {"timezone": "Mars/Olympus"}},
        "business_hours.timezone",
    ),
    (
        "bad closed date",
        {"business_hours": {"closed_dates": ["2026-02-30"]}},
        "business_hours.closed_dates.0",
    ),
    (
        "zero turns",
        {"handoff": {"keywords": [], "after_turns_without_progress": 0}},
        "handoff.after_turns_without_progress",
    ),
    ("empty keyword", {"handoff": {"keywords": [""]}}, "handoff.keywords.0"),
    (
        "origin with path",
        {"widget": {"allowed_origins": ["https://example.com/contact"]}},
        "widget.allowed_origins.0",
    ),
    (
        "origin with query",
        {"widget": {"allowed_origins": ["https://example.com?x=1"]}},
        "widget.allowed_origins.0",
    ),
    (
        "origin with ftp",
        {"widget": {"allowed_origins": ["ftp://example.com"]}},
        "widget.allowed_origins.0",
    ),
    (
        "origin without host",
        {"widget": {"allowed_origins": ["https://"]}},
        "widget.allowed_origins.0",
    ),
    (
        "origin without scheme",
        {"widget": {"allowed_origins": ["example.com"]}},
        "widget.allowed_origins.0",
    ),
    (
        "origin wildcard",
        {"widget": {"allowed_origins": ["https://*.example.com"]}},
        "widget.allowed_origins.0",
    ),
    (
        "origin with credentials",
        {"widget": {"allowed_origins": ["https://user:pw@example.com"]}},
        "widget.allowed_origins.0",
    ),
    ("colour name", {"widget": {"primary_color": "red"}}, "widget.primary_color"),
    ("short colour", {"widget": {"accent_color": "#fff"}}, "widget.accent_color"),
    ("position", {"widget": {"position": "top-left"}}, "widget.position"),
    ("avatar not a URL", {"widget": {"avatar_url": "javascript:alert(1)"}}, "widget.avatar_url"),
]


@pytest.mark.parametrize(("case", "change", "field"), CASES, ids=[c[0] for c in CASES])
async def test_create_names_the_field(
    client: httpx.AsyncClient, world: World, case: str, change: dict[str, Any], field: str
) -> None:
    body = agent_body(world.a.clients[0].id)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict) and key != "llm":
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    response = await client.post(
        f"{API}/agents", json=body, headers=world.a.headers("agency_owner")
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert error_field(response) == field, response.text


EDIT_CASES = [c for c in CASES if c[0] not in {"unknown field"}]


@pytest.mark.parametrize(("case", "change", "field"), EDIT_CASES, ids=[c[0] for c in EDIT_CASES])
async def test_edit_names_the_field_and_changes_nothing(
    client: httpx.AsyncClient, world: World, case: str, change: dict[str, Any], field: str
) -> None:
    created = await create_agent(client, world.a)
    url = f"{API}/agents/{created['id']}"
    headers = world.a.headers("agency_owner")
    response = await client.patch(url, json=change, headers=headers)
    assert response.status_code == 422, response.text
    assert error_field(response) == field, response.text
    after = await client.get(url, headers=headers)
    assert after.json() == created


async def test_a_merged_edit_is_checked_as_a_whole(client: httpx.AsyncClient, world: World) -> None:
    """A range that is fine alone but overlaps one already stored is refused."""
    created = await create_agent(client, world.a)
    url = f"{API}/agents/{created['id']}"
    headers = world.a.headers("agency_owner")
    overlapping = [*WEEKLY, slot(weekday=0, opens="11:00", closes="15:00")]
    response = await client.patch(url, json=hours(*overlapping), headers=headers)
    assert response.status_code == 422
    assert error_field(response) == "business_hours.weekly.3"

    replaced = await client.patch(
        url, json={"business_hours": {"out_of_hours_message": "Bitte später."}}, headers=headers
    )
    assert replaced.status_code == 200
    assert replaced.json()["business_hours"]["weekly"] == WEEKLY
