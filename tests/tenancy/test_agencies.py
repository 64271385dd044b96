from __future__ import annotations

import httpx

from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.tenancy import service
from demandly.tenancy.models import Role
from demandly.tenancy.schemas import AgencyCreate, ClientCreate
from tests.factories import World, unique
from tests.tenancy.conftest import login_headers

API = "/api/v1"


def error_field(response: httpx.Response) -> str:
    return response.json()["error"]["details"][0]["field"]


async def test_platform_admin_creates_agency_with_owner_invitation(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    name = unique("Müller & Söhne")
    owner_email = f"{unique('owner')}@Example.com"
    response = await client.post(
        f"{API}/agencies",
        json={
            "name": name,
            "branding": {"primary_color": "#AABBCC", "display_name": "Müller"},
            "owner_email": owner_email,
        },
        headers=admin,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["slug"] == "mueller-soehne-" + name.rsplit("-", 1)[1]
    assert body["branding"]["primary_color"] == "#aabbcc"
    assert body["status"] == "active"
    invitation = body["owner_invitation"]
    assert invitation["token"] and invitation["accept_url"].endswith(invitation["token"])

    # The invitation is real: it makes the owner of the new agency.
    accepted = await client.post(
        f"{API}/invitations/{invitation['token']}/accept",
        json={"name": "Olga Owner", "password": "a long and unusual passphrase 91"},
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["role"] == "agency_owner"
    assert accepted.json()["agency_id"] == body["id"]

    fetched = await client.get(f"{API}/agencies/{body['id']}", headers=admin)
    assert fetched.status_code == 200
    assert "owner_invitation" not in fetched.json()


async def test_only_platform_admins_create_agencies(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.post(
        f"{API}/agencies", json={"name": "Sneaky"}, headers=world.a.headers("agency_owner")
    )
    assert response.status_code == 403


async def test_slug_conflict_is_409(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    slug = unique("taken").lower()
    first = await client.post(f"{API}/agencies", json={"name": "One", "slug": slug}, headers=admin)
    assert first.status_code == 201, first.text
    again = await client.post(f"{API}/agencies", json={"name": "Two", "slug": slug}, headers=admin)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "slug_taken"
    derived = await client.post(f"{API}/agencies", json={"name": slug}, headers=admin)
    assert derived.status_code == 409
    assert derived.json()["error"]["code"] == "slug_taken"


async def test_bad_slug_is_422(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    response = await client.post(
        f"{API}/agencies", json={"name": "X", "slug": "-no spaces-"}, headers=admin
    )
    assert response.status_code == 422
    assert error_field(response) == "slug"


async def test_list_shows_what_the_caller_can_see(
    client: httpx.AsyncClient, world: World, admin: dict[str, str]
) -> None:
    own = await client.get(f"{API}/agencies", headers=world.a.headers("client_viewer"))
    assert own.status_code == 200
    assert [a["id"] for a in own.json()["items"]] == [world.a.agency.id]

    seen: set[str] = set()
    cursor = None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"{API}/agencies", params=params, headers=admin)).json()
        seen |= {a["id"] for a in page["items"]}
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert {world.a.agency.id, world.b.agency.id} <= seen


async def test_other_agency_is_404(client: httpx.AsyncClient, world: World) -> None:
    headers = world.a.headers("agency_owner")
    assert (
        await client.get(f"{API}/agencies/{world.b.agency.id}", headers=headers)
    ).status_code == 404
    patched = await client.patch(
        f"{API}/agencies/{world.b.agency.id}", json={"name": "Mine now"}, headers=headers
    )
    assert patched.status_code == 404


async def test_patch_branding_merges_fields(client: httpx.AsyncClient, world: World) -> None:
    url = f"{API}/agencies/{world.a.agency.id}"
    headers = world.a.headers("agency_admin")
    first = await client.patch(
        url,
        json={
            "branding": {
                "accent_color": "#112233",
                "imprint_url": "https://agency.example/imprint",
                "sender_name": "Agency Team",
            }
        },
        headers=headers,
    )
    assert first.status_code == 200, first.text
    second = await client.patch(
        url, json={"branding": {"accent_color": "#445566", "sender_name": None}}, headers=headers
    )
    assert second.status_code == 200, second.text
    branding = second.json()["branding"]
    assert branding["accent_color"] == "#445566"
    assert branding["imprint_url"] == "https://agency.example/imprint"
    assert branding["sender_name"] is None
    assert (await client.get(url, headers=headers)).json()["branding"] == branding


async def test_bad_branding_names_the_field(client: httpx.AsyncClient, world: World) -> None:
    url = f"{API}/agencies/{world.a.agency.id}"
    headers = world.a.headers("agency_owner")
    colour = await client.patch(url, json={"branding": {"primary_color": "red"}}, headers=headers)
    assert colour.status_code == 422
    assert error_field(colour) == "branding.primary_color"
    scheme = await client.patch(
        url, json={"branding": {"privacy_policy_url": "javascript:alert(1)"}}, headers=headers
    )
    assert scheme.status_code == 422
    assert error_field(scheme) == "branding.privacy_policy_url"
    header_injection = await client.patch(
        url, json={"branding": {"sender_name": "Evil\r\nBcc: x@example.com"}}, headers=headers
    )
    assert header_injection.status_code == 422
    assert error_field(header_injection) == "branding.sender_name"
    null_name = await client.patch(url, json={"name": None}, headers=headers)
    assert null_name.status_code == 422
    assert error_field(null_name) == "name"


async def test_lower_roles_cannot_patch(client: httpx.AsyncClient, world: World) -> None:
    url = f"{API}/agencies/{world.a.agency.id}"
    viewer = await client.patch(
        url, json={"name": "Hijacked"}, headers=world.a.headers("client_viewer")
    )
    assert viewer.status_code == 403
    status = await client.patch(
        url, json={"status": "suspended"}, headers=world.a.headers("agency_owner")
    )
    assert status.status_code == 403


async def test_platform_admin_sets_status(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    created = await client.post(f"{API}/agencies", json={"name": unique("Status")}, headers=admin)
    url = f"{API}/agencies/{created.json()['id']}"
    response = await client.patch(url, json={"status": "suspended"}, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "suspended"


async def test_service_functions_seed_a_working_agency(
    client: httpx.AsyncClient, db: Database
) -> None:
    """What the CLI and the demo do: agency, client, user and membership, no API involved."""
    email = f"{unique('seed')}@example.com"
    async with db.session(Scope.for_system()) as session:
        created = await service.create_agency(
            session, AgencyCreate(name=unique("Seeded"), locale="en", timezone="Europe/London")
        )
        agency = created.agency
        shop = await service.create_client(
            session, ClientCreate(agency_id=agency.id, name="Seeded shop")
        )
        user = await service.create_user(session, email, "a long and unusual passphrase 91", "Sam")
        await service.add_membership(session, user.id, Role.AGENCY_OWNER, agency.id)
        await session.commit()
    assert (shop.locale, shop.timezone) == ("en", "Europe/London")

    signed_in = await login_headers(client, user, "a long and unusual passphrase 91")
    listed = await client.get(f"{API}/clients", headers=signed_in)
    assert [c["id"] for c in listed.json()["items"]] == [shop.id]
