"""The public booking page and the manage page over HTTP (no JavaScript: links and forms):
brand, language, the whole flow, double submits, taken slots, bad input, signed forms, expired
and forged links, rate limits and the headers that keep the page safe. The helpers at the top
(a calendar made through the REST API, the app with the page routes, readers of the HTML) serve
the tools and browser tests too."""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from demandly.booking import links
from demandly.booking.pages import form_posts_per_ip
from demandly.booking.pages import router as pages_router
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.kit.time import utcnow
from demandly.tenancy.models import Agency
from tests.booking.helpers import API, create_calendar, every_day
from tests.factories import Tenant, make_tenant

# --- helpers (the tools and browser tests use them too) ----------------------------------

PAGE_CALENDAR: dict[str, Any] = {
    "weekly_hours": every_day("07:00", "21:00"),
    "event_types": [
        {
            "name": "Beratung",
            "duration_minutes": 60,
            "location_kind": "in_person",
            "location_text": "Hauptstraße 1, Berlin",
        }
    ],
}


def with_pages(app: FastAPI) -> FastAPI:
    """The app with the booking page routes (a no-op once app.py includes them)."""
    paths = {route.path for route in app.routes if isinstance(route, APIRoute)}
    if "/book/{slug}" not in paths:
        app.include_router(pages_router)
    return app


def visitor_client(app: FastAPI) -> httpx.AsyncClient:
    """A browser of its own address, so per-IP limits of one test never meet another's."""
    address = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def make_calendar(
    client: httpx.AsyncClient, tenant: Tenant, **overrides: Any
) -> dict[str, Any]:
    """A calendar of the tenant's first client, open 07:00-21:00 every day with one-hour
    consultations and no notice: free slots whatever time the test runs."""
    return await create_calendar(client, tenant, **{**PAGE_CALENDAR, **overrides})


def links_of(page: str, cls: str) -> list[str]:
    """The hrefs of the links with class ``cls``, in page order."""
    pattern = rf'<a class="{cls}[^"]*" href="([^"]+)"'
    return [unescape(href) for href in re.findall(pattern, page)]


def hidden(page: str, name: str) -> str:
    found = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)"', page)
    assert found, f"no hidden field {name}"
    return unescape(found.group(1))


def text_of(page: str) -> str:
    """The visible text, tags removed and whitespace collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", page)).split())


async def first_slot_form(visitor: httpx.AsyncClient, slug: str, lang: str = "de") -> str:
    """Open the page, take the first free slot, return the details form page."""
    page = await visitor.get(f"/book/{slug}?lang={lang}")
    assert page.status_code == 200, page.text
    slots = links_of(page.text, "slot")
    assert slots, "no free slot on the page"
    form = await visitor.get(slots[0])
    assert form.status_code == 200, form.text
    return form.text


def form_fields(page: str, **typed: str) -> dict[str, str]:
    fields = {name: hidden(page, name) for name in ("token", "start", "event", "lang")}
    fields.update(typed)
    return fields


DETAILS = {"name": "Erika Mustermann", "email": "erika@beispiel.de", "note": "Bitte früh"}


BRANDING = {
    "display_name": "Nordlicht Digital",
    "primary_color": "#0b6e69",
    "accent_color": "#ffcc00",
    "privacy_policy_url": "https://nordlicht.example/datenschutz",
}


@pytest.fixture
async def tenant(db: Database) -> Tenant:
    tenant = await make_tenant(db)
    async with db.session(Scope.for_system()) as session:
        agency = await session.get(Agency, tenant.agency.id)
        assert agency is not None
        agency.branding = BRANDING
        await session.commit()
    return tenant


@pytest.fixture
def pages_app(app: FastAPI) -> FastAPI:
    return with_pages(app)


@pytest.fixture
async def visitor(pages_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with visitor_client(pages_app) as http:
        yield http


@pytest.fixture
async def calendar(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    return await make_calendar(client, tenant)


async def appointments(
    client: httpx.AsyncClient, tenant: Tenant, calendar: dict[str, Any]
) -> list[dict[str, Any]]:
    response = await client.get(
        f"{API}/appointments",
        params={"calendar_id": calendar["id"]},
        headers=tenant.headers("agency_owner"),
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def book_first_slot(
    visitor: httpx.AsyncClient, slug: str, lang: str = "de", **typed: str
) -> httpx.Response:
    form = await first_slot_form(visitor, slug, lang)
    return await visitor.post(f"/book/{slug}", data=form_fields(form, **(typed or DETAILS)))


# --- the page ------------------------------------------------------------------------------


async def test_the_page_shows_the_agency_brand_and_free_days_and_times(
    visitor: httpx.AsyncClient, calendar: dict[str, Any]
) -> None:
    page = await visitor.get(f"/book/{calendar['slug']}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    text = text_of(page.text)
    assert "Nordlicht Digital" in text
    assert "demandly" not in page.text.lower()
    assert "Termin buchen: Beratung" in text
    assert "60 Minuten" in text and "Hauptstraße 1, Berlin" in text
    assert "Alle Zeiten in der Zeitzone Europe/Berlin." in text
    assert 'href="https://nordlicht.example/datenschutz"' in page.text
    days = links_of(page.text, "day")
    slots = links_of(page.text, "slot")
    assert days and slots
    # The times of the first free day, in the calendar's zone, hour by hour from 07:00 on.
    assert all(
        re.fullmatch(r"\d{2}:00", label)
        for label in re.findall(r'<a class="slot" href="[^"]+">([^<]+)</a>', page.text)
    )

    css = await visitor.get(f"/book/{calendar['slug']}/brand.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "--brand: #0b6e69;" in css.text and "--accent: #ffcc00;" in css.text
    # Dark text on the light yellow, white on the dark green.
    assert "--accent-text: #111111;" in css.text and "--brand-text: #ffffff;" in css.text


async def test_weeks_are_navigable_by_links(
    visitor: httpx.AsyncClient, calendar: dict[str, Any]
) -> None:
    slug = calendar["slug"]
    first = await visitor.get(f"/book/{slug}")
    assert 'rel="prev"' not in first.text  # nothing before today
    next_week = re.search(r'<a class="week next" href="([^"]+)"', first.text)
    assert next_week
    second = await visitor.get(next_week.group(1).replace("&amp;", "&"))
    assert second.status_code == 200
    assert 'rel="prev"' in second.text
    first_days = re.findall(r'class="day-label">([^<]+)<', first.text)
    second_days = re.findall(r'class="day-label">([^<]+)<', second.text)
    assert len(first_days) == len(second_days) == 14
    assert second_days[0] == first_days[7]


async def test_a_closed_day_is_not_a_link(
    client: httpx.AsyncClient, visitor: httpx.AsyncClient, tenant: Tenant
) -> None:
    weekdays_only = [{"weekday": day, "start": "07:00", "end": "21:00"} for day in range(5)]
    calendar = await make_calendar(client, tenant, weekly_hours=weekdays_only)
    page = await visitor.get(f"/book/{calendar['slug']}")
    assert page.text.count('class="day full"') >= 4  # two weekends in fourteen days
    assert len(links_of(page.text, "day")) + page.text.count('class="day full"') == 14


async def test_english_by_the_clients_locale_or_the_lang_parameter(
    client: httpx.AsyncClient, visitor: httpx.AsyncClient, tenant: Tenant
) -> None:
    english = await client.patch(
        f"{API}/clients/{tenant.clients[0].id}",
        json={"locale": "en"},
        headers=tenant.headers("agency_owner"),
    )
    assert english.status_code == 200, english.text
    calendar = await make_calendar(client, tenant)
    page = await visitor.get(f"/book/{calendar['slug']}")
    assert '<html lang="en">' in page.text
    assert "Book an appointment: Beratung" in text_of(page.text)
    assert re.search(r'<a class="slot" href="[^"]+">\d{1,2}:00 [ap]m</a>', page.text)
    german = await visitor.get(f"/book/{calendar['slug']}?lang=de")
    assert '<html lang="de">' in german.text and "Termin buchen" in german.text


async def test_an_unknown_calendar_is_a_plain_404_page(visitor: httpx.AsyncClient) -> None:
    page = await visitor.get("/book/no-such-calendar")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "Unter dieser Adresse gibt es keine Terminbuchung." in text_of(page.text)
    assert "Traceback" not in page.text


# --- booking -------------------------------------------------------------------------------


async def test_a_visitor_books_and_gets_the_date_in_german_and_the_manage_link(
    client: httpx.AsyncClient,
    visitor: httpx.AsyncClient,
    tenant: Tenant,
    calendar: dict[str, Any],
) -> None:
    form = await first_slot_form(visitor, calendar["slug"])
    assert "Ihre Angaben" in form
    start = hidden(form, "start")
    booked = await visitor.post(f"/book/{calendar['slug']}", data=form_fields(form, **DETAILS))
    assert booked.status_code == 303
    assert "set-cookie" not in booked.headers
    confirmation = await visitor.get(booked.headers["location"])
    assert confirmation.status_code == 200
    text = text_of(confirmation.text)
    assert "Ihr Termin ist gebucht" in text
    assert "Eine Bestätigung geht an erika@beispiel.de." in text
    made = await appointments(client, tenant, calendar)
    assert len(made) == 1
    appointment = made[0]
    assert appointment["source"] == "page"
    assert appointment["attendee"]["name"] == "Erika Mustermann"
    assert appointment["notes"] == "Bitte früh"
    assert appointment["start"].replace("Z", "+00:00")[:16] in _utc_prefix(start)
    weekday = re.search(
        r"(Montag|Dienstag|Mittwoch|Donnerstag|Freitag|Samstag|Sonntag), \d{1,2}\. \w+ \d{4}, "
        r"\d{2}:\d{2} Uhr",
        text,
    )
    assert weekday, text
    assert appointment["manage_url"] in confirmation.text


def _utc_prefix(local_iso: str) -> str:
    from datetime import UTC, datetime

    return datetime.fromisoformat(local_iso).astimezone(UTC).isoformat()[:16]


async def test_a_double_submit_books_once(
    client: httpx.AsyncClient,
    visitor: httpx.AsyncClient,
    tenant: Tenant,
    calendar: dict[str, Any],
) -> None:
    form = await first_slot_form(visitor, calendar["slug"])
    data = form_fields(form, **DETAILS)
    first = await visitor.post(f"/book/{calendar['slug']}", data=data)
    again = await visitor.post(f"/book/{calendar['slug']}", data=data)
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    assert len(await appointments(client, tenant, calendar)) == 1


async def test_english_confirmation_has_the_date_in_english(
    visitor: httpx.AsyncClient, calendar: dict[str, Any]
) -> None:
    booked = await book_first_slot(visitor, calendar["slug"], "en")
    assert booked.status_code == 303
    assert "lang=en" in booked.headers["location"]
    page = text_of((await visitor.get(booked.headers["location"])).text)
    assert "Your appointment is booked" in page
    assert re.search(r"(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), \w+ \d", page)


async def test_invalid_details_come_back_with_messages_and_the_typed_values(
    client: httpx.AsyncClient,
    visitor: httpx.AsyncClient,
    tenant: Tenant,
    calendar: dict[str, Any],
) -> None:
    form = await first_slot_form(visitor, calendar["slug"])
    typed = {"name": "", "email": "erika-at-example", "phone": "", "note": "Hallo <b>"}
    again = await visitor.post(f"/book/{calendar['slug']}", data=form_fields(form, **typed))
    assert again.status_code == 422
    text = text_of(again.text)
    assert "Bitte geben Sie Ihren Namen an." in text
    assert "Bitte geben Sie eine gültige E-Mail-Adresse an." in text
    assert 'value="erika-at-example" required aria-invalid="true"' in again.text
    assert "Hallo &lt;b&gt;</textarea>" in again.text  # kept, and escaped
    assert 'aria-invalid="true"' in again.text
    # A wrong phone number: the booking service's own check, named at the field.
    phone = await visitor.post(
        f"/book/{calendar['slug']}",
        data=form_fields(again.text, **DETAILS, phone="12"),
    )
    assert phone.status_code == 422
    assert "Bitte geben Sie eine gültige Telefonnummer an." in text_of(phone.text)
    assert await appointments(client, tenant, calendar) == []


async def test_a_slot_taken_meanwhile_says_so_and_offers_others(
    client: httpx.AsyncClient,
    visitor: httpx.AsyncClient,
    tenant: Tenant,
    calendar: dict[str, Any],
) -> None:
    form = await first_slot_form(visitor, calendar["slug"])
    start = hidden(form, "start")
    taken = await client.post(
        f"{API}/appointments",
        json={
            "calendar_id": calendar["id"],
            "start": start,
            "attendee": {"name": "Schneller", "email": "schnell@beispiel.de"},
        },
        headers=tenant.headers("agency_owner"),
    )
    assert taken.status_code == 201, taken.text
    late = await visitor.post(f"/book/{calendar['slug']}", data=form_fields(form, **DETAILS))
    assert late.status_code == 409
    assert "Dieser Termin ist leider gerade vergeben worden." in text_of(late.text)
    offered = links_of(late.text, "slot")
    assert offered
    assert all(parse_qs(urlsplit(url).query)["start"][0] != start for url in offered)
    assert len(await appointments(client, tenant, calendar)) == 1


async def test_a_forged_or_stale_form_books_nothing(
    client: httpx.AsyncClient,
    visitor: httpx.AsyncClient,
    tenant: Tenant,
    calendar: dict[str, Any],
) -> None:
    form = await first_slot_form(visitor, calendar["slug"])
    stale = links.sign("form", f"{calendar['id']}:abc", utcnow() - timedelta(minutes=1))
    other = await make_calendar(client, tenant)
    foreign = links.sign("form", f"{other['id']}:abc", utcnow() + timedelta(hours=1))
    for token in (stale, foreign, "forged.123.0.abc", ""):
        answer = await visitor.post(
            f"/book/{calendar['slug']}", data=form_fields(form, **DETAILS, token=token)
        )
        assert answer.status_code == 200
        assert "Das Formular war zu lange offen." in text_of(answer.text)
        assert 'value="Erika Mustermann"' in answer.text
        assert hidden(answer.text, "token") != token  # a fresh one to confirm with
    assert await appointments(client, tenant, calendar) == []


async def test_broken_form_posts_get_a_page_not_a_crash(
    visitor: httpx.AsyncClient, calendar: dict[str, Any]
) -> None:
    slug = calendar["slug"]
    for data in (
        {},
        {"start": "yesterday"},
        {"start": "2026-13-45T99:00", "event": "x" * 500},
        {"start": "0001-01-01T00:00:00+14:00"},
    ):
        answer = await visitor.post(f"/book/{slug}", data=data)
        assert answer.status_code == 400
        assert "Die Anfrage war unvollständig." in text_of(answer.text)
    not_a_form = await visitor.post(
        f"/book/{slug}", content=b"\x00\xff", headers={"content-type": "application/json"}
    )
    assert not_a_form.status_code < 500
    bad_slot = await visitor.get(f"/book/{slug}/details?start=not-a-time")
    assert bad_slot.status_code == 400


async def test_posts_are_rate_limited_per_address(
    visitor: httpx.AsyncClient, calendar: dict[str, Any], pages_app: FastAPI
) -> None:
    answers = [
        (await visitor.post(f"/book/{calendar['slug']}", data={})).status_code
        for _ in range(form_posts_per_ip.burst + 1)
    ]
    assert answers[-1] == 429
    limited = await visitor.post(f"/book/{calendar['slug']}", data={})
    assert "Zu viele Versuche" in text_of(limited.text)
    assert int(limited.headers["retry-after"]) >= 1
    # Another address is not affected.
    async with visitor_client(pages_app) as other:
        assert (await other.post(f"/book/{calendar['slug']}", data={})).status_code == 400


async def test_pages_keep_the_strict_csp_and_set_no_cookies(
    visitor: httpx.AsyncClient, calendar: dict[str, Any]
) -> None:
    booked = await book_first_slot(visitor, calendar["slug"])
    manage = await visitor.get(booked.headers["location"])
    form = await first_slot_form(visitor, calendar["slug"])
    for page in (await visitor.get(f"/book/{calendar['slug']}"), manage):
        assert "set-cookie" not in page.headers
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "style-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["referrer-policy"] == "no-referrer"
    for html in (manage.text, form):
        assert " style=" not in html and "<style" not in html
        assert re.findall(r"<script[^>]*>", html) == [
            '<script src="/book/static/booking.js" defer>'
        ]
    css = await visitor.get("/book/static/booking.css")
    js = await visitor.get("/book/static/booking.js")
    assert css.status_code == js.status_code == 200
    assert (await visitor.get("/book/static/../pages.py")).status_code == 404


# --- the manage page -----------------------------------------------------------------------


async def test_the_attendee_cancels_with_the_manage_link(
    client: httpx.AsyncClient,
    visitor: httpx.AsyncClient,
    tenant: Tenant,
    calendar: dict[str, Any],
) -> None:
    booked = await book_first_slot(visitor, calendar["slug"])
    manage_path = urlsplit(booked.headers["location"]).path
    manage = await visitor.get(manage_path)
    assert "Termin absagen" in manage.text
    cancel = re.search(r'<form method="post" action="([^"]+)" class="cancel">', manage.text)
    assert cancel
    done = await visitor.post(
        cancel.group(1),
        data={"token": hidden(manage.text, "token"), "reason": "Krank", "lang": "de"},
    )
    assert done.status_code == 303
    after = await visitor.get(done.headers["location"])
    text = text_of(after.text)
    assert "Der Termin ist abgesagt." in text and "abgesagt" in text
    assert "Termin absagen" not in after.text  # nothing more to change
    [appointment] = await appointments(client, tenant, calendar)
    assert appointment["status"] == "cancelled"
    assert appointment["cancel_reason"] == "Krank"


async def test_the_attendee_reschedules_to_another_slot(
    client: httpx.AsyncClient,
    visitor: httpx.AsyncClient,
    tenant: Tenant,
    calendar: dict[str, Any],
) -> None:
    booked = await book_first_slot(visitor, calendar["slug"])
    manage = await visitor.get(booked.headers["location"])
    move = re.search(r'<a class="button" href="([^"]+)"', manage.text)
    assert move
    picker = await visitor.get(move.group(1).replace("&amp;", "&"))
    assert picker.status_code == 200 and "Neuen Termin wählen" in picker.text
    choice = links_of(picker.text, "slot")[-1]
    question = await visitor.get(choice)
    assert "Termin auf" in question.text and "verschieben?" in question.text
    action = re.search(r'<form method="post" action="([^"]+)" class="move">', question.text)
    assert action
    moved = await visitor.post(
        action.group(1),
        data={name: hidden(question.text, name) for name in ("token", "start", "lang")},
    )
    assert moved.status_code == 303
    after = await visitor.get(moved.headers["location"])
    assert "Der Termin ist verschoben." in text_of(after.text)
    [appointment] = await appointments(client, tenant, calendar)
    assert appointment["status"] == "confirmed" and appointment["sequence"] == 1
    assert appointment["start"][:16] == _utc_prefix(hidden(question.text, "start"))[:16]


async def test_a_tampered_or_expired_manage_link_gets_a_clear_page(
    client: httpx.AsyncClient,
    visitor: httpx.AsyncClient,
    tenant: Tenant,
    calendar: dict[str, Any],
) -> None:
    booked = await book_first_slot(visitor, calendar["slug"])
    token = urlsplit(booked.headers["location"]).path.rsplit("/", 1)[1]
    subject, expires, version, signature = token.split(".")
    tampered = f"{subject}.{int(expires) + 86400}.{version}.{signature}"
    for bad in (tampered, "nonsense", "x" * 300):
        page = await visitor.get(f"/book/manage/{bad}")
        assert page.status_code == 404
        assert "Dieser Link ist ungültig" in text_of(page.text)
        posted = await visitor.post(f"/book/manage/{bad}/cancel", data={"token": "x"})
        assert posted.status_code == 404
    expired = links.sign("manage", subject, utcnow() - timedelta(seconds=1))
    page = await visitor.get(f"/book/manage/{expired}")
    assert page.status_code == 410
    assert "Dieser Link ist abgelaufen" in text_of(page.text)
    assert "Traceback" not in page.text
    [appointment] = await appointments(client, tenant, calendar)
    assert appointment["status"] == "confirmed"


async def test_a_cancel_without_the_pages_form_token_changes_nothing(
    client: httpx.AsyncClient,
    visitor: httpx.AsyncClient,
    tenant: Tenant,
    calendar: dict[str, Any],
) -> None:
    booked = await book_first_slot(visitor, calendar["slug"])
    token = urlsplit(booked.headers["location"]).path.rsplit("/", 1)[1]
    refused = await visitor.post(f"/book/manage/{token}/cancel", data={"reason": "spam"})
    assert refused.status_code == 400
    [appointment] = await appointments(client, tenant, calendar)
    assert appointment["status"] == "confirmed"


async def test_a_calendar_with_several_event_types_lets_the_visitor_choose(
    client: httpx.AsyncClient, visitor: httpx.AsyncClient, tenant: Tenant
) -> None:
    calendar = await make_calendar(
        client,
        tenant,
        event_types=[
            {"name": "Beratung", "duration_minutes": 60},
            {"name": "Kurzer Anruf", "duration_minutes": 30, "location_kind": "phone"},
        ],
    )
    short = calendar["event_types"][1]
    page = await visitor.get(f"/book/{calendar['slug']}")
    assert 'aria-current="page">Beratung</a>' in page.text
    chosen = await visitor.get(f"/book/{calendar['slug']}?event={short['id']}")
    text = text_of(chosen.text)
    assert "Termin buchen: Kurzer Anruf" in text and "30 Minuten · Telefon" in text
    labels = re.findall(r'<a class="slot" href="[^"]+">([^<]+)</a>', chosen.text)
    assert any(label.endswith(":30") for label in labels)  # half-hour steps
    form = await visitor.get(links_of(chosen.text, "slot")[0])
    booked = await visitor.post(f"/book/{calendar['slug']}", data=form_fields(form.text, **DETAILS))
    assert booked.status_code == 303
    [appointment] = await appointments(client, tenant, calendar)
    assert appointment["event_type_id"] == short["id"]


async def test_moving_to_a_time_taken_meanwhile_offers_others(
    client: httpx.AsyncClient,
    visitor: httpx.AsyncClient,
    tenant: Tenant,
    calendar: dict[str, Any],
) -> None:
    booked = await book_first_slot(visitor, calendar["slug"])
    token = urlsplit(booked.headers["location"]).path.rsplit("/", 1)[1]
    picker = await visitor.get(f"/book/manage/{token}/reschedule")
    question = await visitor.get(links_of(picker.text, "slot")[-1])
    start = hidden(question.text, "start")
    taken = await client.post(
        f"{API}/appointments",
        json={
            "calendar_id": calendar["id"],
            "start": start,
            "attendee": {"name": "Schneller", "email": "schnell@beispiel.de"},
        },
        headers=tenant.headers("agency_owner"),
    )
    assert taken.status_code == 201, taken.text
    late = await visitor.post(
        f"/book/manage/{token}/reschedule",
        data={name: hidden(question.text, name) for name in ("token", "start", "lang")},
    )
    assert late.status_code == 409
    assert "Dieser Termin ist leider gerade vergeben worden." in text_of(late.text)
    assert links_of(late.text, "slot")
    mine = [a for a in await appointments(client, tenant, calendar) if a["source"] == "page"]
    assert [a["sequence"] for a in mine] == [0]
