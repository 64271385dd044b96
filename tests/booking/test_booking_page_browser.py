"""The booking page in real Chromium (Debian's, driven by Playwright) over real HTTP: a visitor
picks a day and a time, enters the details, books and sees the confirmation; opens the manage
link and cancels; and a visitor without JavaScript books just the same."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright, expect

from demandly.app import create_app
from demandly.config import Settings, reset_settings_cache
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.kit.devserver import free_port
from demandly.tenancy.models import Agency
from tests.booking.helpers import API
from tests.booking.test_booking_page import make_calendar, with_pages
from tests.factories import Tenant, make_tenant

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHROMIUM_INSTALLED = Path(CHROMIUM).exists()
ARTIFACTS = Path(__file__).parents[2] / "artifacts"
BRANDING = {"display_name": "Nordlicht Digital", "primary_color": "#0b6e69"}


@pytest.fixture(scope="module")
def site(settings: Settings) -> Iterator[str]:
    """The app with the booking pages, served by uvicorn on 127.0.0.1 in a thread of its own;
    its public address is the base URL the manage links are made with."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    previous = os.environ.get("DEMANDLY_BASE_URL")
    os.environ["DEMANDLY_BASE_URL"] = url
    reset_settings_cache()
    app = with_pages(create_app(settings.model_copy(update={"base_url": url})))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        assert server.started, "the booking site did not start"
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        if previous is None:
            os.environ.pop("DEMANDLY_BASE_URL", None)
        else:
            os.environ["DEMANDLY_BASE_URL"] = previous
        reset_settings_cache()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM_INSTALLED, "Chromium is missing: `make system-deps` installs it"
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


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
async def calendar(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    return await make_calendar(client, tenant)


async def statuses(
    client: httpx.AsyncClient, tenant: Tenant, calendar: dict[str, Any]
) -> list[str]:
    response = await client.get(
        f"{API}/appointments",
        params={"calendar_id": calendar["id"]},
        headers=tenant.headers("agency_owner"),
    )
    return [item["status"] for item in response.json()["items"]]


def watch_problems(page: Page) -> list[str]:
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    return problems


async def pick_and_book(page: Page, url: str, screenshot: Path | None = None) -> None:
    await page.goto(url)
    await expect(page.get_by_role("heading", name="Termin buchen: Beratung")).to_be_visible()
    # A later day than the first: the visitor chooses, the page follows.
    await page.locator("a.day").nth(1).click()
    await expect(page.locator("a.day.selected")).to_have_count(1)
    if screenshot is not None:
        await page.screenshot(path=str(screenshot), full_page=True)
    await page.locator("a.slot").first.click()
    await expect(page.get_by_role("heading", name="Ihre Angaben")).to_be_visible()
    await page.get_by_label("Name").fill("Erika Mustermann")
    await page.get_by_label("E-Mail").fill("erika@beispiel.de")
    await page.get_by_label("Telefon (optional)").fill("030 1234567")
    await page.get_by_label("Nachricht (optional)").fill("Zum ersten Mal da")
    await page.get_by_role("button", name="Termin verbindlich buchen").click()
    await expect(page.get_by_role("heading", name="Ihr Termin ist gebucht")).to_be_visible()


async def test_a_visitor_books_and_then_cancels_in_chromium(
    browser: Browser,
    site: str,
    client: httpx.AsyncClient,
    tenant: Tenant,
    calendar: dict[str, Any],
) -> None:
    context = await browser.new_context(viewport={"width": 390, "height": 844}, locale="de-DE")
    page = await context.new_page()
    problems = watch_problems(page)
    try:
        ARTIFACTS.mkdir(exist_ok=True)
        await pick_and_book(
            page, f"{site}/book/{calendar['slug']}", screenshot=ARTIFACTS / "booking-page.png"
        )
        # The brand's colour reached the page through the CSS variables.
        bar = await page.locator(".brand-bar").evaluate("e => getComputedStyle(e).backgroundColor")
        assert bar == "rgb(11, 110, 105)"
        await expect(page.locator(".brand-name")).to_have_text("Nordlicht Digital")
        await expect(page.locator("dd.when")).to_contain_text(" Uhr (Europe/Berlin)")
        await page.screenshot(path=str(ARTIFACTS / "booking-confirmation.png"), full_page=True)
        assert await statuses(client, tenant, calendar) == ["confirmed"]

        manage = page.locator(".manage-link a")
        href = await manage.get_attribute("href")
        assert href is not None and href.startswith(f"{site}/book/manage/")
        await manage.click()
        await expect(page.get_by_role("heading", name="Ihr Termin")).to_be_visible()
        await page.get_by_label("Grund (optional)").fill("Krank")
        await page.get_by_role("button", name="Termin absagen").click()
        await expect(page.get_by_text("Der Termin ist abgesagt.")).to_be_visible()
        await expect(page.locator("dd.status")).to_have_text("abgesagt")
        assert await statuses(client, tenant, calendar) == ["cancelled"]
        assert await context.cookies() == []
        assert problems == []
    finally:
        await context.close()


async def test_without_javascript_the_visitor_books_too(
    browser: Browser,
    site: str,
    client: httpx.AsyncClient,
    tenant: Tenant,
    calendar: dict[str, Any],
) -> None:
    context = await browser.new_context(java_script_enabled=False, locale="de-DE")
    page = await context.new_page()
    try:
        await pick_and_book(page, f"{site}/book/{calendar['slug']}")
        assert await statuses(client, tenant, calendar) == ["confirmed"]
    finally:
        await context.close()
