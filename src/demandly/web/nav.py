"""The dashboard's navigation: which links a user sees follows the same permission matrix
that guards the pages behind them."""

from __future__ import annotations

from typing import Any

from demandly.auth.permissions import Permission

# (key, English label, path under /app/clients/{id}/, permission needed)
CLIENT_SECTIONS: tuple[tuple[str, str, str, Permission], ...] = (
    ("agents", "Agents", "agents", Permission.CONTENT_READ),
    ("inbox", "Inbox", "inbox", Permission.CONTENT_READ),
    ("leads", "Leads", "leads", Permission.CONTENT_READ),
    ("calendar", "Calendar", "calendar", Permission.CONTENT_READ),
    ("knowledge", "Knowledge", "knowledge", Permission.CONTENT_READ),
    ("phone", "Phone", "phone", Permission.CONTENT_READ),
    ("client-settings", "Settings", "settings", Permission.CLIENT_SETTINGS),
)

AGENCY_SECTIONS: tuple[tuple[str, str, str, Permission], ...] = (
    ("team", "Team", "/app/team", Permission.MEMBERS_READ),
    ("settings", "Settings", "/app/settings", Permission.AGENCIES_UPDATE),
    ("audit", "Audit log", "/app/audit", Permission.AUDIT_READ),
)


def client_nav(page: Any, client: Any) -> list[tuple[str, str, str]]:
    return [
        (key, label, f"/app/clients/{client.id}/{path}")
        for key, label, path, permission in CLIENT_SECTIONS
        if page.can(permission, client.id)
    ]


def agency_nav(page: Any) -> list[tuple[str, str, str]]:
    links = []
    for key, label, href, permission in AGENCY_SECTIONS:
        # Client admins manage their own client's team and audit log from here too.
        if page.can(permission) or (key != "settings" and page.can_any(permission)):
            links.append((key, label, href))
    return links
