"""Dashboard screen: team."""

from __future__ import annotations

from fastapi import APIRouter

from demandly.web.deps import PageRoute

router = APIRouter(route_class=PageRoute, include_in_schema=False)
