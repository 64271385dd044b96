"""Accessibility of the dashboard, checked by axe-core (WCAG 2.1 A and AA rules: labels,
contrast, landmarks, names of controls, ARIA use) in real Chromium, on the main pages of the
demo agency with its week of history, in German and English.

axe-core comes from npm (`make test` fetches it into the virtual environment)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from demandly.bootstrap import DEMO_CRAFTSMAN, DEMO_DOMAIN, DEMO_LOGINS, DEMO_PRACTICE, _seed
from demandly.kit.db import Database
from tests.channels.web.test_widget_browser import CHROMIUM, CHROMIUM_ARGS, CHROMIUM_INSTALLED
from tests.conftest import LiveServer

AXE = Path(sys.prefix) / "axe" / "axe.min.js"
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
RUN_AXE = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: "tag", values: tags}});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 3).map(n => n.target.join(" ") + " :: " + n.failureSummary),
  }));
}"""


@pytest.fixture(scope="module")
async def chromium() -> AsyncIterator[Browser]:
    assert CHROMIUM_INSTALLED, "Chromium is missing: `make system-deps` installs it"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {DEMO_DOMAIN} 127.0.0.1"],
        )
        yield browser
        await browser.close()


async def violations(page: Page) -> list[dict[str, object]]:
    await page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    return await page.evaluate(RUN_AXE, WCAG)  # type: ignore[no-any-return]


async def client_ids(page: Page, origin: str) -> dict[str, str]:
    await page.goto(f"{origin}/app")
    ids = {}
    for name in (DEMO_PRACTICE, DEMO_CRAFTSMAN):
        href = await page.get_by_role("link", name=name).first.get_attribute("href")
        assert href is not None
        ids[name] = href.split("/")[3]
    return ids


@pytest.mark.parametrize("locale", ["de-DE", "en-GB"])
async def test_the_main_pages_pass_axe(
    chromium: Browser, live_server: LiveServer, db: Database, locale: str
) -> None:
    assert AXE.exists(), "axe-core is missing: `make test` fetches it"
    await _seed(db)
    origin = f"http://{DEMO_DOMAIN}:{live_server.url.rsplit(':', 1)[1]}"
    owner = next(login for login in DEMO_LOGINS if login.role == "agency_owner")
    # bypass_csp: axe is injected as an inline script, which the pages' CSP (rightly) refuses.
    context = await chromium.new_context(
        locale=locale, viewport={"width": 1280, "height": 900}, bypass_csp=True
    )
    page = await context.new_page()
    try:
        found: dict[str, list[dict[str, object]]] = {}
        await page.goto(f"{origin}/login")
        found["/login"] = await violations(page)
        await page.locator("#f-email").fill(owner.email)
        await page.locator("#f-password").fill(owner.password)
        await page.locator("form[action='/login'] button[type=submit]").click()
        await page.wait_for_url(f"{origin}/app")
        ids = await client_ids(page, origin)
        practice, krause = ids[DEMO_PRACTICE], ids[DEMO_CRAFTSMAN]
        paths = [
            "/app",
            f"/app/clients/{practice}/agents",
            f"/app/clients/{practice}/inbox",
            f"/app/clients/{practice}/leads",
            f"/app/clients/{practice}/calendar",
            f"/app/clients/{practice}/knowledge",
            f"/app/clients/{practice}/settings",
            f"/app/clients/{krause}/phone/calls",
            f"/app/clients/{krause}/phone/calls/new",
            f"/app/clients/{krause}/phone/campaigns/new",
            "/app/team",
            "/app/settings",
            "/app/audit",
            "/app/account",
        ]
        for path in paths:
            await page.goto(f"{origin}{path}")
            found[path] = await violations(page)
        # One page of each kind behind a link: an agent's builder, a transcript, a lead.
        for listing, pattern in (
            (f"/app/clients/{practice}/agents", "/agents/agt_"),
            (f"/app/clients/{practice}/inbox", "/inbox/conv_"),
            (f"/app/clients/{practice}/leads", "/leads/lead_"),
        ):
            await page.goto(f"{origin}{listing}")
            await page.locator(f"main a[href*='{pattern}']").first.click()
            await page.wait_for_load_state()
            found[page.url.removeprefix(origin)] = await violations(page)
        failing = {path: problems for path, problems in found.items() if problems}
        report = "\n".join(
            f"{path}: {problem['id']} ({problem['impact']}) {problem['nodes']}"
            for path, problems in failing.items()
            for problem in problems
        )
        assert not failing, report
    finally:
        await context.close()
