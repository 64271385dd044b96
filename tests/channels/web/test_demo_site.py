"""The demo practice's website under /demo/site/: the source of the demo knowledge base."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import httpx

from demandly.channels.web.pages import SITE_PAGES


async def test_every_page_is_served_as_html_without_inline_script(
    client: httpx.AsyncClient,
) -> None:
    for name in SITE_PAGES:
        path = "/demo/site/" if name == "index.html" else f"/demo/site/{name}"
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert "Zahnarztpraxis Dr. Sommer" in response.text
        assert "<script" not in response.text and " style=" not in response.text


async def test_sitemap_lists_every_page_with_absolute_urls(client: httpx.AsyncClient) -> None:
    response = await client.get("/demo/site/sitemap.xml")
    assert response.status_code == 200
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    locations = [e.text for e in ET.fromstring(response.text).findall("s:url/s:loc", ns)]
    assert len(locations) == len(SITE_PAGES)
    assert all(loc and loc.startswith("http://testserver/demo/site/") for loc in locations)


async def test_robots_names_the_sitemap_and_unknown_pages_are_404(
    client: httpx.AsyncClient,
) -> None:
    robots = await client.get("/demo/site/robots.txt")
    assert re.search(r"^Sitemap: http://testserver/demo/site/sitemap.xml$", robots.text, re.M)
    assert (await client.get("/demo/site/../../etc/passwd")).status_code == 404
    assert (await client.get("/demo/site/intern.html")).status_code == 404
