"""Every dashboard route, plus its static files under ``/app/static``."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from demandly.web.screens import (
    account,
    agents,
    audit,
    auth,
    calendar,
    home,
    inbox,
    knowledge,
    leads,
    phone,
    settings,
    team,
)

STATIC = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)
for screen in (
    auth, home, account, agents, inbox, leads, calendar, knowledge, phone, team, settings, audit
):  # fmt: skip
    router.include_router(screen.router)


def mount_dashboard(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/app/static", StaticFiles(directory=STATIC), name="dashboard-static")
