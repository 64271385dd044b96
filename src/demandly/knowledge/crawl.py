"""Crawling one website for the knowledge base.

Same site only (scheme, host and port of the start URL), robots.txt honoured for
``DemandlyBot``, sitemap.xml (or the ``Sitemap:`` lines of robots.txt, sitemap indexes too)
used to find pages, breadth-first link following up to ``max_depth``, and at most
``max_pages`` pages and ``max_total_bytes`` bytes. URLs are normalised (no fragment, no
tracking parameters, one form for a trailing slash) so that link loops end. Every fetch goes
through the SSRF guard of :mod:`demandly.knowledge.fetch`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import posixpath
import re
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

import httpx
import lxml.etree

from demandly.kit.logging import get_logger
from demandly.knowledge.documents import Document, ExtractionError
from demandly.knowledge.extract import DOCX, PDF, extract_file, extract_html, parse_html
from demandly.knowledge.fetch import (
    FetchedPage,
    FetchError,
    FetchFailed,
    FetchPolicy,
    FetchRefused,
    FetchTooLarge,
    fetch,
    new_client,
)

log = get_logger(__name__)

PAGE_TYPES = ("text/html", "application/xhtml+xml", PDF, DOCX)
_SITEMAP_TYPES = ("application/xml", "text/xml", "text/plain")
_TRACKING_PARAMS = {"gclid", "fbclid", "msclkid", "mc_cid", "mc_eid", "_ga", "_gl", "yclid"}
_SKIPPED_EXTENSIONS = frozenset(
    re.findall(
        r"\S+",
        ".png .jpg .jpeg .gif .webp .svg .ico .bmp .tif .tiff .avif .mp3 .mp4 .m4a .wav .ogg .webm "
        ".mov .avi .zip .gz .tgz .rar .7z .exe .dmg .css .js .json .woff .woff2 .ttf .eot .xls "
        ".xlsx .ppt .pptx .csv .ics .rss .atom",
    )
)
_MAX_SITEMAPS = 20
_MAX_SITEMAP_URLS = 10_000
_MAX_CRAWL_DELAY = 10.0


@dataclass(frozen=True)
class CrawlLimits:
    max_pages: int = 50
    max_depth: int = 3  # links followed from the start page (sitemap pages count as depth 1)
    max_total_bytes: int = 20_000_000


@dataclass(frozen=True)
class CrawlResult:
    url: str
    document: Document | None
    error: str | None = None


def normalize_url(url: str, base: str | None = None) -> str | None:
    """One spelling per page: absolute, lower-case scheme and host, no default port, no
    fragment, no tracking parameters, dot segments resolved. None for non-web URLs."""
    try:
        parts = urlsplit(urljoin(base, url.strip()) if base else url.strip())
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            return None
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, 80 if scheme == "http" else 443) else f"{host}:{port}"
    path = posixpath.normpath(parts.path) if parts.path else "/"
    if parts.path.endswith("/") and path != "/":
        path += "/"
    path = path.replace("//", "/") if path.startswith("//") else path
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _tracking(k)]
    )
    return urlunsplit((scheme, netloc, path, query, ""))


def _tracking(name: str) -> bool:
    name = name.lower()
    return name.startswith("utm_") or name in _TRACKING_PARAMS


def _page_key(url: str) -> str:
    """The dedupe key: "/about" and "/about/" are one page."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/") or "/"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def _skipped_by_extension(url: str) -> bool:
    return posixpath.splitext(urlsplit(url).path.lower())[1] in _SKIPPED_EXTENSIONS


class _Budget:
    def __init__(self, limits: CrawlLimits) -> None:
        self.limits = limits
        self.pages = 0
        self.bytes = 0

    @property
    def bytes_left(self) -> int:
        return self.limits.max_total_bytes - self.bytes

    def exhausted(self) -> bool:
        return self.pages >= self.limits.max_pages or self.bytes_left <= 0


class _Crawler:
    def __init__(
        self, start: str, policy: FetchPolicy, limits: CrawlLimits, client: httpx.AsyncClient
    ) -> None:
        self.start = start
        self.origin = _origin(start)
        self.policy = policy
        self.client = client
        self.budget = _Budget(limits)
        self.robots = RobotFileParser()
        self.seen: set[str] = set()
        self.queue: deque[tuple[str, int]] = deque()

    def same_site(self, url: str) -> bool:
        return _origin(url) == self.origin

    def enqueue(self, url: str, depth: int) -> None:
        key = _page_key(url)
        if depth > self.budget.limits.max_depth or key in self.seen:
            return
        if not self.same_site(url) or _skipped_by_extension(url):
            return
        self.seen.add(key)
        self.queue.append((url, depth))

    async def _get(self, url: str, content_types: tuple[str, ...]) -> FetchedPage:
        """A fetch counted against the byte budget."""
        max_bytes = min(self.policy.max_bytes, max(self.budget.bytes_left, 0))
        policy = dataclasses.replace(self.policy, max_bytes=max_bytes, content_types=content_types)
        try:
            page = await fetch(url, policy, client=self.client)
        except FetchTooLarge:
            self.budget.bytes += max_bytes  # downloaded before the cut
            raise
        self.budget.bytes += len(page.body)
        return page

    async def load_robots(self) -> str | None:
        """RFC 9309: no robots.txt (4xx) allows all; an unreadable one disallows all.
        Returns why the site cannot be crawled at all, if so."""
        self.robots = RobotFileParser()
        self.robots.allow_all = True
        robots_url = urljoin(self.start, "/robots.txt")
        try:
            page = await self._get(robots_url, ("text/plain", "text/html"))
        except FetchRefused as exc:
            return exc.message
        except FetchFailed as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                return None
            return f"robots.txt could not be read, so the site may not be crawled: {exc.message}"
        except FetchError as exc:
            return f"robots.txt could not be read, so the site may not be crawled: {exc.message}"
        self.robots.allow_all = False
        self.robots.parse(page.body.decode("utf-8", errors="replace").splitlines())
        return None

    async def move_to(self, start: str) -> bool:
        """Follow the start page's redirect to another origin (http to https, to www …):
        the crawl continues on that site if its robots.txt allows."""
        self.start, self.origin = start, _origin(start)
        return await self.load_robots() is None and self.allowed(start)

    def allowed(self, url: str) -> bool:
        return self.robots.can_fetch(self.policy.user_agent, url)

    def crawl_delay(self) -> float:
        delay = self.robots.crawl_delay(self.policy.user_agent)
        return min(float(delay), _MAX_CRAWL_DELAY) if delay else 0.0

    async def sitemap_urls(self) -> list[str]:
        """Page URLs from the sitemaps (robots.txt ``Sitemap:`` lines, else /sitemap.xml)."""
        pending = deque(self.robots.site_maps() or [urljoin(self.start, "/sitemap.xml")])
        visited: set[str] = set()
        pages: list[str] = []
        while pending and len(visited) < _MAX_SITEMAPS and len(pages) < _MAX_SITEMAP_URLS:
            sitemap = normalize_url(pending.popleft())
            if sitemap is None or sitemap in visited or not self.same_site(sitemap):
                continue
            visited.add(sitemap)
            try:
                page = await self._get(sitemap, (*_SITEMAP_TYPES, ""))
            except FetchError:
                continue
            children, locations = _parse_sitemap(page.body)
            pending.extend(children)
            pages.extend(locations)
        return pages[:_MAX_SITEMAP_URLS]

    async def visit(self, url: str, depth: int) -> CrawlResult | None:
        """Fetch and extract one page, queueing its links; None for a page seen before."""
        self.budget.pages += 1
        try:
            page = await self._get(url, PAGE_TYPES)
        except FetchTooLarge as exc:
            if exc.limit < self.policy.max_bytes:
                total = self.budget.limits.max_total_bytes
                return CrawlResult(url=url, document=None, error=_crawl_limit_message(total))
            return CrawlResult(url=url, document=None, error=exc.message)
        except FetchError as exc:
            return CrawlResult(url=url, document=None, error=exc.message)
        final = normalize_url(page.url) or url
        if final != url:
            if not self.same_site(final) and (depth or not await self.move_to(final)):
                return CrawlResult(url=url, document=None, error="Redirected to another site.")
            if _page_key(final) in self.seen and _page_key(final) != _page_key(url):
                return None  # a redirect to a page that is crawled anyway
            self.seen.add(_page_key(final))
        # Parsing is CPU work (a large PDF takes seconds): off the event loop.
        links, result = await asyncio.to_thread(_read_page, final, page)
        for link in links:
            self.enqueue(link, depth + 1)
        return result


def _read_page(url: str, page: FetchedPage) -> tuple[list[str], CrawlResult]:
    """The links to follow and the extracted document (or why there is none)."""
    try:
        if page.content_type not in ("text/html", "application/xhtml+xml", ""):
            return [], CrawlResult(url, extract_file(url, page.body, page.content_type))
        tree = parse_html(page.body)
        robots_meta = " ".join(tree.xpath("//meta[@name='robots' or @name='Robots']/@content"))
        links = [] if "nofollow" in robots_meta.lower() else list(_links(tree, url))
        if "noindex" in robots_meta.lower():
            return links, CrawlResult(url, None, "The page asks not to be indexed.")
        return links, CrawlResult(url, extract_html(page.body, url))
    except ExtractionError as exc:
        return [], CrawlResult(url, None, str(exc))


def _crawl_limit_message(total: int) -> str:
    return f"The crawl reached its limit of {total:,} bytes; later pages were not fetched."


def _links(tree: object, url: str) -> Iterable[str]:
    bases = tree.xpath("//base/@href")  # type: ignore[attr-defined]
    base = urljoin(url, bases[0]) if bases else url
    for anchor in tree.xpath("//a[@href]"):  # type: ignore[attr-defined]
        if "nofollow" in (anchor.get("rel") or "").lower():
            continue
        link = normalize_url(anchor.get("href"), base)
        if link:
            yield link


_SITEMAP_PARSER = lxml.etree.XMLParser(
    resolve_entities=False, no_network=True, huge_tree=False, recover=True
)


def _parse_sitemap(body: bytes) -> tuple[list[str], list[str]]:
    """(child sitemaps, page URLs) of a sitemap or sitemap index."""
    try:
        root = lxml.etree.fromstring(body, parser=_SITEMAP_PARSER)
    except lxml.etree.XMLSyntaxError:
        return [], []
    if root is None:
        return [], []
    locations = [
        (loc.text or "").strip() for loc in root.iter("{*}loc") if (loc.text or "").strip()
    ]
    if lxml.etree.QName(root).localname == "sitemapindex":
        return locations, []
    return [], locations


async def crawl(
    start_url: str, policy: FetchPolicy, limits: CrawlLimits
) -> AsyncIterator[CrawlResult]:
    """Pages of the site as they are crawled: a document, or the reason a page failed."""
    start = normalize_url(start_url)
    if start is None:
        yield CrawlResult(url=start_url, document=None, error="Only http(s) URLs can be crawled.")
        return
    async with new_client(policy) as client:
        crawler = _Crawler(start, policy, limits, client)
        refusal = await crawler.load_robots()
        if refusal or not crawler.allowed(start):
            error = refusal or "robots.txt does not allow crawling this page."
            yield CrawlResult(url=start, document=None, error=error)
            return
        crawler.seen.add(_page_key(start))
        first = await crawler.visit(start, 0)
        if first is not None:
            yield first
        for url in await crawler.sitemap_urls() if limits.max_depth >= 1 else []:
            normal = normalize_url(url)
            if normal:
                crawler.enqueue(normal, 1)
        delay = crawler.crawl_delay()
        while crawler.queue and not crawler.budget.exhausted():
            url, depth = crawler.queue.popleft()
            if not crawler.allowed(url):
                log.info("crawl_skipped_by_robots", depth=depth)
                continue
            if delay and crawler.budget.pages:
                await asyncio.sleep(delay)
            result = await crawler.visit(url, depth)
            if result is not None:
                yield result
