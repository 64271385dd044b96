"""The job worker (implemented in the jobs issue work; this is its interface)."""

from __future__ import annotations

import asyncio

from demandly.kit.db import Database


class Worker:
    def __init__(self, db: Database, *, name: str | None = None, poll_seconds: float = 0.5) -> None:
        self.db = db
        self.name = name
        self.poll_seconds = poll_seconds

    async def run(self, stop: asyncio.Event) -> None:
        await stop.wait()
