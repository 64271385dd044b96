"""What a unit of work costs around its statements: ``--sessions`` sessions one after the
other, each running one UPDATE and committing, on SQLite in a temporary folder. The
platform's ``UnitOfWork`` (``kit.db``) and SQLAlchemy's stock ``AsyncSession``, which closes
every session in a shielded task of its own, are measured alternately in the same process (so
the host's speed is the same for both), and one transaction of as many UPDATEs gives the
statement alone. Best of ``--repeats``, µs per session.

    .venv/bin/python bench/unit_of_work.py [--sessions 3000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from demandly.kit.db import Database
from demandly.kit.migrations import upgrade_to_head

UPDATE = text("UPDATE counter SET n = n + 1 WHERE id = 1")


async def per_session(make: Callable[[], AsyncSession], sessions: int) -> float:
    began = time.perf_counter()
    for _ in range(sessions):
        async with make() as session:
            await session.execute(UPDATE)
            await session.commit()
    return (time.perf_counter() - began) / sessions * 1e6


async def statement_alone(db: Database, statements: int) -> float:
    async with db.session() as session:
        began = time.perf_counter()
        for _ in range(statements):
            await session.execute(UPDATE)
        elapsed = time.perf_counter() - began
        await session.commit()
    return elapsed / statements * 1e6


async def measure(sessions: int, repeats: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="uow-"))
    url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    upgrade_to_head(url)
    db = Database(url)
    async with db.session() as session:
        await session.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER)"))
        await session.execute(text("INSERT INTO counter VALUES (1, 0)"))
        await session.commit()
    stock = async_sessionmaker(db.engine, expire_on_commit=False)
    best = {"UnitOfWork": float("inf"), "AsyncSession": float("inf"), "statement": float("inf")}
    for _ in range(repeats):
        best["UnitOfWork"] = min(best["UnitOfWork"], await per_session(db.session, sessions))
        best["AsyncSession"] = min(best["AsyncSession"], await per_session(stock, sessions))
        best["statement"] = min(best["statement"], await statement_alone(db, sessions))
    await db.dispose()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    best = asyncio.run(measure(args.sessions, args.repeats))
    print(
        f"unit of work ({platform.node()}, {os.cpu_count()} CPUs, {datetime.now(UTC):%Y-%m-%d}, "
        f"sqlite): UnitOfWork {best['UnitOfWork']:.0f} µs per session, stock AsyncSession "
        f"{best['AsyncSession']:.0f} µs, the UPDATE alone {best['statement']:.0f} µs"
    )


if __name__ == "__main__":
    main()
