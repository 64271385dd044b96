"""The jobs API: see, retry and cancel your agency's jobs; nobody else's."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import update

from demandly.jobs.models import Job, JobStatus
from demandly.jobs.service import emit, enqueue
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.kit.time import utcnow
from tests.audit.helpers import events_of, platform_admin_headers
from tests.factories import World, unique
from tests.jobs.helpers import load_job


async def _job(
    db: Database, agency_id: str | None, client_id: str | None = None, **kwargs: object
) -> Job:
    name = str(kwargs.pop("name", unique("test.api")))
    async with db.session(Scope.for_system()) as session:
        job = await enqueue(
            session,
            name,
            {"n": 1},
            agency_id=agency_id,
            client_id=client_id,
            run_at=utcnow() + timedelta(days=365),  # nobody runs it meanwhile
            **kwargs,  # type: ignore[arg-type]
        )
        await session.commit()
    return job


async def _set_status(db: Database, job_id: str, status: JobStatus, **values: object) -> None:
    async with db.session(Scope.for_system()) as session:
        await session.execute(
            update(Job).where(Job.id == job_id).values(status=status.value, **values)
        )
        await session.commit()


async def test_an_agency_admin_lists_the_agencys_jobs(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    name = unique("test.api.list")
    mine = await _job(db, world.a.agency.id, name=name)
    theirs = await _job(db, world.b.agency.id, name=name)
    response = await client.get(
        "/api/v1/jobs",
        params={"agency_id": world.a.agency.id, "name": name},
        headers=world.a.headers("agency_admin"),
    )
    assert response.status_code == 200, response.text
    [item] = response.json()["items"]
    assert item["id"] == mine.id != theirs.id
    assert (item["status"], item["attempts"], item["payload"]) == ("queued", 0, {"n": 1})

    # Without agency_id: every agency where the caller may read jobs, which is only A.
    response = await client.get(
        "/api/v1/jobs", params={"name": name}, headers=world.a.headers("agency_owner")
    )
    assert [i["id"] for i in response.json()["items"]] == [mine.id]


async def test_status_filter_and_pagination(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    name = unique("test.api.page")
    jobs = [await _job(db, world.a.agency.id, name=name) for _ in range(3)]
    await _set_status(db, jobs[0].id, JobStatus.DEAD)
    headers = world.a.headers("agency_admin")
    base = {"agency_id": world.a.agency.id, "name": name}

    dead = await client.get("/api/v1/jobs", params={**base, "status": "dead"}, headers=headers)
    assert [i["id"] for i in dead.json()["items"]] == [jobs[0].id]

    first = (await client.get("/api/v1/jobs", params={**base, "limit": 2}, headers=headers)).json()
    second = (
        await client.get(
            "/api/v1/jobs",
            params={**base, "limit": 2, "cursor": first["next_cursor"]},
            headers=headers,
        )
    ).json()
    ids = [i["id"] for i in first["items"] + second["items"]]
    assert ids == sorted((j.id for j in jobs), reverse=True)
    assert second["next_cursor"] is None


async def test_another_agencys_jobs_are_not_found(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    theirs = await _job(db, world.b.agency.id)
    headers = world.a.headers("agency_admin")
    listing = await client.get(
        "/api/v1/jobs", params={"agency_id": world.b.agency.id}, headers=headers
    )
    assert listing.status_code == 404
    for method, path in (
        ("GET", f"/api/v1/jobs/{theirs.id}"),
        ("POST", f"/api/v1/jobs/{theirs.id}/retry"),
        ("POST", f"/api/v1/jobs/{theirs.id}/cancel"),
    ):
        response = await client.request(method, path, headers=headers)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == "not_found"
    assert (await load_job(db, theirs.id)).status == "queued"


async def test_client_roles_may_not_see_or_manage_jobs(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    a, c0 = world.a.agency.id, world.a.clients[0].id
    client_job = await _job(db, a, c0)
    agency_job = await _job(db, a)
    for role in ("client_admin", "client_member", "client_viewer"):
        headers = world.a.headers(role)
        listing = await client.get(
            "/api/v1/jobs", params={"agency_id": a, "client_id": c0}, headers=headers
        )
        assert listing.status_code == 403, role
        assert (await client.get("/api/v1/jobs", headers=headers)).status_code == 403
        # Their own client's job: visible, but the role may not read or manage it.
        for method, suffix in (("GET", ""), ("POST", "/retry"), ("POST", "/cancel")):
            response = await client.request(
                method, f"/api/v1/jobs/{client_job.id}{suffix}", headers=headers
            )
            assert response.status_code == 403, (role, suffix, response.text)
        # An agency-level job is not theirs to see at all.
        response = await client.get(f"/api/v1/jobs/{agency_job.id}", headers=headers)
        assert response.status_code == 404
    assert (await load_job(db, client_job.id)).status == "queued"


async def test_retry_requeues_a_dead_job_and_is_audited(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    job = await _job(db, world.a.agency.id, max_attempts=2)
    headers = world.a.headers("agency_admin")

    response = await client.post(f"/api/v1/jobs/{job.id}/retry", headers=headers)
    assert response.status_code == 409
    assert "this job is queued" in response.json()["error"]["message"]

    await _set_status(
        db,
        job.id,
        JobStatus.DEAD,
        attempts=2,
        last_error="RuntimeError: boom",
        finished_at=utcnow(),
    )
    before = utcnow()
    response = await client.post(
        f"/api/v1/jobs/{job.id}/retry", headers={**headers, "User-Agent": "ops-console/2"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["attempts"], body["finished_at"]) == ("queued", 0, None)
    stored = await load_job(db, job.id)
    assert before <= stored.run_at <= utcnow()

    [event] = await events_of(db, entity_id=job.id, action="job.retried")
    assert (event.agency_id, event.entity_type, event.actor_kind) == (
        world.a.agency.id,
        "job",
        "api_key",
    )
    assert (event.actor_role, event.user_agent) == ("agency_admin", "ops-console/2")
    assert event.request_id == response.headers["x-request-id"]


async def test_retry_of_a_succeeded_job_runs_it_again(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    job = await _job(db, world.a.agency.id)
    await _set_status(db, job.id, JobStatus.SUCCEEDED, attempts=1, finished_at=utcnow())
    response = await client.post(
        f"/api/v1/jobs/{job.id}/retry", headers=world.a.headers("agency_owner")
    )
    assert response.status_code == 200
    assert response.json()["status"] == "queued"


async def test_cancel_stops_a_queued_job_only(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    job = await _job(db, world.a.agency.id)
    headers = world.a.headers("agency_admin")
    response = await client.post(f"/api/v1/jobs/{job.id}/cancel", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert (await load_job(db, job.id)).status == "cancelled"
    assert await events_of(db, entity_id=job.id, action="job.cancelled")

    again = await client.post(f"/api/v1/jobs/{job.id}/cancel", headers=headers)
    assert again.status_code == 409
    retried = await client.post(f"/api/v1/jobs/{job.id}/retry", headers=headers)
    assert retried.status_code == 409


async def test_a_platform_admin_sees_every_job_and_platform_jobs(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    name = unique("test.api.admin")
    platform = await _job(db, None, name=name)
    agency = await _job(db, world.b.agency.id, name=name)
    headers = await platform_admin_headers(db, world.platform_admin.id)

    response = await client.get("/api/v1/jobs", params={"name": name}, headers=headers)
    assert response.status_code == 200, response.text
    assert {i["id"] for i in response.json()["items"]} == {platform.id, agency.id}
    assert (await client.get(f"/api/v1/jobs/{platform.id}", headers=headers)).status_code == 200
    cancelled = await client.post(f"/api/v1/jobs/{platform.id}/cancel", headers=headers)
    assert cancelled.status_code == 200, cancelled.text
    [event] = await events_of(db, entity_id=platform.id, action="job.cancelled")
    assert event.chain == "platform"

    # A platform job is invisible to agencies.
    hidden = await client.get(
        f"/api/v1/jobs/{platform.id}", headers=world.a.headers("agency_owner")
    )
    assert hidden.status_code == 404


async def test_events_are_listed_per_agency(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    kind = unique("test.api.event")
    async with db.session(Scope.for_system()) as session:
        mine = await emit(
            session, kind, agency_id=world.a.agency.id, entity_type="lead", entity_id="led_9"
        )
        await emit(session, kind, agency_id=world.b.agency.id)
        await session.commit()
    headers = world.a.headers("agency_admin")
    response = await client.get(
        "/api/v1/events", params={"agency_id": world.a.agency.id, "type": kind}, headers=headers
    )
    assert response.status_code == 200, response.text
    [item] = response.json()["items"]
    assert (item["id"], item["type"], item["entity_id"]) == (mine.id, kind, "led_9")
    response = await client.get("/api/v1/events", params={"type": kind}, headers=headers)
    assert [i["id"] for i in response.json()["items"]] == [mine.id]

    response = await client.get(
        "/api/v1/events", params={"agency_id": world.b.agency.id}, headers=headers
    )
    assert response.status_code == 404
    response = await client.get(
        "/api/v1/events",
        params={"agency_id": world.a.agency.id, "client_id": world.a.clients[0].id},
        headers=world.a.headers("client_admin"),
    )
    assert response.status_code == 403


async def test_bad_input_is_422_naming_the_field(client: httpx.AsyncClient, world: World) -> None:
    headers = world.a.headers("agency_admin")
    for path, params, field in (
        ("/api/v1/jobs", {"status": "exploded"}, "status"),
        ("/api/v1/jobs", {"limit": "500"}, "limit"),
        ("/api/v1/jobs", {"client_id": world.a.clients[0].id}, "agency_id"),
        ("/api/v1/events", {"type": "t" * 300}, "type"),
        (f"/api/v1/jobs/{'j' * 100}", {}, "job_id"),
    ):
        response = await client.get(path, params=params, headers=headers)
        assert response.status_code == 422, (path, params, response.text)
        assert response.json()["error"]["details"][0]["field"] == field
    assert (await client.get("/api/v1/jobs/job_nope", headers=headers)).status_code == 404
    assert (await client.get("/api/v1/jobs")).status_code == 401
