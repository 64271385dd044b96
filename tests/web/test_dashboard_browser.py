"""The dashboard in real Chromium (Debian's, driven by Playwright) against a real server, on an
agency's own domain: sign in as its admin, create a client, build and publish an agent, chat
with it in the test panel and watch the conversation arrive in the inbox live, see the lead,
book through the widget on the client's website and find the appointment in the calendar;
a client_viewer cannot reach settings. Screenshots of the main pages are kept in
``artifacts/``, and no page on the agency's domain says "Demandly"."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from demandly.kit.db import Database
from demandly.tenancy.models import Role
from tests.channels.web.test_widget_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CHROMIUM_INSTALLED,
    client_website,
)
from tests.conftest import LiveServer
from tests.factories import PASSWORD, make_tenant, make_user, unique
from tests.web.support import verified_domain

ARTIFACTS = Path(__file__).parents[2] / "artifacts"
BERLIN = ZoneInfo("Europe/Berlin")
PLATFORM_NAME = "Demandly"
BOOKING_TOOLS = ("check_availability", "book_appointment", "reschedule_appointment")


@pytest.fixture(scope="module")
async def chromium() -> AsyncIterator[Browser]:
    assert CHROMIUM_INSTALLED, "Chromium is missing: `make system-deps` installs it"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            # Every *.agency.test name is this machine: the agency's domain, served by the app.
            args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP *.agency.test 127.0.0.1"],
        )
        yield browser
        await browser.close()


def booking_day() -> date:
    """A Tuesday or Wednesday at least a week ahead: inside the default weekly hours."""
    day = datetime.now(BERLIN).date() + timedelta(days=7)
    while day.weekday() not in (1, 2):
        day += timedelta(days=1)
    return day


async def shoot(page: Page, name: str) -> None:
    """Keep a screenshot, and check the page never names the platform."""
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)
    assert PLATFORM_NAME not in await page.content(), f"{name} shows the platform's name"
    assert PLATFORM_NAME not in await page.title()


async def sign_in(page: Page, origin: str, email: str) -> None:
    await page.goto(f"{origin}/login")
    await page.get_by_label("E-Mail").fill(email)
    await page.get_by_label("Passwort").fill(PASSWORD)
    await page.get_by_role("button", name="Anmelden").click()
    await expect(page).to_have_url(f"{origin}/app")


async def save_section(page: Page, section: str) -> None:
    await page.locator(f"section#{section}").get_by_role("button", name="Speichern").click()
    await expect(page.locator(".flash")).to_be_visible()


async def new_context(chromium: Browser) -> BrowserContext:
    return await chromium.new_context(locale="de-DE", viewport={"width": 1280, "height": 900})


async def test_an_agency_admin_runs_a_client_end_to_end_on_the_agency_domain(
    chromium: Browser, live_server: LiveServer, db: Database
) -> None:
    tenant = await make_tenant(db)
    admin = await make_user(db, role=Role.AGENCY_ADMIN, agency_id=tenant.agency.id)
    domain = f"{unique('portal').lower()}.agency.test"
    await verified_domain(db, tenant.agency, domain)
    port = live_server.url.rsplit(":", 1)[1]
    origin = f"http://{domain}:{port}"

    context = await new_context(chromium)
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    try:
        # The login page is the agency's.
        await page.goto(f"{origin}/login")
        await expect(page.get_by_role("link", name=tenant.agency.name)).to_be_visible()
        await shoot(page, "login")
        await sign_in(page, origin, admin.email)
        await shoot(page, "home")

        # A client.
        await page.get_by_label("Neuer Kunde").fill("Praxis am See")
        await page.get_by_role("button", name="Anlegen").click()
        await expect(page).to_have_url(re.compile(r"/app/clients/cli_[^/]+/agents$"))
        client_url = page.url.removesuffix("/agents")

        # A calendar with the default weekly hours.
        await page.goto(f"{client_url}/calendar")
        await page.get_by_label("Name").fill("Behandlung")
        await page.get_by_role("button", name="Kalender anlegen").click()
        await expect(page.locator(".flash")).to_be_visible()

        # An agent: basics, booking tools, the calendar, the website it may run on.
        await page.goto(f"{client_url}/agents")
        await page.get_by_label("Name").fill("Empfang")
        await page.get_by_role("button", name="Agent anlegen").click()
        await expect(page.locator("section#basics")).to_be_visible()
        await page.locator("section#basics").get_by_label("Persona-Name").fill("Mia")
        await save_section(page, "basics")
        for tool in BOOKING_TOOLS:
            await page.locator(f"input[name=tools][value={tool}]").check()
        await save_section(page, "tools")
        await (
            page.locator("section#knowledge")
            .get_by_label("Kalender, in den der Agent bucht")
            .select_option(label="Behandlung")
        )
        await save_section(page, "knowledge")

        content: dict[str, str] = {}
        csp = f"default-src 'self'; script-src 'self' {origin}; connect-src 'self' {origin}"
        with client_website(content, csp) as site:
            widget = page.locator("section#widget")
            await widget.get_by_label("Erlaubte Websites").fill(site)
            await save_section(page, "widget")
            await page.get_by_role("button", name="Veröffentlichen").click()
            await expect(page.locator("section#publish")).to_contain_text("Version 1")
            snippet = await page.locator("#embed-snippet").input_value()
            assert snippet.startswith(f'<script src="{origin}/widget.js"')
            await shoot(page, "agent-builder")

            # The inbox, open in a second tab, sees the test chat arrive without a reload.
            inbox = await context.new_page()
            await inbox.goto(f"{client_url}/inbox")
            await shoot(inbox, "inbox-empty")
            await page.get_by_role("button", name="Testgespräch starten").click()
            chat = page.locator("section[aria-labelledby=test-chat-h]")
            await chat.get_by_label("Ihre Nachricht").fill(
                "Hallo, ich bin Lisa Lind, lisa.lind@example.com. Bitte rufen Sie mich zurück."
            )
            await chat.get_by_role("button", name="Senden").click()
            await expect(chat).to_contain_text("Lisa")
            await expect(inbox.locator("table")).to_contain_text("Test", timeout=15_000)
            await inbox.locator("table a").first.click()
            await expect(inbox.locator(".transcript")).to_contain_text("Lisa Lind")
            await shoot(inbox, "transcript")

            # The client's own website with the widget: book an appointment.
            day = booking_day()
            content["html"] = (
                "<!doctype html><html lang='de'><title>Praxis am See</title>"
                f"<h1>Praxis am See</h1>{snippet}"
            )
            visitor = await context.new_page()
            await visitor.goto(f"{site}/")
            await visitor.get_by_role("button", name="Chat öffnen: Mia").click()
            await visitor.get_by_role("button", name="Zustimmen und Chat starten").click()
            box = visitor.get_by_role("textbox", name="Ihre Nachricht")
            for text in (
                f"Ich hätte gern einen Termin am {day:%d.%m.} vormittags",
                "Max Muster",
                "max.muster@example.com",
            ):
                await box.fill(text)
                await box.press("Enter")
                await expect(visitor.locator(".msg.bot").last).not_to_have_class(
                    re.compile("streaming")
                )
            await visitor.get_by_role("button", name=re.compile(r"um 9:00 Uhr$")).click()
            await visitor.get_by_role("button", name="Ja", exact=True).click()
            await expect(visitor.locator(".msg.bot").last).to_contain_text(
                "Ihr Termin ist gebucht", timeout=15_000
            )

        # The leads: from the test chat and from the booking conversation.
        await page.goto(f"{client_url}/leads")
        await expect(page.locator("table")).to_contain_text("Lisa Lind")
        await expect(page.locator("table")).to_contain_text("Max Muster")
        await shoot(page, "leads")

        # The appointment in the calendar's week.
        await page.goto(f"{client_url}/calendar?week={day.isoformat()}")
        await expect(page.locator(f"[aria-labelledby=day-{day.isoformat()}]")).to_contain_text(
            "Max Muster"
        )
        await shoot(page, "calendar")

        for path, name in (
            (f"{client_url}/knowledge", "knowledge"),
            (f"{client_url}/settings", "client-settings"),
            ("/app/settings", "agency-settings"),
            ("/app/team", "team"),
            ("/app/audit", "audit"),
        ):
            await page.goto(path if path.startswith("http") else f"{origin}{path}")
            await expect(page.locator("main h1")).to_be_visible()
            await shoot(page, name)
        assert problems == []
    finally:
        await context.close()


async def test_a_client_viewer_cannot_reach_settings(
    chromium: Browser, live_server: LiveServer, db: Database
) -> None:
    tenant = await make_tenant(db)
    domain = f"{unique('portal').lower()}.agency.test"
    await verified_domain(db, tenant.agency, domain)
    origin = f"http://{domain}:{live_server.url.rsplit(':', 1)[1]}"
    context = await new_context(chromium)
    page = await context.new_page()
    try:
        await sign_in(page, origin, tenant.users["client_viewer"].email)
        nav = page.get_by_role("navigation", name="Hauptnavigation")
        await expect(nav).not_to_contain_text("Einstellungen")
        client = tenant.clients[0]
        for path in (f"/app/clients/{client.id}/settings", "/app/settings"):
            response = await page.goto(f"{origin}{path}")
            assert response is not None and response.status == 403
            await expect(page.locator("main h1")).to_have_text("Nicht erlaubt")
            assert PLATFORM_NAME not in await page.content()
        # What the viewer may see, they see.
        response = await page.goto(f"{origin}/app/clients/{client.id}/inbox")
        assert response is not None and response.status == 200
    finally:
        await context.close()
