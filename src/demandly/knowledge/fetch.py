"""Fetching a URL for the knowledge base, behind an SSRF guard.

Every hop (the first URL and each redirect) is resolved first; the request goes out only if
every address the name resolves to is public (not private, loopback, link-local, multicast,
reserved, CGNAT, IPv6 ULA or a cloud metadata address) or inside an allow-listed network. The
connection then goes to the vetted address itself, with the original Host header and TLS
server name, so that a second DNS answer (rebinding) cannot redirect it. Bodies are streamed
and cut at ``max_bytes``; the content type is checked before the body is read.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from demandly.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
DEFAULT_CONTENT_TYPES: tuple[str, ...] = (
    "text/html",
    "application/xhtml+xml",
    "text/plain",
    "text/markdown",
    "application/pdf",
    DOCX_TYPE,
    "application/xml",
    "text/xml",
)
_REDIRECTS = {301, 302, 303, 307, 308}
_METADATA = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack …
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("168.63.129.16"),  # Azure wire server (a public-looking address)
}
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_ULA = ipaddress.ip_network("fc00::/7")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class FetchError(Exception):
    """A fetch that did not produce a page; the message can be shown to the user."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class FetchRefused(FetchError):
    """The URL or one of its redirects is not allowed (scheme, address, content type)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"Refused: {reason}")


class FetchTooLarge(FetchError):
    """The response is larger than the policy allows."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"The response is larger than the limit of {_megabytes(limit)}.")


class FetchFailed(FetchError):
    """The site could not be reached or answered with an error status."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:g} MB" if size >= 100_000 else f"{size:,} bytes"


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: int
    timeout: float  # seconds for the whole fetch, redirects and body included
    allowed_networks: tuple[str, ...] = ()  # CIDRs exempt from the address checks
    user_agent: str = "DemandlyBot/1.0"
    content_types: tuple[str, ...] = DEFAULT_CONTENT_TYPES
    max_redirects: int = 5
    _networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        networks = []
        for cidr in self.allowed_networks:
            try:
                networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"fetch_allowed_networks: {cidr!r} is not a network") from exc
        object.__setattr__(self, "_networks", tuple(networks))

    def allows(self, address: IPAddress) -> bool:
        return any(address in network for network in self._networks)


@dataclass(frozen=True)
class FetchedPage:
    url: str  # the final URL, after redirects
    status: int
    content_type: str  # lower-case media type without parameters ("" if the server sent none)
    body: bytes


def fetch_policy(settings: Settings) -> FetchPolicy:
    """The policy the settings describe (``fetch_allowed_networks`` is comma-separated)."""
    networks = tuple(n.strip() for n in settings.fetch_allowed_networks.split(",") if n.strip())
    return FetchPolicy(
        max_bytes=settings.fetch_max_bytes,
        timeout=settings.fetch_timeout_seconds,
        allowed_networks=networks,
    )


# ---------------------------------------------------------------------------------------------
# Address vetting


def address_refusal(address: IPAddress) -> str | None:
    """Why a connection to this address is refused, or None for a public address."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return address_refusal(embedded)
    checks: tuple[tuple[bool, str], ...] = (
        (address in _METADATA, "a cloud metadata address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.version == 4 and address in _CGNAT, "a shared (CGNAT) address"),
        (address.version == 6 and address in _ULA, "a private (unique local) address"),
        (address.is_private, "a private network address"),
        (address.is_reserved or not address.is_global, "a reserved address"),
    )
    return next((reason for refused, reason in checks if refused), None)


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, 6to4 or NAT64 IPv6 address."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _is_allowed(address: IPAddress, policy: FetchPolicy) -> bool:
    embedded = _embedded_ipv4(address)
    return policy.allows(address) or (embedded is not None and policy.allows(embedded))


async def resolve_vetted(host: str, port: int, policy: FetchPolicy) -> IPAddress:
    """The address to connect to; raises FetchRefused if any address of the name is refused."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchFailed(f"The host {host} could not be found.") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise FetchFailed(f"The host {host} could not be found.")
    for address in addresses:
        reason = None if _is_allowed(address, policy) else address_refusal(address)
        if reason:
            verb = "is" if _is_ip(host) else "resolves to"
            raise FetchRefused(f"{host} {verb} {reason}.")
    return addresses[0]


def _checked_url(url: str | httpx.URL) -> httpx.URL:
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise FetchRefused("the URL is not valid.") from exc
    if parsed.scheme not in ("http", "https"):
        raise FetchRefused("only http and https URLs can be fetched.")
    if not parsed.raw_host:
        raise FetchRefused("the URL has no host.")
    if parsed.userinfo:
        raise FetchRefused("URLs with a user name or password are not fetched.")
    return parsed.copy_with(fragment=None)


async def check_url(url: str, policy: FetchPolicy) -> str:
    """Vet a URL before accepting it (e.g. as a knowledge source); returns it normalised."""
    parsed = _checked_url(url)
    await resolve_vetted(parsed.raw_host.decode("ascii"), _port(parsed), policy)
    return str(parsed)


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


# ---------------------------------------------------------------------------------------------
# Fetching


async def fetch(
    url: str, policy: FetchPolicy, *, client: httpx.AsyncClient | None = None
) -> FetchedPage:
    """GET a URL through the guard, following up to ``policy.max_redirects`` redirects.

    Returns only successful (2xx) pages; other statuses raise FetchFailed with ``status``.
    A shared ``client`` must not follow redirects itself and should serve one site (its
    connection pool is keyed by the vetted address).
    """
    try:
        async with asyncio.timeout(policy.timeout):
            if client is not None:
                return await _fetch_following(_checked_url(url), policy, client)
            async with new_client(policy) as own:
                return await _fetch_following(_checked_url(url), policy, own)
    except TimeoutError as exc:
        raise FetchFailed(f"The site did not answer within {policy.timeout:g} seconds.") from exc


def new_client(policy: FetchPolicy) -> httpx.AsyncClient:
    """A client for several fetches from one site (see :func:`fetch`). No proxy from the
    environment (``trust_env=False``) may carry the request elsewhere."""
    return httpx.AsyncClient(
        timeout=policy.timeout, follow_redirects=False, trust_env=False, max_redirects=0
    )


async def _fetch_following(
    url: httpx.URL, policy: FetchPolicy, client: httpx.AsyncClient
) -> FetchedPage:
    for _hop in range(policy.max_redirects + 1):
        location = await _fetch_once(url, policy, client)
        if isinstance(location, FetchedPage):
            return location
        url = location
    raise FetchFailed(f"Too many redirects (more than {policy.max_redirects}).")


async def _fetch_once(
    url: httpx.URL, policy: FetchPolicy, client: httpx.AsyncClient
) -> FetchedPage | httpx.URL:
    """One request: the page, or the next URL of a redirect."""
    host = url.raw_host.decode("ascii")
    address = await resolve_vetted(host, _port(url), policy)
    request = client.build_request(
        "GET",
        url.copy_with(host=str(address)),
        headers={
            "Host": _host_header(url),
            "User-Agent": policy.user_agent,
            "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.5",
        },
        extensions={"sni_hostname": host} if url.scheme == "https" and not _is_ip(host) else {},
    )
    try:
        response = await client.send(request, stream=True, follow_redirects=False)
    except httpx.TimeoutException as exc:
        raise FetchFailed(f"The site {host} did not answer in time.") from exc
    except httpx.ConnectError as exc:
        raise FetchFailed(f"Could not connect to {host}.") from exc
    except httpx.HTTPError as exc:
        raise FetchFailed(f"The request to {host} failed.") from exc
    try:
        return await _read(url, response, policy, host)
    finally:
        await response.aclose()


async def _read(
    url: httpx.URL, response: httpx.Response, policy: FetchPolicy, host: str
) -> FetchedPage | httpx.URL:
    if response.status_code in _REDIRECTS:
        location = response.headers.get("location")
        if not location:
            raise FetchFailed(f"{host} sent a redirect without a target.")
        try:
            return _checked_url(url.join(location))
        except httpx.InvalidURL as exc:
            raise FetchRefused("the redirect target is not a valid URL.") from exc
    if not 200 <= response.status_code < 300:
        raise FetchFailed(
            f"The site answered with status {response.status_code}.", status=response.status_code
        )
    content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type and content_type not in policy.content_types:
        raise FetchRefused(f"the content type {content_type} is not supported.")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > policy.max_bytes:
        raise FetchTooLarge(policy.max_bytes)
    body = bytearray()
    try:
        async for chunk in response.aiter_bytes():
            if len(body) + len(chunk) > policy.max_bytes:
                raise FetchTooLarge(policy.max_bytes)
            body += chunk
    except httpx.TimeoutException as exc:
        raise FetchFailed(f"The site {host} stopped sending.") from exc
    except httpx.HTTPError as exc:
        raise FetchFailed(f"The response from {host} broke off.") from exc
    return FetchedPage(
        url=str(url), status=response.status_code, content_type=content_type, body=bytes(body)
    )


def _host_header(url: httpx.URL) -> str:
    host = url.raw_host.decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    return host if url.port is None else f"{host}:{url.port}"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
