"""A small website on 127.0.0.1 for fetch and crawl tests (a real HTTP server in a thread).

    with serve_site() as site:
        site.url("/de/leistungen")      # http://127.0.0.1:PORT/de/leistungen
        site.add("/extra", "<html>…</html>")
        site.requested                  # paths (with query) in the order they were asked for

The default site is a dental practice in German and English: pages with navigation, footer
and cookie banner, robots.txt disallowing /private/ and naming a sitemap index, a page found
only through the sitemap, a link loop, an endless chain of pages, a 50 MB response (streamed,
never held in memory), redirects to 169.254.169.254 and 10.0.0.1, an image and a JSON answer.

Also here: ``make_pdf()`` / ``make_docx()`` (files written by fpdf2 and python-docx),
``make_tls(name)`` + ``serve_site(tls=...)`` for HTTPS, and ``fake_dns(monkeypatch, {...})``
to resolve made-up host names (or play a rebinding DNS server) inside an async test.
"""

from __future__ import annotations

import asyncio
import datetime
import io
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fpdf import FPDF

HTML = "text/html; charset=utf-8"
BIG_BYTES = 50_000_000
_BLOCK = 64 * 1024


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = HTML
    headers: dict[str, str] = field(default_factory=dict)
    stream_bytes: int = 0  # > 0: stream this many filler bytes instead of ``body``
    declare_length: bool = False  # send Content-Length for a streamed body


@dataclass
class LocalSite:
    base_url: str
    routes: dict[str, Route] = field(default_factory=dict)
    requested: list[str] = field(default_factory=list)
    host_headers: list[str] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)  # TLS SNI, with ``tls``

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def add(
        self,
        path: str,
        body: str | bytes,
        *,
        content_type: str = HTML,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.routes[path] = Route(data, status, content_type, headers or {})

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        self.routes[path] = Route(status=status, headers={"Location": location})

    def remove(self, path: str) -> None:
        self.routes.pop(path, None)

    def was_requested(self, path: str) -> bool:
        return any(p.split("?", 1)[0] == path for p in self.requested)


PRICES = [
    ("Leistung", "Preis"),
    ("Professionelle Zahnreinigung", "89,00 EUR"),
    ("Bleaching", "249,00 EUR"),
]


def make_pdf() -> bytes:
    """A price list as a PDF library writes it: a title, a heading, text and a price table.
    (Core PDF fonts are Latin-1: umlauts and ß work, the euro sign does not.)"""
    pdf = FPDF()
    pdf.set_title("Preisliste Praxis Sonnenschein")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 20)
    pdf.cell(text="Preisliste 2026", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(
        0,
        6,
        text="Alle Preise verstehen sich inklusive Mehrwertsteuer. Die Zahnreinigung übernehmen "
        "nicht alle gesetzlichen Krankenkassen; fragen Sie uns gerne nach der Erstattung durch "
        "Ihre Versicherung. Größere Behandlungen planen wir gemeinsam mit Ihnen.",
    )
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(text="Prophylaxe und Ästhetik", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    with pdf.table() as table:
        for cells in PRICES:
            row = table.row()
            for cell in cells:
                row.cell(cell)
    return bytes(pdf.output())


def make_docx() -> bytes:
    """A practice handbook as Word writes it: Title, Heading 1/2 styles, text and a table."""
    document = docx.Document()
    document.core_properties.title = "Praxishandbuch"
    document.add_heading("Praxishandbuch", level=0)
    document.add_paragraph("Dieses Handbuch beschreibt die Abläufe in unserer Praxis.")
    document.add_heading("Terminvergabe", level=1)
    document.add_paragraph("Termine vergeben wir telefonisch von 8 bis 12 Uhr.")
    document.add_heading("Notfälle", level=2)
    document.add_paragraph("Schmerzpatienten erhalten noch am selben Tag einen Termin.")
    document.add_heading("Preise", level=1)
    table = document.add_table(rows=0, cols=2)
    for cells in PRICES:
        row = table.add_row().cells
        row[0].text, row[1].text = cells
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _page(title: str, body: str, lang: str = "de") -> str:
    """A page as a site builder makes it: navigation, cookie banner, main content, footer."""
    return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{title} | Praxis Sonnenschein</title>
<script>window.dataLayer = []; function track() {{ return "tracking-code"; }}</script>
<style>.cookie-banner {{ position: fixed; }}</style></head>
<body>
<header><a href="/">Praxis Sonnenschein</a></header>
<nav class="menu"><a href="/">Start</a> <a href="/de/leistungen">Leistungen</a>
<a href="/en/services">English</a> <a href="/kontakt">Kontakt</a></nav>
<div id="cookie-banner" class="cookie-banner">Wir verwenden Cookies, um unsere Website zu
verbessern. <button>Alle akzeptieren</button> <button>Ablehnen</button></div>
<main>{body}</main>
<footer><p>Impressum · Datenschutz · © 2026 Praxis Sonnenschein GmbH</p></footer>
</body></html>"""


def _home(base_url: str) -> str:
    other_host = base_url.replace("127.0.0.1", "localhost")
    return _page(
        "Willkommen",
        f"""<h1>Willkommen in der Praxis Sonnenschein</h1>
<p>Wir sind Ihre Zahnarztpraxis in der Großen Straße 12 in München. Unser Team freut sich
auf Ihren Besuch und nimmt sich Zeit für Ihre Fragen.</p>
<p><a href="/de/leistungen">Unsere Leistungen</a> · <a href="/en/services">Our services</a>
· <a href="/private/intern">Intern</a> · <a href="/loop/a">Rundgang</a>
· <a href="/chain/1">Archiv</a> · <a href="/big">Großes Archiv</a>
· <a href="/redirect/metadata">Status</a> · <a href="/redirect/private">Admin</a>
· <a href="/redirect/services#top">Services</a> · <a href="/logo.png">Logo</a>
· <a href="/api/data">Daten</a> · <a href="{other_host}/anderer-host">Partner</a>
· <a href="https://example.org/extern">Extern</a> · <a href="mailto:info@example.org">Mail</a>
· <a href="/kontakt" rel="nofollow">Kontakt</a></p>""",
    )


LEISTUNGEN = _page(
    "Leistungen",
    """<h1>Unsere Leistungen</h1>
<p>Wir bieten Ihnen das gesamte Spektrum der modernen Zahnheilkunde.</p>
<h2>Professionelle Zahnreinigung</h2>
<p>Die professionelle Zahnreinigung dauert etwa 45 Minuten und kostet 89 Euro. Dabei
entfernen wir Beläge und Zahnstein gründlich und polieren die Zahnoberflächen.</p>
<h2>Öffnungszeiten</h2>
<p>Montag bis Freitag von 8 bis 18 Uhr, samstags nach Vereinbarung. Bei Schmerzen rufen Sie
bitte sofort an; wir finden einen Termin am selben Tag.</p>
<h2>Preise</h2>
<table><tr><th>Leistung</th><th>Preis</th></tr>
<tr><td>Zahnreinigung</td><td>89 €</td></tr><tr><td>Bleaching</td><td>249 €</td></tr></table>""",
)

SERVICES = _page(
    "Services",
    """<h1>Our services</h1>
<p>We offer the whole range of modern dentistry for adults and children.</p>
<h2>Teeth cleaning</h2>
<p>A professional teeth cleaning takes about 45 minutes and costs 89 euros. We remove plaque
and tartar thoroughly and polish the tooth surfaces.</p>
<h2>Emergencies</h2>
<p>If you are in pain, call us right away; we keep appointments free every day for
emergencies.</p>""",
    lang="en",
)

ANFAHRT = _page(
    "Anfahrt",
    """<h1>Anfahrt</h1>
<p>Die Praxis liegt zwei Gehminuten von der U-Bahn-Haltestelle Marienplatz entfernt.
Parkplätze finden Sie im Parkhaus an der Großen Straße.</p>""",
)

KONTAKT = _page(
    "Kontakt",
    """<h1>Kontakt</h1><p>Telefon 089 123456, E-Mail praxis@example.org. Termine vergeben wir
telefonisch und online.</p>""",
)

PRIVATE = _page("Intern", "<h1>Intern</h1><p>Dienstplan und Zugangsdaten des Teams.</p>")


def _loop_page(name: str, links: list[str]) -> str:
    anchors = " ".join(f'<a href="{link}">weiter</a>' for link in links)
    return _page(
        f"Rundgang {name}",
        f"<h1>Rundgang {name}</h1><p>Station {name} unseres Praxisrundgangs mit dem "
        f"Behandlungsraum und dem Wartezimmer.</p><p>{anchors}</p>",
    )


def _chain_page(number: int) -> str:
    return _page(
        f"Archiv {number}",
        f"<h1>Archiv {number}</h1><p>Beitrag Nummer {number} aus unserem Praxisarchiv.</p>"
        f'<p><a href="/chain/{number + 1}">Nächster Beitrag</a></p>',
    )


def _sitemap(base_url: str, paths: list[str]) -> str:
    urls = "".join(f"<url><loc>{base_url}{p}</loc></url>" for p in paths)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'
    )


def default_routes(base_url: str) -> dict[str, Route]:
    site = LocalSite(base_url)
    site.add("/", _home(base_url))
    site.add("/de/leistungen", LEISTUNGEN)
    site.add("/en/services", SERVICES)
    site.add("/nur-in-sitemap", ANFAHRT)
    site.add("/kontakt", KONTAKT)
    site.add("/private/intern", PRIVATE)
    site.add("/loop/a", _loop_page("A", ["/loop/b?utm_source=newsletter#top", "/loop/a/"]))
    site.add("/loop/a/", _loop_page("A", ["/loop/b", "/loop/a?utm_medium=email"]))
    site.add("/loop/b", _loop_page("B", ["/loop/a?utm_campaign=x#unten", "/loop/b/#oben"]))
    site.add("/loop/b/", _loop_page("B", ["/loop/a/", "/loop/b"]))
    site.add(
        "/robots.txt",
        f"User-agent: *\nDisallow: /private/\n\nSitemap: {base_url}/sitemap_index.xml\n",
        content_type="text/plain",
    )
    site.add(
        "/sitemap_index.xml",
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<sitemap><loc>{base_url}/sitemap-pages.xml</loc></sitemap></sitemapindex>",
        content_type="application/xml",
    )
    site.add(
        "/sitemap-pages.xml",
        _sitemap(base_url, ["/", "/de/leistungen", "/en/services", "/nur-in-sitemap"]),
        content_type="application/xml",
    )
    site.redirect("/redirect/metadata", "http://169.254.169.254/latest/meta-data/")
    site.redirect("/redirect/private", "http://10.0.0.1/admin")
    site.redirect("/redirect/services", "/en/services", status=301)
    site.add("/logo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, content_type="image/png")
    site.add("/api/data", '{"patients": 3}', content_type="application/json")
    site.routes["/big"] = Route(stream_bytes=BIG_BYTES)
    site.routes["/big-declared"] = Route(stream_bytes=BIG_BYTES, declare_length=True)
    return site.routes


def _handler(site: LocalSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            site.requested.append(self.path)
            site.host_headers.append(self.headers.get("Host", ""))
            path = self.path.split("?", 1)[0]
            route = site.routes.get(path) or _dynamic(path)
            if route is None:
                self._send(Route(b"<h1>Nicht gefunden</h1>", status=404))
            elif route.stream_bytes:
                self._stream(route)
            else:
                self._send(route)

        def _send(self, route: Route) -> None:
            self.send_response(route.status)
            self.send_header("Content-Type", route.content_type)
            self.send_header("Content-Length", str(len(route.body)))
            for name, value in route.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(route.body)

        def _stream(self, route: Route) -> None:
            """Filler HTML written block by block; stops when the client hangs up."""
            self.send_response(route.status)
            self.send_header("Content-Type", route.content_type)
            if route.declare_length:
                self.send_header("Content-Length", str(route.stream_bytes))
            self.end_headers()
            block = (b"<p>" + b"Archivtext " * (_BLOCK // 11))[:_BLOCK]
            sent = 0
            try:
                while sent < route.stream_bytes:
                    piece = block[: route.stream_bytes - sent]
                    self.wfile.write(piece)
                    sent += len(piece)
            except (BrokenPipeError, ConnectionResetError):
                return

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


def _dynamic(path: str) -> Route | None:
    """The endless archive: /chain/N links to /chain/N+1."""
    prefix = "/chain/"
    if path.startswith(prefix) and path[len(prefix) :].isdigit():
        return Route(_chain_page(int(path[len(prefix) :])).encode("utf-8"))
    return None


@dataclass(frozen=True)
class Tls:
    """A certificate for one host name: the server's context and a client's that trusts it."""

    hostname: str
    server: ssl.SSLContext
    client: ssl.SSLContext


def make_tls(hostname: str) -> Tls:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:
        cert_file, key_file = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert_file.write_bytes(cert_pem)
        key_file.write_bytes(key_pem)
        server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cadata=cert_pem.decode("ascii"))
    return Tls(hostname, server, client)


@contextmanager
def serve_site(*, defaults: bool = True, tls: Tls | None = None) -> Iterator[LocalSite]:
    """Serve the test site on a free port of 127.0.0.1 for the duration of the block; over
    HTTPS with ``tls`` (the base URL then names ``tls.hostname``: resolve it with fake_dns)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.daemon_threads = True
    port = server.server_address[1]
    base_url = f"https://{tls.hostname}:{port}" if tls else f"http://127.0.0.1:{port}"
    site = LocalSite(base_url)
    if tls is not None:
        tls.server.sni_callback = lambda sock, name, ctx: site.server_names.append(name)
        server.socket = tls.server.wrap_socket(server.socket, server_side=True)
    if defaults:
        site.routes.update(default_routes(site.base_url))
    server.RequestHandlerClass = _handler(site)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="test-site", daemon=True
    )
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """Let the running event loop resolve made-up names: each lookup of a name takes its next
    answer (the last one repeats), so a test can play a DNS server that rebinds. Other names
    resolve as usual. Returns the names looked up, in order. Call it inside an async test."""
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo
    asked: list[str] = []

    async def getaddrinfo(host: object, port: object, *args: object, **kwargs: object) -> list:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in answers:
            return await real(host, port, *args, **kwargs)
        asked.append(name)
        address = answers[name][min(asked.count(name), len(answers[name])) - 1]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, int(str(port))))]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    return asked
