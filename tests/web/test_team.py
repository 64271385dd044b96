"""The team page: members and invitations of the agency (or a client admin's client), role
changes and removal with the services' rules, and accepting an invitation from its link."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from demandly.kit.context import Scope
from demandly.kit.crypto import hash_token
from demandly.kit.db import Database
from demandly.kit.ids import random_token
from demandly.kit.time import utcnow
from demandly.tenancy.models import Invitation, Membership, Role
from tests.factories import PASSWORD, Tenant, make_tenant, unique
from tests.web.support import browser, csrf_of, sign_in, verified_domain

NEW_PASSWORD = "a sturdy new passphrase 77"


async def _membership(db: Database, user_id: str) -> Membership:
    async with db.session(Scope.for_system()) as session:
        row = await session.execute(select(Membership).where(Membership.user_id == user_id))
        return row.scalars().first()  # type: ignore[return-value]


async def _invitation(
    db: Database,
    tenant: Tenant,
    *,
    email: str | None = None,
    role: Role = Role.CLIENT_MEMBER,
    client: bool = True,
    expires_in: timedelta = timedelta(days=7),
    revoked: bool = False,
) -> tuple[str, str]:
    """An invitation straight in the database: (token, e-mail)."""
    token = random_token()
    email = email or f"{unique('invitee')}@example.com".lower()
    async with db.session(Scope.for_system()) as session:
        session.add(
            Invitation(
                email=email,
                role=role.value,
                agency_id=tenant.agency.id,
                client_id=tenant.clients[0].id if client else None,
                token_hash=hash_token(token),
                expires_at=utcnow() + expires_in,
                revoked_at=utcnow() if revoked else None,
                assigned_client_ids=[],
            )
        )
        await session.commit()
    return token, email


def _link(html: str) -> str:
    found = re.search(r'id="invitation-link" type="text" value="[^"]*(/invitations/[^"]+)"', html)
    assert found, "no invitation link on the page"
    return found.group(1)


# --- the team page -------------------------------------------------------------------------


async def test_the_owner_sees_every_member_with_role_and_clients(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        await sign_in(client, tenant.users["agency_owner"])
        page = await client.get("/app/team")
    assert page.status_code == 200
    for user in tenant.users.values():
        assert user.email in page.text
    assert "Agency member" in page.text and "Client viewer" in page.text
    assert 'aria-current="page">Team' in page.text
    assert "Invite someone" in page.text
    assert "Demandly" not in page.text


async def test_a_client_admin_sees_only_their_client_and_a_viewer_is_refused(
    app, db: Database
) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        await sign_in(client, tenant.users["client_admin"])
        page = await client.get("/app/team")
        assert page.status_code == 200
        assert tenant.users["client_viewer"].email in page.text
        assert tenant.users["agency_owner"].email not in page.text
        # Client roles only: a client admin cannot invite to the agency.
        assert 'value="agency_admin"' not in page.text
        assert 'value="client_viewer"' in page.text
    async with browser(app) as client:
        await sign_in(client, tenant.users["client_viewer"])
        assert (await client.get("/app/team")).status_code == 403


async def test_inviting_shows_the_link_once_and_the_link_creates_an_account(
    app, db: Database
) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    email = f"{unique('new')}@example.com".lower()
    async with browser(app) as admin:
        token = await sign_in(admin, tenant.users["agency_admin"])
        created = await admin.post(
            "/app/team/invitations",
            data={
                "email": email,
                "role": "client_member",
                "place": tenant.clients[1].id,
                "csrf_token": token,
            },
        )
        assert created.status_code == 201, created.text
        link = _link(created.text)
        listed = await admin.get("/app/team")
        assert email in listed.text and link not in listed.text

    async with browser(app) as invitee:
        page = await invitee.get(link)
        assert page.status_code == 200
        assert tenant.agency.name in page.text and "Client member" in page.text
        assert tenant.clients[1].name in page.text
        weak = await invitee.post(
            link, data={"name": "Nina Neu", "password": "short", "password_confirm": "short"}
        )
        assert weak.status_code == 422
        assert "at least 12 characters" in weak.text
        assert 'value="Nina Neu"' in weak.text
        joined = await invitee.post(
            link,
            data={"name": "Nina Neu", "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD},
        )
        assert joined.status_code == 303 and joined.headers["location"] == "/app"
        home = await invitee.get("/app")
        assert home.status_code == 200 and tenant.clients[1].name in home.text
        again = await invitee.get(link)
        assert again.status_code == 410 and "already used" in again.text


async def test_invalid_invitation_input_is_shown_next_to_the_fields(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as admin:
        token = await sign_in(admin, tenant.users["agency_admin"])
        bad_email = await admin.post(
            "/app/team/invitations",
            data={"email": "not-an-address", "role": "agency_member", "place": "agency",
                  "csrf_token": token},
        )  # fmt: skip
        assert bad_email.status_code == 422
        assert 'id="e-email"' in bad_email.text and 'value="not-an-address"' in bad_email.text
        misfit = await admin.post(
            "/app/team/invitations",
            data={"email": "fit@example.com", "role": "agency_admin",
                  "place": tenant.clients[0].id, "csrf_token": token},
        )  # fmt: skip
        assert misfit.status_code == 422
        assert "A client takes the roles" in misfit.text
        above = await admin.post(
            "/app/team/invitations",
            data={"email": "boss@example.com", "role": "agency_owner", "place": "agency",
                  "csrf_token": token},
        )  # fmt: skip
        assert above.status_code == 403


async def test_an_agency_member_is_invited_with_assigned_clients(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    email = f"{unique('am')}@example.com".lower()
    async with browser(app) as owner:
        token = await sign_in(owner, tenant.users["agency_owner"])
        created = await owner.post(
            "/app/team/invitations",
            data={"email": email, "role": "agency_member", "place": "agency",
                  "assigned_client_ids": [tenant.clients[1].id], "csrf_token": token},
        )  # fmt: skip
        assert created.status_code == 201, created.text
    async with db.session(Scope.for_system()) as session:
        row = await session.execute(select(Invitation).where(Invitation.email == email))
        assert row.scalar_one().assigned_client_ids == [tenant.clients[1].id]


async def test_withdrawing_an_invitation_and_foreign_ids_are_not_found(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant, other = await make_tenant(db), await make_tenant(db)
    token, email = await _invitation(db, tenant)
    _, foreign_email = await _invitation(db, other)
    async with db.session(Scope.for_system()) as session:
        rows = await session.execute(
            select(Invitation.id, Invitation.email).where(
                Invitation.email.in_([email, foreign_email])
            )
        )
        ids = {mail: iid for iid, mail in rows.all()}
    async with browser(app) as owner:
        csrf = await sign_in(owner, tenant.users["agency_owner"])
        foreign = await owner.post(
            f"/app/team/invitations/{ids[foreign_email]}/revoke", data={"csrf_token": csrf}
        )
        assert foreign.status_code == 404
        assert foreign_email not in foreign.text
        other_member = await _membership(db, other.users["agency_admin"].id)
        assert (await owner.get(f"/app/team/members/{other_member.id}")).status_code == 404
        done = await owner.post(
            f"/app/team/invitations/{ids[email]}/revoke", data={"csrf_token": csrf}
        )
        assert done.status_code == 303
        assert email not in (await owner.get("/app/team")).text
    async with browser(app) as invitee:
        gone = await invitee.get(f"/invitations/{token}")
        assert gone.status_code == 410 and "withdrawn" in gone.text


async def test_changing_a_role_and_the_last_owner_rule(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    member = await _membership(db, tenant.users["agency_member"].id)
    owner_row = await _membership(db, tenant.users["agency_owner"].id)
    async with browser(app) as owner:
        csrf = await sign_in(owner, tenant.users["agency_owner"])
        form = await owner.get(f"/app/team/members/{member.id}")
        assert form.status_code == 200 and tenant.clients[1].name in form.text
        changed = await owner.post(
            f"/app/team/members/{member.id}",
            data={"role": "agency_member", "csrf_token": csrf,
                  "assigned_client_ids": [tenant.clients[0].id, tenant.clients[1].id]},
        )  # fmt: skip
        assert changed.status_code == 303
        assert sorted((await _membership(db, member.user_id)).assigned_client_ids) == sorted(
            c.id for c in tenant.clients
        )
        promoted = await owner.post(
            f"/app/team/members/{member.id}", data={"role": "agency_admin", "csrf_token": csrf}
        )
        assert promoted.status_code == 303
        assert (await _membership(db, member.user_id)).role == "agency_admin"
        last = await owner.post(
            f"/app/team/members/{owner_row.id}", data={"role": "agency_admin", "csrf_token": csrf}
        )
        assert last.status_code == 422 and "at least one agency_owner" in last.text
        remove_last = await owner.post(
            f"/app/team/members/{owner_row.id}/remove", data={"csrf_token": csrf}
        )
        assert remove_last.status_code == 409
        assert (await _membership(db, owner_row.user_id)).role == "agency_owner"


async def test_an_admin_cannot_touch_an_owner_and_a_member_cannot_manage(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    owner_row = await _membership(db, tenant.users["agency_owner"].id)
    viewer_row = await _membership(db, tenant.users["client_viewer"].id)
    async with browser(app) as admin:
        csrf = await sign_in(admin, tenant.users["agency_admin"])
        refused = await admin.post(
            f"/app/team/members/{owner_row.id}/remove", data={"csrf_token": csrf}
        )
        assert refused.status_code == 403
    async with browser(app) as member:
        csrf = await sign_in(member, tenant.users["agency_member"])
        page = await member.get("/app/team")
        assert page.status_code == 200 and "Invite someone" not in page.text
        refused = await member.post(
            f"/app/team/members/{viewer_row.id}/remove", data={"csrf_token": csrf}
        )
        assert refused.status_code == 403
    async with browser(app) as client_admin:
        csrf = await sign_in(client_admin, tenant.users["client_admin"])
        removed = await client_admin.post(
            f"/app/team/members/{viewer_row.id}/remove", data={"csrf_token": csrf}
        )
        assert removed.status_code == 303
    async with db.session(Scope.for_system()) as session:
        assert await session.get(Membership, viewer_row.id) is None


async def test_the_team_page_in_german(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        csrf = await sign_in(client, tenant.users["agency_owner"])
        await client.post("/app/language", data={"lang": "de", "csrf_token": csrf})
        page = await client.get("/app/team")
    assert "Mitglieder" in page.text and "Jemanden einladen" in page.text
    assert "Agentur-Inhaber" in page.text


# --- accepting invitations -----------------------------------------------------------------


async def test_an_existing_user_signs_in_on_the_invitation_page(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant, other = await make_tenant(db), await make_tenant(db)
    existing = other.users["client_member"]
    token, _ = await _invitation(db, tenant, email=existing.email, role=Role.CLIENT_ADMIN)
    async with browser(app) as client:
        page = await client.get(f"/invitations/{token}")
        assert "Sign in and accept" in page.text and 'name="name"' not in page.text
        wrong = await client.post(f"/invitations/{token}", data={"password": "wrong password 1"})
        assert wrong.status_code == 401 and "The password is wrong." in wrong.text
        joined = await client.post(f"/invitations/{token}", data={"password": PASSWORD})
        assert joined.status_code == 303
        team = await client.get("/app/clients/" + tenant.clients[0].id)
        assert team.status_code == 303  # the client is now within reach
    assert (await _membership_at(db, existing.id, tenant.clients[0].id)).role == "client_admin"


async def _membership_at(db: Database, user_id: str, client_id: str) -> Membership:
    async with db.session(Scope.for_system()) as session:
        row = await session.execute(
            select(Membership).where(
                Membership.user_id == user_id, Membership.client_id == client_id
            )
        )
        return row.scalar_one()


async def test_signed_in_as_the_invitee_accepts_with_one_click(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant, other = await make_tenant(db), await make_tenant(db)
    existing = other.users["agency_admin"]
    token, _ = await _invitation(db, tenant, email=existing.email)
    async with browser(app) as client:
        csrf = await sign_in(client, existing)
        page = await client.get(f"/invitations/{token}")
        assert "Accept invitation" in page.text
        assert csrf_of(page.text) == csrf
        joined = await client.post(f"/invitations/{token}", data={"csrf_token": csrf})
        assert joined.status_code == 303 and joined.headers["location"] == "/app"
    assert (await _membership_at(db, existing.id, tenant.clients[0].id)).role == "client_member"


async def test_signed_in_as_someone_else_is_told_to_sign_out(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    token, email = await _invitation(db, tenant)
    async with browser(app) as client:
        await sign_in(client, tenant.users["agency_owner"])
        page = await client.get(f"/invitations/{token}")
    assert "Sign out and open the link again" in page.text and email in page.text


async def test_expired_unknown_and_other_agency_domain_links(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant, other = await make_tenant(db), await make_tenant(db)
    expired, _ = await _invitation(db, tenant, expires_in=timedelta(seconds=-1))
    theirs, _ = await _invitation(db, other)
    domain = f"{unique('team').lower()}.agency.test"
    await verified_domain(db, tenant.agency, domain)
    async with browser(app) as client:
        page = await client.get(f"/invitations/{expired}")
        assert page.status_code == 410 and "expired" in page.text
        unknown = await client.get(f"/invitations/{random_token()}")
        assert unknown.status_code == 404 and "not valid" in unknown.text
        german = await client.get(
            f"/invitations/{expired}", headers={"Accept-Language": "de-DE,de;q=0.9"}
        )
        assert "abgelaufen" in german.text
    async with browser(app, host=domain) as client:
        mine = await client.get(f"/invitations/{(await _invitation(db, tenant))[0]}")
        assert mine.status_code == 200 and "Demandly" not in mine.text
        foreign = await client.get(f"/invitations/{theirs}")
        assert foreign.status_code == 404 and other.agency.name not in foreign.text
