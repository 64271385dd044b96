"""The public chat's routes are matched first (app.py): that is only safe while no other
route answers the same paths."""

from __future__ import annotations

import re

from fastapi import FastAPI
from starlette.routing import compile_path

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
