"""Platform bootstrap for the CLI: the first platform admin and the demo agency."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from demandly.app import configure_runtime, create_database
from demandly.config import Settings
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.kit.errors import DemandlyError
from demandly.tenancy import schemas, service
from demandly.tenancy.models import Agency, Client, Role, User
from demandly.tenancy.repository import TenancyRepository

DEMO_SLUG = "nordlicht"


@dataclass(frozen=True)
class DemoLogin:
    role: str
    email: str
    password: str


# Demo passwords are printed on purpose: the demo is for trying the product locally.
DEMO_LOGINS = (
    DemoLogin("platform_admin", "admin@demandly.example", "demo-platform-2026-lighthouse"),
    DemoLogin("agency_owner", "owner@nordlicht.example", "demo-nordlicht-2026-harbour"),
    DemoLogin("client_admin", "praxis@zahnarzt-sommer.example", "demo-sommer-2026-smile"),
)

DEMO_BRANDING = schemas.Branding(
    display_name="Nordlicht Digital",
    primary_color="#0f4c81",
    accent_color="#f2a541",
    support_email="support@nordlicht.example",
    sender_name="Nordlicht Digital",
    privacy_policy_url="https://nordlicht.example/datenschutz",
    imprint_url="https://nordlicht.example/impressum",
)


async def create_platform_admin(settings: Settings, email: str, password: str, name: str) -> str:
    """Returns the new admin's id; ValueError with a readable reason when refused."""
    configure_runtime(settings)
    db = create_database(settings)
    try:
        async with db.session(Scope.for_system()) as session:
            try:
                user = await service.create_user(
                    session, email, password, name, is_platform_admin=True
                )
            except DemandlyError as exc:
                raise ValueError(exc.message) from exc
            await session.commit()
            return user.id
    finally:
        await db.dispose()


async def seed_demo(settings: Settings) -> tuple[DemoLogin, ...]:
    """The demo agency "Nordlicht Digital" with two clients and a login per role. Idempotent:
    a second run finds what the first made."""
    configure_runtime(settings)
    db = create_database(settings)
    try:
        await _seed(db)
    finally:
        await db.dispose()
    return DEMO_LOGINS


async def _seed(db: Database) -> None:
    async with db.session(Scope.for_system()) as session:
        repo = TenancyRepository(session)
        agency = await repo.agency_by_slug(DEMO_SLUG)
        if agency is None:
            agency = (
                await service.create_agency(
                    session,
                    schemas.AgencyCreate(
                        name="Nordlicht Digital", slug=DEMO_SLUG, branding=DEMO_BRANDING
                    ),
                )
            ).agency
            practice = await _client(session, agency, "Zahnarztpraxis Dr. Sommer")
            await _client(session, agency, "Elektro Krause GmbH")
        else:
            practice = None
        users = {login.role: await _user(session, login) for login in DEMO_LOGINS}
        if practice is not None:
            await service.add_membership(
                session, users["agency_owner"].id, Role.AGENCY_OWNER, agency.id
            )
            await service.add_membership(
                session, users["client_admin"].id, Role.CLIENT_ADMIN, agency.id, practice.id
            )
        await session.commit()


async def _client(session: AsyncSession, agency: Agency, name: str) -> Client:
    return await service.create_client(
        session,
        schemas.ClientCreate(
            agency_id=agency.id,
            name=name,
            privacy_policy_url="https://nordlicht.example/datenschutz",
        ),
    )


async def _user(session: AsyncSession, login: DemoLogin) -> User:
    existing = await TenancyRepository(session).user_by_email(login.email)
    if existing is not None:
        return existing
    return await service.create_user(
        session,
        login.email,
        login.password,
        login.role.replace("_", " ").title(),
        is_platform_admin=login.role == "platform_admin",
    )
