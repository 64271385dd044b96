"""The task registry: ``@task("name")`` handlers for jobs and ``@on_event("type")`` subscribers
of domain events. Domains declare theirs in ``demandly/<domain>/tasks.py``; the worker imports
every such module (``autodiscover``) so a job never meets a worker that does not know it."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from demandly.jobs.models import DomainEvent, Job
from demandly.kit.db import Database

MAX_NAME_LENGTH = 100
ALL_EVENTS = "*"


@dataclass
class JobContext:
    """What a handler gets: its job, a session scoped to the job's tenant (the agency, or the
    system scope for platform jobs), and the database for work that needs transactions of its
    own. The worker commits the session's transaction together with "job succeeded" when the
    handler returns, and rolls it back when it raises: handlers never commit it themselves."""

    job: Job
    session: AsyncSession
    db: Database

    @property
    def attempt(self) -> int:
        return self.job.attempts


TaskHandler = Callable[[JobContext, dict[str, Any]], Awaitable[None]]
EventHandler = Callable[[JobContext, DomainEvent], Awaitable[None]]
H = TypeVar("H", bound=Callable[..., Awaitable[None]])

_tasks: dict[str, TaskHandler] = {}
_periodic: dict[str, timedelta] = {}
_subscribers: dict[str, list[str]] = {}
_discovered: set[str] = set()


def _qualified(func: Callable[..., Any]) -> str:
    return f"{func.__module__}.{func.__qualname__}"


def register_task(name: str, handler: TaskHandler, origin: Callable[..., Any]) -> None:
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"task name must be 1 to {MAX_NAME_LENGTH} characters: {name!r}")
    existing = _tasks.get(name)
    # Re-importing a module registers the same function again; a second function is a clash.
    if existing is not None and getattr(existing, "__origin__", None) != _qualified(origin):
        raise ValueError(f"task {name!r} is already registered by {existing.__origin__}")  # type: ignore[attr-defined]
    handler.__origin__ = _qualified(origin)  # type: ignore[attr-defined]
    _tasks[name] = handler


def task(name: str) -> Callable[[H], H]:
    """Register ``async def handler(ctx: JobContext, payload: dict) -> None`` as task ``name``."""

    def decorate(func: H) -> H:
        async def run(ctx: JobContext, payload: dict[str, Any]) -> None:
            await func(ctx, payload)

        register_task(name, run, func)
        return func

    return decorate


def periodic(name: str, *, every: timedelta) -> Callable[[H], H]:
    """Register a platform task that runs once per ``every`` (purges, re-crawls, reminders
    sweeps). Workers enqueue it with an idempotency key per period, so however many workers
    run, each period gets one job."""
    if every < timedelta(minutes=1):
        raise ValueError("periodic tasks run at most once a minute")

    def decorate(func: H) -> H:
        task(name)(func)
        _periodic[name] = every
        return func

    return decorate


def periodic_tasks() -> dict[str, timedelta]:
    return dict(_periodic)


def on_event(event_type: str, *, name: str | None = None) -> Callable[[H], H]:
    """Subscribe ``async def handler(ctx: JobContext, event: DomainEvent) -> None`` to events of
    ``event_type`` (``"*"`` for all). Each emitted event becomes one job per subscriber, named
    ``name`` (default: the handler's dotted path)."""

    def decorate(func: H) -> H:
        task_name = name or _qualified(func)

        async def run(ctx: JobContext, payload: dict[str, Any]) -> None:
            event = await ctx.session.get(DomainEvent, payload["event_id"])
            if event is None:
                raise LookupError(f"event {payload['event_id']} no longer exists")
            await func(ctx, event)

        register_task(task_name, run, func)
        names = _subscribers.setdefault(event_type, [])
        if task_name not in names:
            names.append(task_name)
        return func

    return decorate


def get_task(name: str) -> TaskHandler | None:
    return _tasks.get(name)


def subscribers(event_type: str) -> list[str]:
    """Task names subscribed to ``event_type``, in registration order, wildcards last."""
    names = list(_subscribers.get(event_type, []))
    names += [n for n in _subscribers.get(ALL_EVENTS, []) if n not in names]
    return names


def autodiscover(package: str = "demandly") -> None:
    """Import every ``<package>.<domain>.tasks`` module (and deeper, e.g. channels/phone), once."""
    if package in _discovered:
        return
    _discovered.add(package)
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if info.name.rsplit(".", 1)[-1] == "tasks":
            importlib.import_module(info.name)
