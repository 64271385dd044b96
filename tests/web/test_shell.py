"""The dashboard's frame: sign-in in the host's brand, the home page, language, CSRF,
roles in the navigation, and 404 for what belongs to someone else."""

from __future__ import annotations

from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.tenancy.models import Agency, Role, Status
from tests.factories import PASSWORD, make_tenant, make_user, unique
from tests.web.support import browser, sign_in, verified_domain


async def test_signed_out_pages_redirect_to_the_login(app) -> None:  # type: ignore[no-untyped-def]
    async with browser(app) as client:
        response = await client.get("/app?x=1")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fapp%3Fx%3D1"


async def test_login_on_a_custom_domain_shows_the_agency_and_never_the_platform(
    app, db: Database
) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    domain = f"{unique('portal').lower()}.agency.test"
    await verified_domain(db, tenant.agency, domain)
    async with browser(app, host=domain) as client:
        page = await client.get("/login")
        assert page.status_code == 200
        assert tenant.agency.name in page.text
        assert "Demandly" not in page.text
        await sign_in(client, tenant.users["agency_owner"])
        home = await client.get("/app")
        assert "Demandly" not in home.text
        assert tenant.clients[0].name in home.text
        css = await client.get("/app/brand.css")
        assert "--brand-primary" in css.text


async def test_an_account_of_another_agency_cannot_sign_in_on_this_agency_domain(
    app, db: Database
) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = await make_tenant(db), await make_tenant(db)
    domain = f"{unique('portal').lower()}.agency.test"
    await verified_domain(db, ours.agency, domain)
    async with browser(app, host=domain) as client:
        response = await client.post(
            "/login",
            data={"email": theirs.users["agency_owner"].email, "password": PASSWORD},
        )
        assert response.status_code == 401
        assert "wrong" in response.text
        assert (await client.get("/app")).status_code == 303


async def test_wrong_password_reads_as_such_in_the_browser_language(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        response = await client.post(
            "/login",
            data={"email": tenant.users["agency_owner"].email, "password": "nope-nope-nope"},
            headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"},
        )
    assert response.status_code == 401
    assert "E-Mail-Adresse oder Passwort ist falsch." in response.text


async def test_a_suspended_agencys_people_are_told_so_at_sign_in(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with db.session(Scope.for_system()) as session:
        agency = await session.get(Agency, tenant.agency.id)
        assert agency is not None
        agency.status = Status.SUSPENDED
        await session.commit()
    async with browser(app) as client:
        response = await client.post(
            "/login",
            data={"email": tenant.users["agency_owner"].email, "password": PASSWORD},
            headers={"Accept-Language": "de-DE,de;q=0.9"},
        )
        assert response.status_code == 403
        assert "Das Konto dieser Agentur ist gesperrt." in response.text
        assert (await client.get("/app")).status_code == 303


async def test_a_form_without_the_csrf_token_is_refused(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        await sign_in(client, tenant.users["agency_owner"])
        refused = await client.post("/app/clients", data={"name": "Sneaky GmbH"})
        assert refused.status_code == 403
        home = await client.get("/app")
        assert "Sneaky GmbH" not in home.text


async def test_an_agency_admin_creates_a_client_from_the_home_page(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        token = await sign_in(client, tenant.users["agency_admin"])
        blank = await client.post("/app/clients", data={"name": "", "csrf_token": token})
        assert blank.status_code == 422
        created = await client.post(
            "/app/clients", data={"name": "Bäckerei Korn", "csrf_token": token}
        )
        assert created.status_code == 303
        home = await client.get("/app")
    assert "Bäckerei Korn" in home.text


async def test_language_setting_is_kept_for_the_user(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        token = await sign_in(client, tenant.users["agency_owner"])
        response = await client.post(
            "/app/language", data={"lang": "de", "next": "/app", "csrf_token": token}
        )
        assert response.status_code == 303
        client.cookies.delete("dmd_lang")
        home = await client.get("/app", headers={"Accept-Language": "en"})
    assert "Nutzung in diesem Monat" in home.text


async def test_a_client_viewer_sees_no_settings_and_cannot_open_them(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    viewer = tenant.users["client_viewer"]
    async with browser(app) as client:
        await sign_in(client, viewer)
        home = await client.get("/app")
        assert "/app/settings" not in home.text
        assert f"/app/clients/{tenant.clients[0].id}/settings" not in home.text
        assert tenant.clients[1].name not in home.text


async def test_someone_elses_client_is_not_found(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = await make_tenant(db), await make_tenant(db)
    async with browser(app) as client:
        await sign_in(client, ours.users["agency_owner"])
        response = await client.get(f"/app/clients/{theirs.clients[0].id}")
        assert response.status_code == 404
        assert theirs.clients[0].name not in response.text


async def test_sign_out_ends_the_session(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    user = await make_user(db, role=Role.AGENCY_ADMIN, agency_id=tenant.agency.id)
    async with browser(app) as client:
        token = await sign_in(client, user)
        out = await client.post("/logout", data={"csrf_token": token})
        assert out.status_code == 303
        assert (await client.get("/app")).status_code == 303
