"""Pages the platform serves outside the API: the embeddable ``/widget.js`` and ``/demo``, a
sample client website (a German dental practice) with the demo agent's widget embedded.

The demo page keeps the platform's strict CSP (``script-src 'self'``, ``style-src 'self'``): it
has no inline script or style, its CSS is a file of its own, and the widget styles its Shadow
DOM with a constructed stylesheet, which ``style-src`` does not govern.
"""

from __future__ import annotations

import gzip
import hashlib
import html
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from demandly.auth.dependencies import get_database
from demandly.kit.context import Scope

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).parent / "static"
# Short enough that a new release reaches every website within minutes; revalidation by ETag.
ASSET_CACHE = "public, max-age=300"


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    etag: str


@lru_cache(maxsize=32)
def asset(name: str) -> Asset:
    body = (STATIC / name).read_bytes()
    digest = hashlib.sha256(body).hexdigest()[:20]
    # Weak: the gzipped and the plain body are the same resource for revalidation.
    return Asset(body=body, gzipped=gzip.compress(body, 9, mtime=0), etag=f'W/"{digest}"')


def _asset_response(request: Request, name: str, media_type: str, **headers: str) -> Response:
    found = asset(name)
    common = {
        "Cache-Control": ASSET_CACHE,
        "ETag": found.etag,
        "Vary": "Accept-Encoding",
        **headers,
    }
    if _matches(request.headers.get("if-none-match"), found.etag):
        return Response(status_code=304, headers=common)
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(
            found.gzipped, media_type=media_type, headers={**common, "Content-Encoding": "gzip"}
        )
    return Response(found.body, media_type=media_type, headers=common)


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    wanted = etag.removeprefix("W/")
    return any(
        tag.strip() == "*" or tag.strip().removeprefix("W/") == wanted
        for tag in if_none_match.split(",")
    )


@router.api_route("/widget.js", methods=["GET", "HEAD"])
async def widget_js(request: Request) -> Response:
    """The chat widget. Any website may load it; the API refuses origins an agent does not
    allow. CORP ``cross-origin`` lets sites that isolate themselves (COEP) embed it too."""
    return _asset_response(
        request,
        "widget.js",
        "application/javascript; charset=utf-8",
        **{
            "Access-Control-Allow-Origin": "*",
            "Cross-Origin-Resource-Policy": "cross-origin",
        },
    )


@router.api_route("/demo/demo.css", methods=["GET", "HEAD"])
async def demo_css(request: Request) -> Response:
    return _asset_response(request, "demo.css", "text/css; charset=utf-8")


@router.api_route("/demo/favicon.svg", methods=["GET", "HEAD"])
async def demo_favicon(request: Request) -> Response:
    return _asset_response(request, "favicon.svg", "image/svg+xml")


@router.get("/demo")
@router.get("/demo/")
async def demo_page(request: Request) -> HTMLResponse:
    """The sample practice website with the demo agent's embed snippet, exactly as a client
    would paste it. The key is looked up per request: re-seeding needs no restart."""
    from demandly.bootstrap import demo_public_key  # bootstrap imports the app factory

    async with get_database(request).session(Scope.for_system()) as session:
        public_key = await demo_public_key(session)
    headers = {"Cache-Control": "no-cache"}
    if public_key is None:
        page = asset("demo-missing.html").body.decode()
        return HTMLResponse(page, status_code=404, headers=headers)
    # Same origin as the page, under whatever name the browser used (127.0.0.1, localhost, a
    # proxy's host): the strict CSP allows the script and its API calls without exceptions.
    base = str(request.base_url).rstrip("/")
    snippet = (
        f'<script src="{html.escape(base)}/widget.js" '
        f'data-agent="{html.escape(public_key)}" async></script>'
    )
    page = asset("demo.html").body.decode().replace("{{EMBED}}", snippet)
    return HTMLResponse(page, headers=headers)


# --- the practice's website, the demo knowledge base's source ------------------------------

SITE_PAGES = (
    "index.html",
    "leistungen.html",
    "angstpatienten.html",
    "implantate.html",
    "praxis.html",
)


def site_page_paths() -> list[tuple[str, Path]]:
    """The demo website's pages as (URL path, file): what the demo knowledge base ingests."""
    return [
        (f"/demo/site/{'' if n == 'index.html' else n}", STATIC / "site" / n) for n in SITE_PAGES
    ]


@router.get("/demo/site/robots.txt")
async def demo_site_robots(request: Request) -> Response:
    base = str(request.base_url).rstrip("/")
    body = f"User-agent: *\nDisallow: /demo/site/intern/\nSitemap: {base}/demo/site/sitemap.xml\n"
    return Response(body, media_type="text/plain")


@router.get("/demo/site/sitemap.xml")
async def demo_site_sitemap(request: Request) -> Response:
    base = html.escape(str(request.base_url).rstrip("/"))
    urls = "".join(f"<url><loc>{base}{path}</loc></url>" for path, _ in site_page_paths())
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'
    )
    return Response(body, media_type="application/xml")


@router.get("/demo/site/")
@router.get("/demo/site/{name}")
async def demo_site_page(request: Request, name: str = "index.html") -> Response:
    if name not in SITE_PAGES:
        return HTMLResponse("<!doctype html><title>Nicht gefunden</title>", status_code=404)
    return _asset_response(request, f"site/{name}", "text/html; charset=utf-8")
