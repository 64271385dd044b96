"""DNS TXT look-ups for custom-domain verification (dnspython's asyncio resolver)."""

from __future__ import annotations

import dns.asyncresolver
import dns.exception
import dns.resolver

CHALLENGE_LABEL = "_demandly-challenge"
VALUE_PREFIX = "demandly-verify="
LOOKUP_SECONDS = 5.0


class DnsLookupFailed(Exception):
    """The record could not be read; the message says why, for the user."""


def challenge_name(domain: str) -> str:
    return f"{CHALLENGE_LABEL}.{domain}"


def challenge_value(token: str) -> str:
    return f"{VALUE_PREFIX}{token}"


def parse_nameserver(spec: str) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6 address]:port``."""
    spec = spec.strip()
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif spec.count(":") == 1:
        host, port = spec.split(":")
    else:
        host, port = spec, "53"
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DnsLookupFailed("DNS verification is misconfigured (DEMANDLY_DNS_NAMESERVER).")
    return host, int(port)


def _resolver(nameserver: str | None) -> dns.asyncresolver.Resolver:
    if nameserver is None:
        try:
            resolver = dns.asyncresolver.Resolver()
        except dns.resolver.NoResolverConfiguration as exc:
            raise DnsLookupFailed("No DNS resolver is configured on the server.") from exc
    else:
        host, port = parse_nameserver(nameserver)
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = port
    resolver.lifetime = LOOKUP_SECONDS
    return resolver


async def txt_values(name: str, nameserver: str | None = None) -> list[str]:
    """The TXT strings at ``name`` (each record's character-strings joined)."""
    resolver = _resolver(nameserver)
    try:
        answer = await resolver.resolve(name, "TXT", search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.Timeout as exc:
        raise DnsLookupFailed(f"The DNS look-up of {name} timed out; try again later.") from exc
    except dns.exception.DNSException as exc:
        raise DnsLookupFailed(f"The DNS look-up of {name} failed; try again later.") from exc
    return [b"".join(record.strings).decode("utf-8", "replace") for record in answer]
