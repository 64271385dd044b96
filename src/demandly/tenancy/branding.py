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
# The dashboard's page background (app.css --bg), the lightest a link sits on besides white.
PAGE_BACKGROUND = "#f6f7f9"


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

    @property
    def link(self) -> str:
        """The accent as text on the dashboard's light backgrounds: darkened until it reads
        (WCAG AA, 4.5:1), so a light brand colour never makes links illegible."""
        return readable_on(self.accent, PAGE_BACKGROUND)

    def css_variables(self) -> str:
        """``:root`` custom properties for a stylesheet (never inline: the CSP forbids it)."""
        return (
            ":root{"
            f"--brand-primary:{self.primary};--brand-on-primary:{self.on_primary};"
            f"--brand-accent:{self.accent};--brand-on-accent:{self.on_accent};"
            f"--brand-link:{self.link};"
            "}\n"
        )


def color_or(value: Any, default: str) -> str:
    return value if isinstance(value, str) and HEX_COLOR.match(value) else default


def _channels(color: str) -> list[int]:
    digits = color[1:] if len(color) == 7 else "".join(c * 2 for c in color[1:])
    return [int(digits[i : i + 2], 16) for i in (0, 2, 4)]


def luminance(color: str) -> float:
    """WCAG relative luminance of a hex colour."""
    linear = [
        c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
        for c in (value / 255 for value in _channels(color))
    ]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(first: str, second: str) -> float:
    lighter, darker = sorted((luminance(first), luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def contrast_color(color: str) -> str:
    """Black or white, whichever reads better on ``color`` (WCAG relative luminance)."""
    return "#111111" if luminance(color) > 0.4 else "#ffffff"


def readable_on(color: str, background: str, minimum: float = 4.5) -> str:
    """``color``, darkened in small steps towards black until it reaches ``minimum`` contrast
    on ``background`` (the hue stays recognisable)."""
    channels = _channels(color)
    for step in range(21):
        share = 1 - step / 20
        candidate = "#" + "".join(f"{round(c * share):02x}" for c in channels)
        if contrast_ratio(candidate, background) >= minimum:
            return candidate
    return "#000000"


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
