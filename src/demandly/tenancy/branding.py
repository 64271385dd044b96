"""The one place an agency's white-label identity is worked out: dashboard, booking page,
widget and e-mails all take their name, colours and logo from ``brand_of``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from demandly.tenancy.models import Agency, Client

HEX_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")
DEFAULT_PRIMARY = "#1f2937"
DEFAULT_ACCENT = "#2563eb"


@dataclass(frozen=True)
class Brand:
    """What a client of an agency sees: the agency's name and look, never the platform's."""

    name: str
    primary: str = DEFAULT_PRIMARY
    accent: str = DEFAULT_ACCENT
    logo_url: str | None = None
    favicon_url: str | None = None
    sender_name: str = ""
    support_email: str | None = None
    privacy_url: str | None = None
    imprint_url: str | None = None
    agency_id: str | None = None

    @property
    def on_primary(self) -> str:
        return contrast_color(self.primary)

    @property
    def on_accent(self) -> str:
        return contrast_color(self.accent)

    def css_variables(self) -> str:
        """``:root`` custom properties for a stylesheet (never inline: the CSP forbids it)."""
        return (
            ":root{"
            f"--brand-primary:{self.primary};--brand-on-primary:{self.on_primary};"
            f"--brand-accent:{self.accent};--brand-on-accent:{self.on_accent};"
            "}\n"
        )


def color_or(value: Any, default: str) -> str:
    return value if isinstance(value, str) and HEX_COLOR.match(value) else default


def contrast_color(color: str) -> str:
    """Black or white, whichever reads better on ``color`` (WCAG relative luminance)."""
    digits = color[1:] if len(color) == 7 else "".join(c * 2 for c in color[1:])
    channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "#111111" if luminance > 0.4 else "#ffffff"


def brand_of(agency: Agency, client: Client | None = None) -> Brand:
    """The agency's brand; a client's own privacy-policy URL wins over the agency's."""
    branding: Mapping[str, Any] = agency.branding or {}
    name = str(branding.get("display_name") or agency.name)
    client_privacy = client.privacy_policy_url if client is not None else None
    return Brand(
        name=name,
        primary=color_or(branding.get("primary_color"), DEFAULT_PRIMARY),
        accent=color_or(branding.get("accent_color"), DEFAULT_ACCENT),
        logo_url=branding.get("logo_url") or None,
        favicon_url=branding.get("favicon_url") or None,
        sender_name=str(branding.get("sender_name") or name),
        support_email=branding.get("support_email") or None,
        privacy_url=client_privacy or branding.get("privacy_policy_url") or None,
        imprint_url=branding.get("imprint_url") or None,
        agency_id=agency.id,
    )


def platform_brand(name: str) -> Brand:
    """The operator's own look, on the platform's host (no agency known yet)."""
    return Brand(name=name, sender_name=name)
