"""Domain events fan out to their subscribers as one job each, in the same transaction."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select

from demandly.config import Settings
from demandly.jobs.models import DomainEvent, Job
from demandly.jobs.registry import JobContext, on_event, subscribers
from demandly.jobs.service import NewEvent, emit, emit_many
from demandly.jobs.worker import Worker
from demandly.kit.context import Scope
from demandly.kit.db import Database
from tests.jobs.helpers import all_jobs

handled: dict[str, list[tuple[str, str | None, dict]]] = defaultdict(list)


@on_event("test.lead.created", name="test.events.notify_crm")
async def notify_crm(ctx: JobContext, event: DomainEvent) -> None:
    handled["crm"].append((event.id, event.entity_id, event.payload))


@on_event("test.lead.created", name="test.events.send_webhook")
async def send_webhook(ctx: JobContext, event: DomainEvent) -> None:
    assert ctx.session.info["scope"] == Scope.for_agency(event.agency_id or "")
    handled["webhook"].append((event.id, event.entity_id, event.payload))


def test_subscribers_are_registered_in_order() -> None:
    assert subscribers("test.lead.created")[:2] == [
        "test.events.notify_crm",
        "test.events.send_webhook",
    ]
    assert "test.events.notify_crm" not in subscribers("test.lead.deleted")


async def test_an_event_becomes_one_job_per_handler_and_each_runs(
    fresh_db: tuple[Database, Settings],
) -> None:
    db, _ = fresh_db
    async with db.session(Scope.for_client("agc_ev", "cli_ev")) as session:
        event = await emit(
            session,
            "test.lead.created",
            agency_id="agc_ev",
            client_id="cli_ev",
            entity_type="lead",
            entity_id="led_42",
            payload={"score": 80},
        )
        await session.commit()

    jobs = {job.name: job for job in await all_jobs(db)}
    assert set(jobs) >= {"test.events.notify_crm", "test.events.send_webhook"}
    for name in ("test.events.notify_crm", "test.events.send_webhook"):
        job = jobs[name]
        assert job.idempotency_key == f"{event.id}:{name}"
        assert (job.agency_id, job.client_id) == ("agc_ev", "cli_ev")
        assert job.payload["event_id"] == event.id

    await Worker(db).run_until_idle()
    expected = (event.id, "led_42", {"score": 80})
    assert expected in handled["crm"] and expected in handled["webhook"]
    assert {j.status for j in await all_jobs(db)} == {"succeeded"}


async def test_an_event_without_subscribers_is_still_recorded(db: Database) -> None:
    async with db.session(Scope.for_agency("agc_quiet")) as session:
        event = await emit(session, "test.nobody.listens", agency_id="agc_quiet")
        await session.commit()
    async with db.session(Scope.for_system()) as session:
        stored = await session.get(DomainEvent, event.id)
        jobs = (
            await session.execute(
                select(Job).where(Job.payload["event_id"].as_string() == event.id)
            )
        ).all()
    assert stored is not None and stored.type == "test.nobody.listens"
    assert jobs == []


async def test_a_platform_event_from_a_tenant_scope_is_readable_by_the_system_only(
    db: Database,
) -> None:
    async with db.session(Scope.for_agency("agc_pev")) as session:
        event = await emit(session, "test.lead.created", agency_id=None, entity_id="usr_1")
        assert event.agency_id is None
        await session.commit()
    async with db.session(Scope.for_agency("agc_pev")) as session:
        assert await session.get(DomainEvent, event.id, populate_existing=True) is None
    async with db.session(Scope.for_system()) as session:
        assert await session.get(DomainEvent, event.id) is not None


async def test_several_events_are_written_in_order_each_with_its_subscribers_jobs(
    fresh_db: tuple[Database, Settings],
) -> None:
    """``emit_many``: events of a tenant and of the platform from one unit of work, in order,
    each fanned out as ``emit`` does; the platform's stays out of the tenant's sight."""
    db, _ = fresh_db
    async with db.session(Scope.for_client("agc_many", "cli_many")) as session:
        first, platform, last = await emit_many(
            session,
            [
                NewEvent("test.lead.created", "agc_many", "cli_many", "lead", "led_1"),
                NewEvent("test.nobody.listens", None, entity_id="usr_1"),
                NewEvent("test.lead.created", "agc_many", "cli_many", "lead", "led_2"),
            ],
        )
        await session.commit()
    assert first.id < platform.id < last.id
    assert [e.entity_id for e in (first, platform, last)] == ["led_1", "usr_1", "led_2"]
    keys = {job.idempotency_key for job in await all_jobs(db)}
    for event in (first, last):
        names = ("test.events.notify_crm", "test.events.send_webhook")
        assert {f"{event.id}:{name}" for name in names} <= keys
    assert not any(key.startswith(platform.id) for key in keys if key)
    async with db.session(Scope.for_client("agc_many", "cli_many")) as session:
        assert await session.get(DomainEvent, platform.id) is None
    async with db.session(Scope.for_system()) as session:
        stored = await session.get(DomainEvent, platform.id)
        assert stored is not None and stored.agency_id is None
