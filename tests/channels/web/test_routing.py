"""The public chat's routes are matched first (app.py): that is only safe while no other
route answers the same paths."""

from __future__ import annotations

import re

from fastapi import FastAPI
from starlette.routing import Match, compile_path

PUBLIC_CHAT = "/api/v1/public/"


def test_no_other_api_route_matches_a_public_chat_path(app: FastAPI) -> None:
    paths = list(app.openapi()["paths"])
    public = [p for p in paths if p.startswith(PUBLIC_CHAT)]
    assert "/api/v1/public/conversations/{conversation_id}/messages" in public
    samples = [re.sub(r"\{[^}]+\}", "x1", p) for p in public]
    for path in paths:
        if path.startswith(PUBLIC_CHAT):
            continue
        pattern = compile_path(path)[0]
        assert not [s for s in samples if pattern.match(s)], path


def _routes_matching(app: FastAPI, path: str, kind: str = "http") -> list[int]:
    scope = {"type": kind, "path": path, "method": "POST", "root_path": "", "app": app,
             "headers": []}  # fmt: skip
    return [i for i, route in enumerate(app.routes) if route.matches(scope)[0] != Match.NONE]


def test_twilios_paths_are_matched_early_and_by_nothing_else(app: FastAPI) -> None:
    """Twilio's webhooks and the media stream come right after the public chat."""
    [api_route] = _routes_matching(app, "/api/v1/me")
    for path, kind in (
        ("/twilio/voice/incoming", "http"),
        ("/twilio/voice/gather", "http"),
        ("/twilio/media-stream", "websocket"),
    ):
        hits = _routes_matching(app, path, kind)
        assert len(hits) == 1 and hits[0] < api_route, (path, hits)
