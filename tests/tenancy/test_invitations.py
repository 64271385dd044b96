from __future__ import annotations

from datetime import datetime, timedelta

import httpx
from sqlalchemy import select

from demandly.jobs.worker import Worker
from demandly.kit.context import Scope
from demandly.kit.crypto import hash_token
from demandly.kit.db import Database
from demandly.kit.time import utcnow
from demandly.tenancy.models import Invitation, User
from tests.factories import PASSWORD, Tenant, World, make_tenant, make_user, unique
from tests.integrations.smtp import SmtpServer, smtp_server, use_smtp  # noqa: F401
from tests.tenancy.conftest import login_headers

API = "/api/v1"
GOOD_PASSWORD = "a long and unusual passphrase 91"


def new_email() -> str:
    return f"{unique('invitee')}@example.com"


async def invite(
    client: httpx.AsyncClient, tenant: Tenant, role: str = "client_member", **body: object
) -> httpx.Response:
    body = {"email": new_email(), "role": role, "client_id": tenant.clients[0].id, **body}
    return await client.post(
        f"{API}/invitations", json=body, headers=tenant.headers("agency_owner")
    )


async def accept(client: httpx.AsyncClient, token: str, **body: object) -> httpx.Response:
    body = {"name": "Ina Invitee", "password": GOOD_PASSWORD, **body}
    return await client.post(f"{API}/invitations/{token}/accept", json=body)


async def test_invite_and_accept_as_new_user(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    email = new_email()
    created = await client.post(
        f"{API}/invitations",
        json={"email": email.upper(), "role": "client_member", "client_id": world.a.clients[0].id},
        headers=world.a.headers("client_admin"),
    )
    assert created.status_code == 201, created.text
    invitation = created.json()
    assert invitation["email"] == email
    assert invitation["agency_id"] == world.a.agency.id
    assert invitation["client_id"] == world.a.clients[0].id
    assert invitation["accept_url"].endswith(f"/invitations/{invitation['token']}")
    lifetime = datetime.fromisoformat(invitation["expires_at"]) - utcnow()
    assert timedelta(days=6, hours=23) < lifetime <= timedelta(days=7)

    async with db.session(Scope.for_system()) as session:
        stored = (
            await session.execute(select(Invitation).where(Invitation.id == invitation["id"]))
        ).scalar_one()
        assert stored.token_hash == hash_token(invitation["token"])

    accepted = await accept(client, invitation["token"])
    assert accepted.status_code == 200, accepted.text
    result = accepted.json()
    assert result["role"] == "client_member"
    assert result["client_id"] == world.a.clients[0].id

    async with db.session(Scope.for_system()) as session:
        user = (await session.execute(select(User).where(User.email == email))).scalar_one()
    assert user.id == result["user_id"]
    assert user.name == "Ina Invitee"
    headers = await login_headers(client, user, GOOD_PASSWORD)
    listed = await client.get(f"{API}/clients", headers=headers)
    assert [c["id"] for c in listed.json()["items"]] == [world.a.clients[0].id]

    again = await accept(client, invitation["token"])
    assert again.status_code == 410
    assert again.json()["error"]["code"] == "invitation_used"


async def test_unknown_and_expired_tokens(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    assert (await accept(client, "no-such-token")).status_code == 404
    created = (await invite(client, world.a)).json()
    async with db.session(Scope.for_system()) as session:
        stored = (
            await session.execute(select(Invitation).where(Invitation.id == created["id"]))
        ).scalar_one()
        stored.expires_at = utcnow() - timedelta(minutes=1)
        await session.commit()
    expired = await accept(client, created["token"])
    assert expired.status_code == 410
    assert expired.json()["error"]["code"] == "invitation_expired"


async def test_new_user_needs_a_good_password_and_a_name(
    client: httpx.AsyncClient, world: World
) -> None:
    token = (await invite(client, world.a)).json()["token"]
    weak = await accept(client, token, password="password1")
    assert weak.status_code == 422
    assert weak.json()["error"]["details"][0]["field"] == "password"
    nameless = await accept(client, token, name=None)
    assert nameless.status_code == 422
    assert nameless.json()["error"]["details"][0]["field"] == "name"
    # Failed attempts did not use the invitation up.
    assert (await accept(client, token)).status_code == 200


async def test_existing_user_joins_without_a_password(
    client: httpx.AsyncClient, db: Database
) -> None:
    tenant = await make_tenant(db)
    email = new_email()
    user = await make_user(db, email=email)
    created = await invite(
        client,
        tenant,
        role="agency_member",
        client_id=None,
        agency_id=tenant.agency.id,
        assigned_client_ids=[tenant.clients[1].id],
        email=email,
    )
    assert created.status_code == 201, created.text
    accepted = await client.post(f"{API}/invitations/{created.json()['token']}/accept", json={})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["user_id"] == user.id
    assert accepted.json()["role"] == "agency_member"
    headers = await login_headers(client, user)
    listed = await client.get(f"{API}/clients", headers=headers)
    assert [c["id"] for c in listed.json()["items"]] == [tenant.clients[1].id]
    # The password is unchanged: logging in still checks the old one.
    login = await client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text


async def test_accepting_while_signed_in(
    client: httpx.AsyncClient, world: World, db: Database
) -> None:
    token = (await invite(client, world.a)).json()["token"]
    headers = await login_headers(client, world.a.users["client_viewer"])
    response = await client.post(
        f"{API}/invitations/{token}/accept",
        json={"name": "X", "password": GOOD_PASSWORD},
        headers=headers,
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "email_mismatch"

    # Signed in as the invited address, it just works.
    email = new_email()
    invitee = await make_user(db, email=email)
    token = (await invite(client, world.a, email=email)).json()["token"]
    own = await client.post(
        f"{API}/invitations/{token}/accept",
        json={},
        headers=await login_headers(client, invitee),
    )
    assert own.status_code == 200, own.text
    assert own.json()["user_id"] == invitee.id


async def test_role_must_fit_and_be_grantable(client: httpx.AsyncClient, world: World) -> None:
    misfit = await invite(client, world.a, role="agency_admin")
    assert misfit.status_code == 422
    assert misfit.json()["error"]["details"][0]["field"] == "role"
    platform = await invite(
        client, world.a, role="platform_admin", client_id=None, agency_id=world.a.agency.id
    )
    assert platform.status_code == 422
    assigned_to_admin = await invite(
        client,
        world.a,
        role="agency_admin",
        client_id=None,
        agency_id=world.a.agency.id,
        assigned_client_ids=[world.a.clients[0].id],
    )
    assert assigned_to_admin.status_code == 422

    above = await client.post(
        f"{API}/invitations",
        json={"email": new_email(), "role": "agency_owner", "agency_id": world.a.agency.id},
        headers=world.a.headers("agency_admin"),
    )
    assert above.status_code == 403
    client_admin_to_agency = await client.post(
        f"{API}/invitations",
        json={"email": new_email(), "role": "agency_member", "agency_id": world.a.agency.id},
        headers=world.a.headers("client_admin"),
    )
    assert client_admin_to_agency.status_code == 403
    viewer = await client.post(
        f"{API}/invitations",
        json={"email": new_email(), "role": "client_viewer", "client_id": world.a.clients[0].id},
        headers=world.a.headers("client_viewer"),
    )
    assert viewer.status_code == 403
    foreign = await client.post(
        f"{API}/invitations",
        json={"email": new_email(), "role": "client_viewer", "client_id": world.b.clients[0].id},
        headers=world.a.headers("agency_owner"),
    )
    assert foreign.status_code == 404
    bad_email = await invite(client, world.a, email="not-an-email")
    assert bad_email.status_code == 422
    assert bad_email.json()["error"]["details"][0]["field"] == "email"


async def test_list_and_revoke(client: httpx.AsyncClient, db: Database) -> None:
    tenant = await make_tenant(db)
    first = (await invite(client, tenant)).json()
    second = (await invite(client, tenant, role="client_viewer")).json()
    owner = tenant.headers("agency_owner")
    listed = await client.get(
        f"{API}/invitations", params={"client_id": tenant.clients[0].id}, headers=owner
    )
    assert listed.status_code == 200
    items = {i["id"]: i for i in listed.json()["items"]}
    assert set(items) == {first["id"], second["id"]}
    assert all("token" not in i for i in items.values())

    revoked = await client.delete(f"{API}/invitations/{first['id']}", headers=owner)
    assert revoked.status_code == 204
    listed = await client.get(
        f"{API}/invitations", params={"agency_id": tenant.agency.id}, headers=owner
    )
    assert [i["id"] for i in listed.json()["items"]] == [second["id"]]
    gone = await accept(client, first["token"])
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "invitation_revoked"

    other = await make_tenant(db)
    foreign = await client.delete(
        f"{API}/invitations/{second['id']}", headers=other.headers("agency_owner")
    )
    assert foreign.status_code == 404
    assert (await accept(client, second["token"])).status_code == 200
    used = await client.delete(f"{API}/invitations/{second['id']}", headers=owner)
    assert used.status_code == 409


async def test_reinviting_replaces_the_earlier_invitation(
    client: httpx.AsyncClient, db: Database
) -> None:
    tenant = await make_tenant(db)
    email = new_email()
    first = (await invite(client, tenant, email=email)).json()
    second = (await invite(client, tenant, email=email)).json()
    assert (await accept(client, first["token"])).json()["error"]["code"] == "invitation_revoked"
    assert (await accept(client, second["token"])).status_code == 200
    member_again = await invite(client, tenant, email=email)
    assert member_again.status_code == 409
    assert member_again.json()["error"]["code"] == "already_member"


async def test_the_invitee_gets_an_email_in_the_agency_brand_with_the_link(
    client: httpx.AsyncClient,
    db: Database,
    use_smtp: SmtpServer,  # noqa: F811
) -> None:
    tenant = await make_tenant(db)
    response = await invite(client, tenant, role="client_viewer")
    assert response.status_code == 201, response.text
    created = response.json()
    await Worker(db).run_until_idle()
    [mail] = use_smtp.to(created["email"])
    text = mail.get_body(("plain",)).get_content()
    assert created["accept_url"] in text
    assert tenant.clients[0].name in mail["Subject"]
    assert tenant.agency.name in str(mail["From"])
    assert "Demandly" not in mail.as_string()
