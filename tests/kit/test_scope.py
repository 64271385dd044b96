"""The one place tenant scoping lives (kit/db.py): unscoped queries refuse to run, scoped
queries see only their tenant, writes outside the scope are refused."""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, func, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.kit.context import Scope
from demandly.kit.db import Database, ScopedQuery, system_scope
from demandly.kit.errors import NotFound, UnscopedQuery
from demandly.kit.ids import new_id
from demandly.tenancy.models import Agency, Client, Membership, Role, User
from tests.factories import World, make_agency


async def test_query_without_scope_does_not_run(db: Database, world: World) -> None:
    async with db.session() as session:
        with pytest.raises(UnscopedQuery):
            await session.execute(select(Client))


async def test_non_tenant_tables_need_no_scope(db: Database, world: World) -> None:
    async with db.session() as session:
        count = (await session.execute(select(func.count()).select_from(User))).scalar_one()
    assert count >= 1


async def test_agency_scope_sees_only_its_clients(db: Database, world: World) -> None:
    async with db.session(Scope.for_agency(world.a.agency.id)) as session:
        clients = (await session.execute(select(Client))).scalars().all()
        agencies = (await session.execute(select(Agency))).scalars().all()
    assert {c.agency_id for c in clients} == {world.a.agency.id}
    assert {c.id for c in world.a.clients} <= {c.id for c in clients}
    assert [a.id for a in agencies] == [world.a.agency.id]


async def test_client_scope_sees_one_client(db: Database, world: World) -> None:
    first = world.a.clients[0]
    async with db.session(Scope.for_client(world.a.agency.id, first.id)) as session:
        clients = (await session.execute(select(Client))).scalars().all()
        # Agency-level rows (client_id null) are not a client user's to see.
        memberships = (await session.execute(select(Membership))).scalars().all()
    assert [c.id for c in clients] == [first.id]
    assert all(m.client_id == first.id for m in memberships)


async def test_get_by_primary_key_is_scoped_too(db: Database, world: World) -> None:
    foreign = world.b.clients[0].id
    async with db.session(Scope.for_agency(world.a.agency.id)) as session:
        assert await session.get(Client, foreign) is None


async def test_write_outside_scope_is_refused_as_not_found(db: Database, world: World) -> None:
    async with db.session(Scope.for_agency(world.a.agency.id)) as session:
        session.add(Client(agency_id=world.b.agency.id, name="smuggled"))
        with pytest.raises(NotFound):
            await session.flush()
        await session.rollback()
    async with db.session(Scope.for_system()) as session:
        smuggled = await session.execute(select(Client).where(Client.name == "smuggled"))
        assert smuggled.first() is None


async def test_agency_member_scope_is_limited_to_assigned_clients(
    db: Database, world: World
) -> None:
    assigned = world.a.clients[0].id
    scope = Scope.for_agency(world.a.agency.id, [assigned])
    async with db.session(scope) as session:
        ids = set((await session.execute(select(Client.id))).scalars().all())
    assert ids == {assigned}


def test_scope_merge_and_allows() -> None:
    merged = Scope.for_client("a", "c1").merge(Scope.for_client("a", "c2"))
    assert merged.allows("a", "c1") and merged.allows("a", "c2")
    assert not merged.allows("a", None)
    assert not merged.allows("b", "c1")
    assert Scope.for_client("a", "c1").merge(Scope.for_agency("a")).allows("a", None)
    assert Scope.for_system().allows("anything", None)
    assert not Scope().allows("a", "c1")


# --- ScopedQuery: hot queries built once per scope, with the same criteria ----------------

_CLIENTS_NAMED = ScopedQuery(
    lambda tenant: select(Client).where(Client.name != bindparam("not_named"), tenant(Client))
)


async def _clients_by_scoped_query(db: Database, scope: Scope | None) -> set[str]:
    async with db.session(scope) as session:
        statement = _CLIENTS_NAMED.statement(session)
        rows = await session.execute(statement, {"not_named": "nobody"})
        return {client.id for client in rows.scalars()}


async def test_a_scoped_query_sees_what_the_scope_sees_and_no_more(db: Database) -> None:
    # Agencies of its own: other tests add clients to the shared world's.
    a, b = await make_agency(db, clients=2), await make_agency(db, clients=2)
    first = a.clients[0]
    agency_scope = Scope.for_agency(a.agency.id)
    assert await _clients_by_scoped_query(db, agency_scope) == {c.id for c in a.clients}
    client_scope = Scope.for_client(a.agency.id, first.id)
    assert await _clients_by_scoped_query(db, client_scope) == {first.id}
    member_scope = Scope.for_agency(b.agency.id, [b.clients[0].id])
    assert await _clients_by_scoped_query(db, member_scope) == {b.clients[0].id}
    everyone = await _clients_by_scoped_query(db, Scope.for_system())
    assert {c.id for c in (*a.clients, *b.clients)} <= everyone
    # Built once per scope: the first scope's statement is not handed to the next one.
    assert await _clients_by_scoped_query(db, client_scope) == {first.id}


async def test_a_scoped_query_needs_a_scope(db: Database, world: World) -> None:
    with pytest.raises(UnscopedQuery):
        await _clients_by_scoped_query(db, None)


async def test_a_scoped_query_that_forgets_a_tenant_table_is_refused(
    db: Database, world: World
) -> None:
    forgetful = ScopedQuery(
        lambda tenant: (
            select(Client, Agency).join(Agency, Agency.id == Client.agency_id).where(tenant(Client))
        )
    )
    async with db.session(Scope.for_agency(world.a.agency.id)) as session:
        with pytest.raises(UnscopedQuery, match="agencies"):
            forgetful.statement(session)


async def _client_ids(session: AsyncSession) -> set[str]:
    return set((await session.execute(select(Client.id))).scalars())


async def test_the_system_scope_sees_every_tenant_and_gives_the_caller_its_scope_back(
    db: Database, world: World
) -> None:
    own = {c.id for c in world.a.clients}
    foreign = {c.id for c in world.b.clients}
    async with db.session(Scope.for_agency(world.a.agency.id)) as session:
        async with system_scope(session):
            assert own | foreign <= await _client_ids(session)
        assert await _client_ids(session) >= own
        assert not await _client_ids(session) & foreign
        with pytest.raises(NotFound, match="slug"):
            async with system_scope(session):
                raise NotFound("The slug is unknown.")
        assert not await _client_ids(session) & foreign


async def test_the_system_scope_leaves_a_session_without_scope_as_it_found_it(
    db: Database, world: World
) -> None:
    async with db.session() as session:
        async with system_scope(session):
            assert {c.id for c in world.b.clients} <= await _client_ids(session)
        with pytest.raises(UnscopedQuery):
            await _client_ids(session)


async def test_what_the_system_scope_adds_is_written_inside_it(db: Database, world: World) -> None:
    email = f"{new_id('u')}@example.org"
    async with db.session(Scope.for_client(world.a.agency.id, world.a.clients[0].id)) as session:
        async with system_scope(session):
            user = User(email=email)
            session.add(user)
        assert inspect(user).persistent  # flushed before the scope narrowed
        await session.commit()
    async with db.session() as session:
        assert (await session.execute(select(User.id).where(User.email == email))).one()


async def test_a_constraint_hit_inside_the_system_scope_comes_out_as_itself(
    db: Database, world: World
) -> None:
    """A refused flush inside the block leaves a transaction that runs no more statements:
    giving the caller its scope back must not hide the refusal behind another error (on
    PostgreSQL, the scope's settings are a statement)."""
    taken = world.a.users[Role.AGENCY_OWNER.value].email
    async with db.session(Scope.for_agency(world.a.agency.id)) as session:
        with pytest.raises(IntegrityError):
            async with system_scope(session):
                session.add(User(email=taken))
        await session.rollback()
        assert {c.id for c in world.a.clients} <= await _client_ids(session)
