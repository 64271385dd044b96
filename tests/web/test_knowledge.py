"""The knowledge screen: bases, sources added through each form and read by the ingest job,
the live progress fragment while a website is crawled, uploads (and their size limit), the
search tester; roles and other agencies' ids."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from demandly.app import create_app
from demandly.config import Settings, reset_settings_cache
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.knowledge.repository import KnowledgeRepository
from tests.factories import Tenant, make_tenant
from tests.knowledge.conftest import run_jobs
from tests.knowledge.site import LocalSite, make_pdf, serve_site
from tests.web.support import browser, sign_in

OPENING_HOURS = (
    "Die Praxis Sonnenschein ist montags bis freitags von 8 bis 18 Uhr geöffnet. "
    "Samstags bleibt die Praxis geschlossen."
)


@pytest.fixture
def site() -> Iterator[LocalSite]:
    with serve_site() as local:
        yield local


@pytest.fixture
def loopback_allowed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The worker may fetch from 127.0.0.1, for the local test site only."""
    monkeypatch.setenv("DEMANDLY_FETCH_ALLOWED_NETWORKS", "127.0.0.0/8")
    reset_settings_cache()
    yield
    monkeypatch.delenv("DEMANDLY_FETCH_ALLOWED_NETWORKS")
    reset_settings_cache()


def knowledge_url(tenant: Tenant, index: int = 0) -> str:
    return f"/app/clients/{tenant.clients[index].id}/knowledge"


async def new_base(web: httpx.AsyncClient, tenant: Tenant, token: str, language: str = "de") -> str:
    """Create a base through the page; returns its page's URL."""
    made = await web.post(
        knowledge_url(tenant), data={"name": "Praxiswissen", "language": language,
                                     "csrf_token": token}
    )  # fmt: skip
    assert made.status_code == 303, made.text
    return str(made.headers["location"])


def source_ids(html: str) -> list[str]:
    return re.findall(r'id="source-([^"]+)"', html)


async def test_a_base_is_created_and_deleted(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as web:
        token = await sign_in(web, tenant.users["client_admin"])
        blank = await web.post(
            knowledge_url(tenant), data={"name": "", "language": "fr", "csrf_token": token}
        )
        assert blank.status_code == 422
        assert 'id="e-name"' in blank.text and "This field is required." in blank.text
        assert "Choose one of the options." in blank.text  # the language
        url = await new_base(web, tenant, token)
        listed = await web.get(knowledge_url(tenant))
        assert "Praxiswissen" in listed.text and "data-confirm" in listed.text
        kb_id = url.rsplit("/", 1)[1]
        gone = await web.post(f"{url}/delete", data={"csrf_token": token})
        assert gone.status_code == 303
        assert (await web.get(url)).status_code == 404
        assert kb_id not in (await web.get(knowledge_url(tenant))).text


async def test_a_text_source_is_read_and_found_by_the_search_tester(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as web:
        token = await sign_in(web, tenant.users["client_member"])
        url = await new_base(web, tenant, token)
        missing = await web.post(
            f"{url}/sources", data={"kind": "text", "title": "", "text": "", "csrf_token": token}
        )
        assert missing.status_code == 422
        assert 'id="e-title"' in missing.text and 'id="e-text"' in missing.text
        added = await web.post(
            f"{url}/sources",
            data={"kind": "markdown", "title": "Öffnungszeiten", "text": OPENING_HOURS,
                  "csrf_token": token},
        )  # fmt: skip
        assert added.status_code == 303
        queued = await web.get(url)
        assert "Öffnungszeiten" in queued.text and "Queued" in queued.text
        assert 'hx-trigger="every 2s"' in queued.text
        await run_jobs(db)
        ready = await web.get(url)
        assert "Ready" in ready.text and 'hx-trigger="every 2s"' not in ready.text
        found = await web.get(url, params={"q": "Wann ist die Praxis geöffnet?"})
        assert found.status_code == 200
        assert "montags bis freitags" in found.text and "Score" in found.text
        qa = await web.post(
            f"{url}/sources",
            data={"kind": "qa", "title": "FAQ", "question": ["Gibt es Parkplätze?", ""],
                  "answer": ["Ja, direkt vor der Praxis.", ""], "csrf_token": token},
        )  # fmt: skip
        assert qa.status_code == 303
        empty_qa = await web.post(
            f"{url}/sources",
            data={"kind": "qa", "title": "FAQ", "question": "", "answer": "", "csrf_token": token},
        )
        assert empty_qa.status_code == 422 and "Add at least 1." in empty_qa.text


async def test_a_website_crawl_shows_its_progress_in_the_polled_fragment(
    app, db: Database, site: LocalSite, loopback_allowed: None
) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as web:
        token = await sign_in(web, tenant.users["agency_owner"])
        url = await new_base(web, tenant, token)
        too_many = await web.post(
            f"{url}/sources",
            data={"kind": "website", "url": site.url("/"), "max_pages": "0", "max_depth": "2",
                  "csrf_token": token},
        )  # fmt: skip
        assert too_many.status_code == 422 and 'id="site-pages"' in too_many.text
        assert "Enter 1 or more." in too_many.text
        crawl = await web.post(
            f"{url}/sources",
            data={"kind": "website", "url": site.url("/"), "max_pages": "6", "max_depth": "2",
                  "csrf_token": token},
        )  # fmt: skip
        assert crawl.status_code == 303
        page = await web.get(url)
        [source_id] = source_ids(page.text)
        fragment_url = f"{url}/sources"
        assert f'hx-get="{fragment_url}"' in page.text
        assert ">Refresh</a>" in page.text  # without JavaScript

        # Half way: what the job writes while it reads shows in the next poll.
        async with db.session(Scope.for_agency(tenant.agency.id)) as session:
            await KnowledgeRepository(session).update_source(
                source_id, status="running", documents_done=3, chunks_indexed=7
            )
            await session.commit()
        running = await web.get(fragment_url, headers={"HX-Request": "true"})
        assert running.status_code == 200
        assert "<html" not in running.text and 'hx-trigger="every 2s"' in running.text
        assert "Reading" in running.text
        assert re.search(r'class="num">3</td>\s*<td class="num">7</td>', running.text)
        refused = await web.post(f"{url}/sources/{source_id}/refresh", data={"csrf_token": token})
        assert refused.status_code == 409 and "being read already" in refused.text

        async with db.session(Scope.for_agency(tenant.agency.id)) as session:
            await KnowledgeRepository(session).update_source(source_id, status="queued")
            await session.commit()
        await run_jobs(db)
        done = await web.get(fragment_url, headers={"HX-Request": "true"})
        assert "Ready" in done.text and "hx-trigger" not in done.text
        pages = int(re.search(r'class="num">(\d+)', done.text).group(1))  # type: ignore[union-attr]
        assert 2 <= pages <= 6
        found = await web.get(url, params={"q": "Was kostet die Zahnreinigung?"})
        assert site.base_url in found.text
        again = await web.post(f"{url}/sources/{source_id}/refresh", data={"csrf_token": token})
        assert again.status_code == 303


async def test_files_are_uploaded_read_and_deleted(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as web:
        token = await sign_in(web, tenant.users["agency_admin"])
        url = await new_base(web, tenant, token)
        text = await web.post(
            f"{url}/upload",
            data={"title": "Hausordnung", "csrf_token": token},
            files={"file": ("hausordnung.txt", OPENING_HOURS.encode(), "text/plain")},
        )
        assert text.status_code == 303, text.text
        pdf = await web.post(
            f"{url}/upload",
            data={"csrf_token": token},
            files={"file": ("preise.pdf", make_pdf(), "application/pdf")},
        )
        assert pdf.status_code == 303
        nothing = await web.post(f"{url}/upload", data={"csrf_token": token})
        assert nothing.status_code == 422 and "Choose a file." in nothing.text
        await run_jobs(db)
        page = await web.get(url)
        assert page.text.count("Ready") >= 2 and "preise.pdf" in page.text
        prices = await web.get(url, params={"q": "Zahnreinigung Preis"})
        assert "preise.pdf" in prices.text or "Preisliste" in prices.text
        for source_id in source_ids(page.text):
            deleted = await web.post(
                f"{url}/sources/{source_id}/delete", data={"csrf_token": token}
            )
            assert deleted.status_code == 303
        page = await web.get(url, params={"q": "Wann ist die Praxis geöffnet?"})
        assert "No sources yet." in page.text and "Nothing found." in page.text


async def test_a_file_over_the_limit_gets_a_message_on_the_form(
    settings: Settings, db: Database
) -> None:
    small = create_app(settings.model_copy(update={"upload_max_bytes": 10_000}), database=db)
    tenant = await make_tenant(db)
    async with browser(small) as web:
        token = await sign_in(web, tenant.users["agency_owner"])
        url = await new_base(web, tenant, token)
        too_big = await web.post(
            f"{url}/upload",
            data={"title": "Groß", "csrf_token": token},
            files={"file": ("gross.txt", b"a" * 20_000, "text/plain")},
        )
        assert too_big.status_code == 422
        assert "The file is larger than 0.01 MB." in too_big.text
        assert 'value="Groß"' in too_big.text
        assert "No sources yet." in too_big.text


async def test_a_viewer_searches_but_cannot_change_anything(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as web:
        owner_token = await sign_in(web, tenant.users["agency_owner"])
        url = await new_base(web, tenant, owner_token)
        await web.post(
            f"{url}/sources",
            data={"kind": "text", "title": "Zeiten", "text": OPENING_HOURS,
                  "csrf_token": owner_token},
        )  # fmt: skip
    await run_jobs(db)
    async with browser(app) as web:
        token = await sign_in(web, tenant.users["client_viewer"])
        page = await web.get(url, params={"q": "geöffnet"})
        assert page.status_code == 200 and "montags" in page.text
        assert "Add a source" not in page.text and "Read again" not in page.text
        [source_id] = source_ids(page.text)
        listing = await web.get(knowledge_url(tenant))
        assert "New knowledge base" not in listing.text
        for path, data in (
            (knowledge_url(tenant), {"name": "X", "language": "de"}),
            (f"{url}/sources", {"kind": "text", "title": "X", "text": "Y"}),
            (f"{url}/sources/{source_id}/delete", {}),
            (f"{url}/sources/{source_id}/refresh", {}),
            (f"{url}/delete", {}),
        ):
            refused = await web.post(path, data={**data, "csrf_token": token})
            assert refused.status_code == 403, path
        upload = await web.post(
            f"{url}/upload",
            data={"csrf_token": token},
            files={"file": ("a.txt", b"hallo", "text/plain")},
        )
        assert upload.status_code == 403


async def test_another_agencys_base_and_source_are_not_found(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = await make_tenant(db), await make_tenant(db)
    async with browser(app) as web:
        token = await sign_in(web, theirs.users["agency_owner"])
        their_url = await new_base(web, theirs, token)
        await web.post(
            f"{their_url}/sources",
            data={"kind": "text", "title": "Geheim", "text": OPENING_HOURS, "csrf_token": token},
        )
        [their_source] = source_ids((await web.get(their_url)).text)
    kb_id = their_url.rsplit("/", 1)[1]
    async with browser(app) as web:
        token = await sign_in(web, ours.users["agency_owner"])
        own_url = await new_base(web, ours, token)
        for path in (
            their_url,
            f"{knowledge_url(ours)}/{kb_id}",
            f"{knowledge_url(ours)}/{kb_id}/sources",
            knowledge_url(theirs),
        ):
            response = await web.get(path)
            assert response.status_code == 404, path
            assert "Geheim" not in response.text
        for path in (
            f"{knowledge_url(ours)}/{kb_id}/delete",
            f"{own_url}/sources/{their_source}/delete",
            f"{own_url}/sources/{their_source}/refresh",
        ):
            refused = await web.post(path, data={"csrf_token": token})
            assert refused.status_code == 404, path
        # The second client of our own agency does not hold our first client's base either.
        own_kb = own_url.rsplit("/", 1)[1]
        assert (await web.get(f"{knowledge_url(ours, 1)}/{own_kb}")).status_code == 404


async def test_the_knowledge_screen_speaks_german(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as web:
        token = await sign_in(web, tenant.users["agency_owner"])
        await web.post("/app/language", data={"lang": "de", "next": "/app", "csrf_token": token})
        listing = await web.get(knowledge_url(tenant))
        assert "Wissensdatenbanken" in listing.text
        url = await new_base(web, tenant, token)
        page = await web.get(url)
        assert "Quelle hinzufügen" in page.text and "Website durchsuchen" in page.text
        assert "Suche testen" in page.text
