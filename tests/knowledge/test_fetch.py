"""The fetcher and its SSRF guard, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator

import httpx
import pytest

from demandly.config import Settings
from demandly.knowledge.fetch import (
    FetchFailed,
    FetchPolicy,
    FetchRefused,
    FetchTooLarge,
    address_refusal,
    check_url,
    fetch,
    fetch_policy,
)
from tests.knowledge.site import LocalSite, fake_dns, make_tls, serve_site

GUARDED = FetchPolicy(max_bytes=2_000_000, timeout=10.0)
LOOPBACK_ALLOWED = FetchPolicy(max_bytes=2_000_000, timeout=10.0, allowed_networks=("127.0.0.0/8",))


@pytest.fixture
def site() -> Iterator[LocalSite]:
    with serve_site() as running:
        yield running


async def test_loopback_is_refused_without_the_allow_list(site: LocalSite) -> None:
    with pytest.raises(FetchRefused, match="loopback"):
        await fetch(site.url("/de/leistungen"), GUARDED)
    assert site.requested == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "metadata"),
        ("http://10.0.0.1/admin", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://100.64.0.1/", "CGNAT"),
        ("http://169.254.1.1/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fd12:3456::1]/", "unique local"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::1]:8080/", "loopback"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://2130706433/", "loopback"),  # 127.0.0.1 as one number
        ("http://0x7f.1/", "loopback"),
    ],
)
async def test_private_and_metadata_addresses_are_refused(url: str, reason: str) -> None:
    with pytest.raises(FetchRefused, match=reason) as refused:
        await fetch(url, GUARDED)
    assert refused.value.message.startswith("Refused:")


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/", "gopher://127.0.0.1/", "http:///x", "x"]
)
async def test_only_http_urls_are_fetched(url: str) -> None:
    with pytest.raises(FetchRefused):
        await fetch(url, LOOPBACK_ALLOWED)


async def test_credentials_in_the_url_are_refused(site: LocalSite) -> None:
    with pytest.raises(FetchRefused, match="password"):
        await fetch(site.url("/").replace("http://", "http://admin:geheim@"), LOOPBACK_ALLOWED)


def test_public_addresses_pass_the_address_check() -> None:
    for public in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"):
        assert address_refusal(ipaddress.ip_address(public)) is None
    assert address_refusal(ipaddress.ip_address("64:ff9b::a00:1")) == "a private network address"
    assert address_refusal(ipaddress.ip_address("2002:a00:1::")) == "a private network address"


async def test_the_allow_list_lets_the_local_site_through(site: LocalSite) -> None:
    page = await fetch(site.url("/de/leistungen"), LOOPBACK_ALLOWED)

    assert page.status == 200
    assert page.url == site.url("/de/leistungen")
    assert page.content_type == "text/html"
    assert "Professionelle Zahnreinigung" in page.body.decode("utf-8")
    assert site.requested == ["/de/leistungen"]


async def test_redirects_are_followed_and_vetted_at_every_hop(site: LocalSite) -> None:
    page = await fetch(site.url("/redirect/services"), LOOPBACK_ALLOWED)
    assert page.url == site.url("/en/services")
    assert "Teeth cleaning" in page.body.decode("utf-8")

    with pytest.raises(FetchRefused, match=r"169\.254\.169\.254 is a cloud metadata address"):
        await fetch(site.url("/redirect/metadata"), LOOPBACK_ALLOWED)
    with pytest.raises(FetchRefused, match=r"10\.0\.0\.1 is a private network address"):
        await fetch(site.url("/redirect/private"), LOOPBACK_ALLOWED)


async def test_redirect_loops_end(site: LocalSite) -> None:
    site.redirect("/hin", "/her")
    site.redirect("/her", "/hin")
    with pytest.raises(FetchFailed, match="Too many redirects"):
        await fetch(site.url("/hin"), LOOPBACK_ALLOWED)
    assert len(site.requested) == LOOPBACK_ALLOWED.max_redirects + 1


async def test_a_50_mb_response_is_cut_at_the_limit(site: LocalSite) -> None:
    with pytest.raises(FetchTooLarge, match="2 MB"):
        await fetch(site.url("/big"), LOOPBACK_ALLOWED)
    with pytest.raises(FetchTooLarge):
        await fetch(site.url("/big-declared"), LOOPBACK_ALLOWED)


async def test_the_content_type_is_checked_before_the_body_is_read(site: LocalSite) -> None:
    with pytest.raises(FetchRefused, match="image/png"):
        await fetch(site.url("/logo.png"), LOOPBACK_ALLOWED)
    with pytest.raises(FetchRefused, match="application/json"):
        await fetch(site.url("/api/data"), LOOPBACK_ALLOWED)


async def test_error_statuses_are_failures_with_the_status(site: LocalSite) -> None:
    with pytest.raises(FetchFailed) as failed:
        await fetch(site.url("/gibt-es-nicht"), LOOPBACK_ALLOWED)
    assert failed.value.status == 404
    assert "404" in failed.value.message


async def test_a_closed_port_is_a_clean_failure() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchFailed, match="connect"):
        await fetch(f"http://127.0.0.1:{port}/", LOOPBACK_ALLOWED)


async def test_the_host_name_is_kept_while_connecting_to_the_vetted_address(
    site: LocalSite,
) -> None:
    addresses = {info[4][0] for info in socket.getaddrinfo("localhost", 80)}
    if addresses != {"127.0.0.1"}:
        pytest.skip("localhost does not resolve to 127.0.0.1 only here")
    url = site.url("/en/services").replace("127.0.0.1", "localhost")

    page = await fetch(url, LOOPBACK_ALLOWED)

    assert page.url == url
    assert site.host_headers == [url.split("/")[2]]


async def test_check_url_vets_before_a_source_is_accepted(site: LocalSite) -> None:
    assert await check_url(site.url("/#oben"), LOOPBACK_ALLOWED) == site.url("/")
    with pytest.raises(FetchRefused):
        await check_url(site.url("/"), GUARDED)
    assert site.requested == []


def test_policy_from_settings() -> None:
    settings = Settings(
        fetch_allowed_networks="127.0.0.0/8, ::1/128",
        fetch_max_bytes=1234,
        fetch_timeout_seconds=2.5,
    )
    policy = fetch_policy(settings)
    assert policy.allowed_networks == ("127.0.0.0/8", "::1/128")
    assert (policy.max_bytes, policy.timeout) == (1234, 2.5)
    assert policy.allows(ipaddress.ip_address("::1"))
    assert not policy.allows(ipaddress.ip_address("10.0.0.1"))
    assert fetch_policy(Settings()).allowed_networks == ()


async def test_dns_rebinding_cannot_move_the_connection(
    site: LocalSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name is resolved once and the connection goes to that vetted address: a second
    answer pointing at a private address is never asked for."""
    asked = fake_dns(monkeypatch, {"praxis.test": ["127.0.0.1", "10.0.0.1"]})
    url = site.url("/en/services").replace("127.0.0.1", "praxis.test")

    page = await fetch(url, LOOPBACK_ALLOWED)

    assert page.url == url
    assert asked == ["praxis.test"]
    assert site.host_headers == [url.split("/")[2]]


async def test_a_name_resolving_to_a_private_address_is_refused(
    site: LocalSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dns(
        monkeypatch,
        {"intern.test": ["10.1.2.3"], "praxis.test": ["127.0.0.1"]},
    )
    with pytest.raises(FetchRefused, match=r"intern\.test resolves to a private network address"):
        await fetch("http://intern.test/", LOOPBACK_ALLOWED)

    site.redirect("/weiter", "http://intern.test/admin")
    with pytest.raises(FetchRefused, match=r"intern\.test resolves to a private"):
        await fetch(site.url("/weiter").replace("127.0.0.1", "praxis.test"), LOOPBACK_ALLOWED)


async def test_https_keeps_the_server_name_for_sni_and_certificate_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Connecting to the vetted address still verifies the certificate of the host name (the
    certificate is valid for praxis.test only, not for 127.0.0.1)."""
    tls = make_tls("praxis.test")
    with serve_site(tls=tls) as site:
        fake_dns(monkeypatch, {"praxis.test": ["127.0.0.1"]})
        async with httpx.AsyncClient(verify=tls.client) as client:
            page = await fetch(site.url("/en/services"), LOOPBACK_ALLOWED, client=client)
        assert page.url == site.url("/en/services")
        assert "Teeth cleaning" in page.body.decode("utf-8")
        assert site.server_names == ["praxis.test"]

        with pytest.raises(FetchFailed):  # the system's trust store does not know the cert
            await fetch(site.url("/en/services"), LOOPBACK_ALLOWED)


def test_a_misspelt_allowed_network_is_named() -> None:
    with pytest.raises(ValueError, match=r"'127\.0\.0\.0/33' is not a network"):
        fetch_policy(Settings(fetch_allowed_networks="127.0.0.0/33"))
