"""The dashboard's Jinja2 environment: autoescaped templates under ``web/templates``; each
screen keeps its templates in a folder of its own (``templates/<screen>/``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape

from demandly.web.nav import agency_nav, client_nav

TEMPLATES = Path(__file__).parent / "templates"

environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def format_datetime(value: datetime | None, tz: str = "Europe/Berlin", lang: str = "en") -> str:
    """A timestamp as people read it, in the agency's time zone (German or ISO order)."""
    if value is None:
        return "-"
    local = value.astimezone(ZoneInfo(tz))
    return local.strftime("%d.%m.%Y %H:%M" if lang == "de" else "%Y-%m-%d %H:%M")


environment.filters["datetime"] = format_datetime
environment.globals.update(client_nav=client_nav, agency_nav=agency_nav)


def render_template(template_name: str, /, **context: Any) -> str:
    return environment.get_template(template_name).render(**context)
