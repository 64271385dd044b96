"""The widget in real Chromium (Debian's, driven by Playwright) on the demo practice website,
served by a real server over HTTP: consent, streamed answers, history across a reload,
keyboard use, recovery from a lost answer and from going offline, a person taking over, the
end of a conversation, and an English agent embedded on a client's own website."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, Route, async_playwright, expect

from demandly.bootstrap import DEMO_LOGINS, _seed
from demandly.kit.db import Database
from tests.conftest import LiveServer
from tests.conversations.conftest import publish_agent
from tests.factories import make_tenant

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHROMIUM_INSTALLED = Path(CHROMIUM).exists()
ARTIFACTS = Path(__file__).parents[3] / "artifacts"
MESSAGES = "**/api/v1/public/conversations/*/messages"

# Counts what the widget put into its Shadow DOM: the bubble that grows with each delta and
# the typing indicator (both leave again once the stored answer arrives).
WATCH_STREAMING = """() => {
  window.__seen = {streaming: 0, typing: 0};
  const root = document.querySelector("demandly-chat").shadowRoot;
  new MutationObserver((records) => {
    for (const record of records) for (const node of record.addedNodes) {
      if (!node.classList) continue;
      if (node.classList.contains("streaming")) window.__seen.streaming += 1;
      if (node.classList.contains("typing")) window.__seen.typing += 1;
    }
  }).observe(root, {childList: true, subtree: true});
}"""


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM_INSTALLED, "Chromium is missing: `make system-deps` installs it"
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture
async def demo(db: Database, live_server: LiveServer) -> str:
    await _seed(db)
    return f"{live_server.url}/demo"


async def accept_notice(page: Page) -> None:
    await page.get_by_role("button", name="Chat öffnen: Lena").click()
    await page.get_by_role("button", name="Zustimmen und Chat starten").click()
    await expect(page.get_by_role("textbox", name="Ihre Nachricht")).to_be_focused()


async def say(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name="Ihre Nachricht")
    await box.fill(text)
    await box.press("Enter")


async def sign_in(http: httpx.AsyncClient, role: str) -> dict[str, str]:
    """A demo login of the practice: the session cookie and CSRF header to send."""
    login = next(login for login in DEMO_LOGINS if login.role == role)
    response = await http.post(
        "/api/v1/auth/login", json={"email": login.email, "password": login.password}
    )
    assert response.status_code == 200, response.text
    cookie = "; ".join(f"{name}={value}" for name, value in response.cookies.items())
    http.cookies.clear()
    return {"Cookie": cookie, "X-CSRF-Token": response.json()["csrf_token"]}


def sse_deltas(body: str) -> str:
    text = []
    for block in body.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if lines.get("event") == "delta":
            text.append(json.loads(lines["data"])["text"])
    return "".join(text)


async def test_a_visitor_chats_with_lena_on_the_demo_site(browser: Browser, demo: str) -> None:
    context = await browser.new_context(viewport={"width": 360, "height": 740}, locale="de-DE")
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    try:
        await page.goto(demo)
        launcher = page.get_by_role("button", name="Chat öffnen: Lena")
        await expect(launcher).to_have_attribute("aria-expanded", "false")
        # The page styles every <button> (dashed red border, capitals); the Shadow DOM keeps
        # the widget in the practice's colours regardless.
        looks = await launcher.evaluate(
            "e => { const s = getComputedStyle(e); "
            "return [s.borderTopStyle, s.textTransform, s.backgroundColor]; }"
        )
        assert looks == ["none", "none", "rgb(11, 110, 105)"]

        await launcher.click()
        # Full screen at 360 px: the panel covers the page and the launcher.
        panel = page.get_by_role("dialog", name="Lena")
        assert await panel.evaluate("e => e.getBoundingClientRect().width") == 360
        await expect(page.get_by_text("verarbeitet die Zahnarztpraxis Dr. Sommer")).to_be_visible()
        policy = page.get_by_role("link", name="Datenschutzerklärung").last
        await expect(policy).to_have_attribute("href", "https://nordlicht.example/datenschutz")
        # Inform before processing: no way to write, nothing stored, before the visitor agrees.
        await expect(page.get_by_role("textbox", name="Ihre Nachricht")).to_be_hidden()
        assert await page.evaluate("localStorage.length") == 0

        await page.get_by_role("button", name="Zustimmen und Chat starten").click()
        await expect(page.get_by_role("textbox", name="Ihre Nachricht")).to_be_focused()
        await page.evaluate(WATCH_STREAMING)

        async with page.expect_response(
            lambda r: r.request.method == "POST" and r.url.endswith("/messages")
        ) as posted:
            await say(page, "Was kostet eine Zahnreinigung?")
        response = await posted.value
        assert response.headers["content-type"].startswith("text/event-stream")
        answer = page.locator(".msg.bot").filter(has_text="89 Euro")
        await expect(answer).to_be_visible()
        streamed = sse_deltas(await response.text())
        assert "89 Euro" in streamed
        await expect(answer).to_contain_text(streamed)
        seen = await page.evaluate("window.__seen")
        assert seen["streaming"] >= 1 and seen["typing"] == 1

        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "widget-360.png"))

        await page.reload()
        await expect(page.locator(".msg.bot").filter(has_text="89 Euro")).to_be_visible()
        await expect(page.locator(".msg.me")).to_have_count(1)
        await expect(page.locator(".msg.me")).to_contain_text("Was kostet eine Zahnreinigung?")

        # Keyboard: Escape closes and gives focus back to the launcher; Enter opens again.
        await page.get_by_role("textbox", name="Ihre Nachricht").focus()
        await page.keyboard.press("Escape")
        await expect(panel).to_be_hidden()
        await expect(launcher).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("textbox", name="Ihre Nachricht")).to_be_focused()
        # Full screen, Tab stays inside the chat: past the send button it wraps to the top.
        await page.keyboard.press("Tab")
        await expect(page.get_by_role("button", name="Senden")).to_be_focused()
        await page.keyboard.press("Tab")
        await expect(page.get_by_role("button", name="Chat schließen")).to_be_focused()
        assert problems == []
    finally:
        await context.close()


async def test_lost_answers_and_lost_connections_lose_and_double_nothing(
    browser: Browser, demo: str, live_server: LiveServer
) -> None:
    context = await browser.new_context(locale="de-DE")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    dropped: list[str] = []

    async def lose_the_first_answer(route: Route) -> None:
        # The server receives and answers the message; the answer never reaches the browser.
        if route.request.method == "POST" and not dropped:
            dropped.append(json.loads(route.request.post_data or "{}")["client_message_id"])
            await route.fetch()
            await route.abort("connectionreset")
        else:
            await route.continue_()

    try:
        await page.goto(demo)
        await accept_notice(page)
        await page.route(MESSAGES, lose_the_first_answer)

        await say(page, "Gibt es Parkplätze?")
        parking = page.locator(".msg.bot").filter(has_text="Patientenparkplätze")
        await expect(parking).to_be_visible()
        await expect(page.locator(".msg.me")).to_have_count(1)
        assert len(dropped) == 1

        await context.set_offline(True)
        await say(page, "Behandeln Sie auch Kassenpatienten?")
        await expect(page.get_by_text("Keine Verbindung")).to_be_visible()
        await expect(page.locator(".msg.me.pending")).to_have_count(1)
        await context.set_offline(False)
        await expect(page.locator(".msg.bot").filter(has_text="Versichertenkarte")).to_be_visible()
        await expect(page.get_by_text("Keine Verbindung")).to_be_hidden()
        await expect(page.locator(".msg.me")).to_have_count(2)

        # The server, too, holds each message once.
        saved = json.loads(await page.evaluate("Object.values(localStorage)[0]"))
        transcript = await (
            await page.request.get(
                f"{live_server.url}/api/v1/public/conversations/{saved['c']}/messages",
                headers={"Authorization": f"Bearer {saved['t']}"},
            )
        ).json()
        mine = [m["content"] for m in transcript["messages"] if m["role"] == "user"]
        assert mine == ["Gibt es Parkplätze?", "Behandeln Sie auch Kassenpatienten?"]
        assert saved["o"] == []
        assert errors == []
    finally:
        await context.close()


async def test_a_person_takes_over_and_a_goodbye_ends_the_chat(
    browser: Browser, demo: str, live_server: LiveServer
) -> None:
    context = await browser.new_context(locale="de-DE")
    page = await context.new_page()
    try:
        await page.goto(demo)
        await accept_notice(page)
        await say(page, "Ich möchte bitte mit einem Mitarbeiter sprechen")
        await expect(page.get_by_text("Ein Mitarbeiter übernimmt das Gespräch")).to_be_visible()

        # A person of the practice answers in the inbox; the open widget picks it up.
        saved = json.loads(await page.evaluate("Object.values(localStorage)[0]"))
        inbox = f"/api/v1/conversations/{saved['c']}"
        async with httpx.AsyncClient(base_url=live_server.url) as http:
            http.headers.update(await sign_in(http, "client_admin"))
            answered = await http.post(
                f"{inbox}/messages", json={"text": "Hallo, hier ist Frau Sommer persönlich."}
            )
            assert answered.status_code == 201, answered.text
            person = page.locator(".msg.human").filter(has_text="Frau Sommer persönlich")
            await expect(person).to_be_visible(timeout=10_000)
            await expect(person).to_contain_text("Team")
            assert (await http.post(f"{inbox}/release")).status_code == 200

        await say(page, "Danke, das war alles. Tschüss!")
        await expect(page.get_by_text("Dieses Gespräch ist beendet.")).to_be_visible()
        await expect(page.get_by_role("textbox", name="Ihre Nachricht")).to_be_hidden()
        await page.get_by_role("button", name="Neues Gespräch beginnen").click()
        await expect(page.get_by_role("button", name="Zustimmen und Chat starten")).to_be_focused()
        assert await page.evaluate("localStorage.length") == 0
    finally:
        await context.close()


@contextmanager
def client_website(content: dict[str, str], csp: str) -> Iterator[str]:
    """A client's own website on another origin: one page (``content["html"]``, read when
    asked for), served with the site's own CSP."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = content["html"].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Security-Policy", csp)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"  # not the platform's origin
    finally:
        server.shutdown()
        server.server_close()


async def test_an_english_agent_on_a_clients_own_website_under_a_strict_csp(
    browser: Browser, live_server: LiveServer, client: httpx.AsyncClient, db: Database
) -> None:
    tenant = await make_tenant(db)
    # The website's own CSP names the platform for script and connections, nothing for styles.
    csp = (
        f"default-src 'self'; script-src 'self' {live_server.url}; "
        f"connect-src 'self' {live_server.url}; style-src 'self'; img-src 'self'"
    )
    context = await browser.new_context(locale="en-GB")
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    snippet = '<script src="{base}/widget.js" data-agent="{key}" async></script>'
    html = "<!doctype html><html lang='en'><title>Shop</title><h1>A client's site</h1>{snippet}"
    page_html: dict[str, str] = {}
    try:
        with client_website(page_html, csp) as site:
            agent = await publish_agent(
                client,
                tenant,
                language="en",
                greeting="Hello, this is Lena from the practice. How can I help?",
                faq=[{"question": "Do you have parking?", "answer": "Yes, four spaces behind."}],
                widget={"allowed_origins": [site], "primary_color": "#7a1f5c"},
            )
            page_html["html"] = html.format(
                snippet=snippet.format(base=live_server.url, key=agent.public_key)
            )
            await page.goto(f"{site}/")
            launcher = page.get_by_role("button", name="Open chat: Lena")
            await expect(launcher).to_be_visible()
            color = await launcher.evaluate("e => getComputedStyle(e).backgroundColor")
            assert color == "rgb(122, 31, 92)"  # styled, though the page allows no inline style
            await launcher.click()
            await page.get_by_role("button", name="Accept and start chat").click()
            box = page.get_by_role("textbox", name="Your message")
            await expect(box).to_be_focused()
            await box.fill("Do you have parking?")
            await box.press("Enter")
            await expect(page.locator(".msg.bot").filter(has_text="four spaces")).to_be_visible()
        assert problems == []
    finally:
        await context.close()
