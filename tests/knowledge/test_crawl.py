"""Crawling the local test site: robots.txt, sitemaps, loops, limits and the SSRF guard."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from demandly.knowledge.crawl import CrawlLimits, CrawlResult, crawl, normalize_url
from demandly.knowledge.fetch import FetchPolicy
from tests.knowledge.site import LocalSite, fake_dns, make_pdf, serve_site

POLICY = FetchPolicy(max_bytes=2_000_000, timeout=10.0, allowed_networks=("127.0.0.0/8",))


@pytest.fixture
def site() -> Iterator[LocalSite]:
    with serve_site() as running:
        yield running


async def run(start: str, limits: CrawlLimits = CrawlLimits(), policy: FetchPolicy = POLICY):
    return [result async for result in crawl(start, policy, limits)]


def by_url(results: list[CrawlResult], site: LocalSite) -> dict[str, CrawlResult]:
    return {r.url.removeprefix(site.base_url): r for r in results}


async def test_a_crawl_of_the_site(site: LocalSite) -> None:
    results = by_url(await run(site.url("/"), CrawlLimits(max_pages=50, max_depth=2)), site)

    pages = {path for path, r in results.items() if r.document}
    assert {"/", "/de/leistungen", "/en/services", "/kontakt", "/loop/a", "/loop/b"} <= pages
    # Only listed in the sitemap (reached through the sitemap index named in robots.txt).
    assert "/nur-in-sitemap" in pages
    assert site.was_requested("/sitemap_index.xml") and site.was_requested("/sitemap-pages.xml")

    german = results["/de/leistungen"].document
    assert german is not None and german.url == site.url("/de/leistungen")
    text = " ".join(s.text for s in german.sections)
    assert "Beläge und Zahnstein gründlich" in text
    assert "Cookies" not in text and "Impressum" not in text


async def test_robots_txt_is_honoured(site: LocalSite) -> None:
    results = by_url(await run(site.url("/")), site)
    assert "/private/intern" not in results
    assert not site.was_requested("/private/intern")


async def test_the_guard_holds_inside_a_crawl(site: LocalSite) -> None:
    results = by_url(await run(site.url("/")), site)

    assert "metadata" in (results["/redirect/metadata"].error or "")
    assert "private network" in (results["/redirect/private"].error or "")
    assert "larger than the limit" in (results["/big"].error or "")
    assert "application/json" in (results["/api/data"].error or "")


async def test_only_the_same_site_and_only_pages_are_fetched(site: LocalSite) -> None:
    results = by_url(await run(site.url("/")), site)

    assert not site.was_requested("/logo.png")
    assert not site.was_requested("/anderer-host")  # same server, other host name
    assert all(r.url.startswith(site.base_url) for r in results.values())
    assert set(site.host_headers) == {site.base_url.removeprefix("http://")}
    # A redirect to a page crawled anyway is not reported twice.
    assert "/redirect/services" not in results
    assert list(results).count("/en/services") == 1


async def test_link_loops_end_and_every_page_is_fetched_once(site: LocalSite) -> None:
    results = await run(site.url("/loop/a"), CrawlLimits(max_pages=200, max_depth=6))

    urls = [r.url for r in results]
    assert len(urls) == len(set(urls))
    loop_requests = [p for p in site.requested if p.startswith("/loop/")]
    assert sorted(loop_requests) == ["/loop/a", "/loop/b"]


async def test_depth_limit(site: LocalSite) -> None:
    await run(site.url("/chain/1"), CrawlLimits(max_pages=100, max_depth=2))
    assert site.was_requested("/chain/3")
    assert not site.was_requested("/chain/4")


async def test_page_limit(site: LocalSite) -> None:
    results = await run(site.url("/"), CrawlLimits(max_pages=3))
    assert len(results) == 3
    assert results[0].url == site.url("/")


async def test_byte_limit(site: LocalSite) -> None:
    limit = len(site.routes["/"].body) + 3000
    results = await run(site.url("/"), CrawlLimits(max_total_bytes=limit))

    fetched = [r for r in results if r.document]
    assert 1 <= len(fetched) < 4
    assert "reached its limit of" in (results[-1].error or "")
    assert not site.was_requested("/nur-in-sitemap")


async def test_sitemap_xml_is_found_without_a_robots_line(site: LocalSite) -> None:
    site.add("/robots.txt", "User-agent: *\nDisallow:\n", content_type="text/plain")
    site.add(
        "/sitemap.xml",
        '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<url><loc>{site.url('/nur-in-sitemap')}</loc></url>"
        "<url><loc>https://example.org/fremd</loc></url></urlset>",
        content_type="application/xml",
    )
    results = by_url(await run(site.url("/kontakt"), CrawlLimits(max_depth=1)), site)
    assert results["/nur-in-sitemap"].document is not None


async def test_without_robots_txt_everything_may_be_crawled(site: LocalSite) -> None:
    site.remove("/robots.txt")
    results = by_url(await run(site.url("/"), CrawlLimits(max_depth=1)), site)
    assert results["/private/intern"].document is not None


async def test_robots_disallowing_everything_stops_the_crawl(site: LocalSite) -> None:
    site.add("/robots.txt", "User-agent: DemandlyBot\nDisallow: /\n", content_type="text/plain")
    results = await run(site.url("/"))
    assert [r.error for r in results] == ["robots.txt does not allow crawling this page."]
    assert site.requested == ["/robots.txt"]


async def test_an_unreadable_robots_txt_means_no_crawl(site: LocalSite) -> None:
    site.add("/robots.txt", "Fehler", content_type="text/plain", status=503)
    results = await run(site.url("/"))
    assert len(results) == 1 and "robots.txt could not be read" in (results[0].error or "")
    assert not site.was_requested("/")


async def test_without_the_allow_list_nothing_is_fetched(site: LocalSite) -> None:
    guarded = FetchPolicy(max_bytes=2_000_000, timeout=10.0)
    results = await run(site.url("/"), policy=guarded)
    assert len(results) == 1 and "loopback" in (results[0].error or "")
    assert site.requested == []


async def test_pdfs_linked_from_pages_are_extracted(site: LocalSite) -> None:
    site.add(
        "/downloads",
        '<html><body><h1>Downloads</h1><a href="/preise.pdf">Preise</a>'
        "<p>Unsere Preisliste als PDF zum Herunterladen.</p></body></html>",
    )
    site.add("/preise.pdf", make_pdf(), content_type="application/pdf")
    results = by_url(await run(site.url("/downloads"), CrawlLimits(max_depth=1)), site)
    pdf = results["/preise.pdf"].document
    assert pdf is not None and pdf.content_type == "application/pdf"
    assert "Prophylaxe und Ästhetik" in [s.heading for s in pdf.sections]


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("HTTP://Praxis.Example:80/a/../b/?utm_source=x&id=3#top", "http://praxis.example/b/?id=3"),
        ("https://praxis.example:443", "https://praxis.example/"),
        ("https://praxis.example:8443/x?gclid=1", "https://praxis.example:8443/x"),
        ("mailto:info@praxis.example", None),
        ("javascript:void(0)", None),
    ],
)
def test_url_normalisation(url: str, normal: str | None) -> None:
    assert normalize_url(url) == normal


def test_relative_links_resolve_against_the_page() -> None:
    assert normalize_url("../team#x", "https://praxis.example/de/leistungen/") == (
        "https://praxis.example/de/team"
    )


async def test_a_start_page_moved_to_another_name_is_crawled_there(
    site: LocalSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dns(monkeypatch, {"praxis.test": ["127.0.0.1"]})
    moved = site.base_url.replace("127.0.0.1", "praxis.test")
    site.redirect("/alt", f"{moved}/de/leistungen", status=301)

    results = await run(site.url("/alt"), CrawlLimits(max_pages=4, max_depth=1))

    assert results[0].url == f"{moved}/de/leistungen"
    assert results[0].document is not None
    assert all(r.url.startswith(moved) for r in results)
    assert len(results) == 4
