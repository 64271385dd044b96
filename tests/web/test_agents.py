"""The agent builder in the dashboard: create an agent, edit each section of its draft (one
form each: a mistake in one never loses another), publish, embed, try it in the test chat on
the real engine and on the phone simulator; viewers only look, strangers find nothing."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
from sqlalchemy import select

from demandly.agents import schemas as s
from demandly.agents import service
from demandly.agents.models import Agent
from demandly.conversations.models import Conversation
from demandly.kit.context import Scope
from demandly.kit.db import Database
from demandly.knowledge.models import KnowledgeBase
from demandly.tenancy.models import User
from tests.factories import Tenant, make_tenant
from tests.web.support import browser, csrf_of, sign_in


def _base(tenant: Tenant) -> str:
    return f"/app/clients/{tenant.clients[0].id}/agents"


async def _create(
    client: httpx.AsyncClient, tenant: Tenant, token: str, kind: str = "chat", name: str = "Empfang"
) -> str:
    """Create an agent through the list's form; the builder's URL."""
    response = await client.post(
        _base(tenant), data={"name": name, "kind": kind, "language": "de", "csrf_token": token}
    )
    assert response.status_code == 303, response.text
    return response.headers["location"]


async def _save(
    client: httpx.AsyncClient, url: str, section: str, token: str, **data: Any
) -> httpx.Response:
    return await client.post(f"{url}/sections/{section}", data={"csrf_token": token, **data})


async def _agent_row(db: Database, url: str) -> Agent:
    agent_id = url.rsplit("/", 1)[-1]
    async with db.session(Scope.for_system()) as session:
        agent = await session.get(Agent, agent_id)
    assert agent is not None
    return agent


def _field(page: str, name: str) -> str:
    """The value of the input named ``name`` on the page."""
    found = re.search(rf'name="{re.escape(name)}" type="[a-z]+" value="([^"]*)"', page)
    assert found, f"no input {name}"
    return html.unescape(found.group(1))


def _textarea(page: str, element_id: str) -> str:
    found = re.search(rf'<textarea id="{re.escape(element_id)}"[^>]*>([^<]*)</textarea>', page)
    assert found, f"no textarea {element_id}"
    return html.unescape(found.group(1))


async def _signed_in(client: httpx.AsyncClient, user: User) -> str:
    return await sign_in(client, user)


# --- list and create -----------------------------------------------------------------------


async def test_a_member_creates_an_agent_and_sees_it_listed_as_draft(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        token = await _signed_in(client, tenant.users["client_member"])
        blank = await client.post(
            _base(tenant), data={"name": "", "kind": "chat", "language": "de", "csrf_token": token}
        )
        assert blank.status_code == 422
        assert 'id="new-name-e"' in blank.text
        url = await _create(client, tenant, token, name="Praxis-Empfang")
        builder = await client.get(url)
        assert builder.status_code == 200
        assert "Praxis-Empfang" in builder.text
        listing = await client.get(_base(tenant))
    assert "Praxis-Empfang" in listing.text
    assert "Draft only" in listing.text
    assert "Demandly" not in listing.text


async def test_the_list_is_in_german_for_a_german_user(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        token = await _signed_in(client, tenant.users["client_admin"])
        await client.post("/app/language", data={"lang": "de", "next": "/app", "csrf_token": token})
        await _create(client, tenant, token)
        listing = await client.get(_base(tenant))
        builder = await client.get(await _first_agent_url(client, tenant))
    assert "Nur Entwurf" in listing.text and "Neuer Agent" in listing.text
    assert "Qualifizierungsfelder" in builder.text and "Veröffentlichen" in builder.text


async def _first_agent_url(client: httpx.AsyncClient, tenant: Tenant) -> str:
    listing = await client.get(_base(tenant))
    found = re.search(rf'href="({re.escape(_base(tenant))}/agt_[^"]+)"', listing.text)
    assert found
    return found.group(1)


# --- the builder's sections ----------------------------------------------------------------


async def test_basics_and_llm_save_and_show_the_saved_values(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        token = await _signed_in(client, tenant.users["client_member"])
        url = await _create(client, tenant, token)
        saved = await _save(
            client,
            url,
            "basics",
            token,
            name="Empfang Nord",
            kind="chat",
            language="en",
            persona_name="Lena",
            greeting="Hi, Lena here.",
            instructions="Be brief.",
            price_info="",
        )
        assert saved.status_code == 303
        assert saved.headers["location"].endswith("#basics")
        llm = await _save(
            client,
            url,
            "llm",
            token,
            connection_id="",
            model="gpt-4o-mini",
            temperature="0,7",
            max_tokens="300",
        )
        assert llm.status_code == 303
        page = (await client.get(url)).text
    assert _field(page, "name") == "Empfang Nord"
    assert _field(page, "persona_name") == "Lena"
    assert _textarea(page, "basics-greeting") == "Hi, Lena here."
    assert _field(page, "model") == "gpt-4o-mini"
    assert _field(page, "temperature") == "0.7"
    agent = await _agent_row(db, url)
    assert agent.definition["llm"]["max_tokens"] == 300
    assert agent.definition["language"] == "en"


async def test_a_bad_value_gives_422_next_to_the_field_and_keeps_the_other_sections(
    app, db: Database
) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        token = await _signed_in(client, tenant.users["client_member"])
        url = await _create(client, tenant, token)
        await _save(
            client, url, "faq", token, **{"faq_count": "1", "faq-0-question": "Parken?",
                                           "faq-0-answer": "Ja, hinter dem Haus."}
        )  # fmt: skip
        hot = await _save(
            client, url, "llm", token, connection_id="", model="", temperature="5", max_tokens="512"
        )
        assert hot.status_code == 422
        assert re.search(r'id="llm-temperature-e"[^>]*>[^<]*Enter 2 or less', hot.text)
        assert _field(hot.text, "temperature") == "5"  # what was typed stays
        assert _field(hot.text, "faq-0-question") == "Parken?"  # the other section is intact

        choice = await _save(
            client,
            url,
            "qualification",
            token,
            **{
                "q_count": "1",
                "q-0-key": "insurance",
                "q-0-label_de": "Versicherung",
                "q-0-type": "choice",
                "q-0-options": "",
                "q-0-required": "on",
            },
        )
        assert choice.status_code == 422
        assert re.search(
            r'id="q-0-options-e"[^>]*>a choice field needs at least one option', choice.text
        )
        assert _field(choice.text, "q-0-key") == "insurance"

        origin = await _save(
            client,
            url,
            "widget",
            token,
            primary_color="#112233",
            accent_color="",
            position="bottom-right",
            avatar_url="",
            privacy_notice="",
            allowed_origins="https://www.praxis.de\nnot a url",
        )
        assert origin.status_code == 422
        assert re.search(r'id="widget-allowed_origins-e"[^>]*>“not a url”', origin.text)
        assert "not a url" in _textarea(origin.text, "widget-allowed_origins")
    agent = await _agent_row(db, url)
    assert agent.definition["llm"]["temperature"] == 0.3
    assert agent.definition["qualification"] == []
    assert agent.definition["widget"]["primary_color"] is None
    assert agent.definition["faq"][0]["question"] == "Parken?"


async def test_the_qualification_editor_adds_moves_and_removes_fields(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        token = await _signed_in(client, tenant.users["client_member"])
        url = await _create(client, tenant, token)
        row = {"q-0-key": "name", "q-0-label_de": "Name", "q-0-label_en": "Name",
               "q-0-type": "text", "q-0-required": "on"}  # fmt: skip
        assert (
            await _save(client, url, "qualification", token, q_count="1", **row)
        ).status_code == 303
        page = (await client.get(url)).text
        assert _field(page, "q-0-key") == "name"
        second = {
            **row,
            "q-1-key": "insurance",
            "q-1-label_de": "Versicherung",
            "q-1-type": "choice",
            "q-1-options": "gesetzlich, privat",
        }
        added = await _save(client, url, "qualification", token, q_count="2", **second)
        assert added.status_code == 303
        moved = await _save(client, url, "qualification", token, q_count="3", op="up-1", **second)
        assert moved.status_code == 303
        agent = await _agent_row(db, url)
        assert [f["key"] for f in agent.definition["qualification"]] == ["insurance", "name"]
        assert agent.definition["qualification"][0]["options"] == ["gesetzlich", "privat"]
        assert agent.definition["qualification"][1]["required"] is True
        assert agent.definition["qualification"][0]["required"] is False
        removed = await _save(
            client, url, "qualification", token, q_count="3", op="remove-0", **second
        )
        assert removed.status_code == 303
    agent = await _agent_row(db, url)
    assert [f["key"] for f in agent.definition["qualification"]] == ["insurance"]


async def test_tools_knowledge_hours_handoff_and_widget_save(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with db.session(Scope.for_system()) as session:
        kb = KnowledgeBase(
            agency_id=tenant.agency.id, client_id=tenant.clients[0].id, name="Praxiswissen",
            language="de",
        )  # fmt: skip
        session.add(kb)
        await session.commit()
    async with browser(app) as client:
        token = await _signed_in(client, tenant.users["client_member"])
        url = await _create(client, tenant, token)
        page = (await client.get(url)).text
        assert "Praxiswissen" in page and 'value="search_knowledge"' in page
        tools = await client.post(
            f"{url}/sections/tools",
            data={"csrf_token": token, "tools": ["save_lead_details", "search_knowledge"]},
        )
        assert tools.status_code == 303
        foreign = await client.post(
            f"{url}/sections/knowledge",
            data={"csrf_token": token, "knowledge_base_ids": "kb_elsewhere", "calendar_id": ""},
        )
        assert foreign.status_code == 422
        assert "not a knowledge base of the agent&#39;s client" in foreign.text
        knowledge = await client.post(
            f"{url}/sections/knowledge",
            data={"csrf_token": token, "knowledge_base_ids": kb.id, "calendar_id": ""},
        )
        assert knowledge.status_code == 303
        days = {f"day-{d}": "" for d in range(7)}
        hours = await _save(
            client, url, "hours", token, timezone="", closed_dates="2026-12-24",
            out_of_hours_message="Wir sind gerade nicht da.",
            **{**days, "day-0": "9:00-12:00, 14:00-18:00", "day-4": "08:00-13:00"},
        )  # fmt: skip
        assert hours.status_code == 303
        overlapping = await _save(
            client, url, "hours", token, **{**days, "day-1": "09:00-12:00, 11:00-13:00"}
        )
        assert overlapping.status_code == 422
        assert 'id="hours-day-1-e"' in overlapping.text
        unreadable = await _save(client, url, "hours", token, **{**days, "day-2": "morgens"})
        assert unreadable.status_code == 422 and 'id="hours-day-2-e"' in unreadable.text
        handoff = await _save(
            client, url, "handoff", token, keywords="Mensch, Mitarbeiter",
            after_turns_without_progress="3",
        )  # fmt: skip
        assert handoff.status_code == 303
        widget = await _save(
            client, url, "widget", token, primary_color="#112233", accent_color="#AABBCC",
            position="bottom-left", avatar_url="", privacy_notice="Wir speichern nichts.",
            allowed_origins="https://www.Praxis.de/",
        )  # fmt: skip
        assert widget.status_code == 303
        page = (await client.get(url)).text
        css = await client.get(f"{url}/preview.css")
    assert _field(page, "day-0") == "09:00-12:00, 14:00-18:00"
    assert _field(page, "keywords") == "Mensch, Mitarbeiter"
    assert _textarea(page, "widget-allowed_origins") == "https://www.praxis.de"
    assert "--preview-primary: #112233" in css.text
    definition = (await _agent_row(db, url)).definition
    assert definition["tools"] == ["save_lead_details", "search_knowledge"]
    assert definition["knowledge_base_ids"] == [kb.id]
    assert definition["business_hours"]["closed_dates"] == ["2026-12-24"]
    assert len(definition["business_hours"]["weekly"]) == 3
    assert definition["handoff"] == {
        "keywords": ["Mensch", "Mitarbeiter"],
        "after_turns_without_progress": 3,
    }
    assert definition["widget"]["position"] == "bottom-left"


async def test_phone_settings_save(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        token = await _signed_in(client, tenant.users["client_member"])
        url = await _create(client, tenant, token, kind="phone")
        data = dict(
            voice_mode="realtime", say_voice="", realtime_voice="alloy",
            transfer_number="+49 40 1234567", transfer_caller_id="caller",
            silence_reprompts="1", voicemail_message="", record_calls="on",
        )  # fmt: skip
        assert (await _save(client, url, "phone", token, **data)).status_code == 303
        bad = await _save(client, url, "phone", token, **{**data, "transfer_number": "0401234"})
        assert bad.status_code == 422 and 'id="phone-transfer_number-e"' in bad.text
    phone = (await _agent_row(db, url)).definition["phone"]
    assert phone["voice_mode"] == "realtime" and phone["transfer_number"] == "+49401234567"
    assert phone["record_calls"] is True and phone["warm_transfer_sms"] is False


# --- publish, embed, test chat, simulator ---------------------------------------------------


async def test_publish_shows_version_one_and_the_embed_snippet(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        token = await _signed_in(client, tenant.users["client_member"])
        url = await _create(client, tenant, token)
        published = await client.post(f"{url}/publish", data={"csrf_token": token})
        assert published.status_code == 303
        page = (await client.get(url)).text
    agent = await _agent_row(db, url)
    assert "Live: version 1" in page
    base = app.state.settings.base_url.rstrip("/")
    assert _textarea(page, "embed-snippet") == (
        f'<script src="{base}/widget.js" data-agent="{agent.public_key}" async></script>'
    )
    assert 'data-copy="embed-snippet"' in page
    assert "Version" in page and "Live" in page


async def test_deleting_an_agent_takes_it_off_the_list(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        token = await _signed_in(client, tenant.users["client_admin"])
        url = await _create(client, tenant, token, name="Weg damit")
        deleted = await client.post(f"{url}/delete", data={"csrf_token": token})
        assert deleted.status_code == 303
        assert "Weg damit" not in (await client.get(_base(tenant))).text
        assert (await client.get(url)).status_code == 404


async def test_publish_errors_are_messages_not_500s(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with db.session(Scope.for_system()) as session:
        kb = KnowledgeBase(
            agency_id=tenant.agency.id, client_id=tenant.clients[0].id, name="Alt", language="de"
        )
        session.add(kb)
        await session.commit()
    async with browser(app) as client:
        token = await _signed_in(client, tenant.users["client_member"])
        url = await _create(client, tenant, token)
        await client.post(
            f"{url}/sections/knowledge",
            data={"csrf_token": token, "knowledge_base_ids": kb.id, "calendar_id": ""},
        )
        async with db.session(Scope.for_system()) as session:
            await session.delete(await session.get(KnowledgeBase, kb.id))
            await session.commit()
        refused = await client.post(f"{url}/publish", data={"csrf_token": token})
    assert refused.status_code == 422
    assert "It was deleted after it was chosen" in refused.text


async def test_the_test_chat_answers_on_the_real_engine_and_lands_in_the_inbox(
    app, db: Database
) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        token = await _signed_in(client, tenant.users["client_member"])
        url = await _create(client, tenant, token)
        early = await client.post(f"{url}/test", data={"csrf_token": token})
        assert early.status_code == 303  # not a 500: "Publish first."
        assert "Publish first" in (await client.get(early.headers["location"])).text
        await _save(
            client, url, "basics", token, name="Empfang", kind="chat", language="de",
            persona_name="Lena", greeting="Guten Tag, hier ist Lena.", instructions="",
            price_info="",
        )  # fmt: skip
        await _save(
            client, url, "faq", token,
            **{"faq_count": "1", "faq-0-question": "Bieten Sie Zahnreinigung an?",
               "faq-0-answer": "Ja, die professionelle Zahnreinigung kostet 89 Euro."},
        )  # fmt: skip
        await client.post(f"{url}/publish", data={"csrf_token": token})
        started = await client.post(f"{url}/test", data={"csrf_token": token})
        assert started.status_code == 303
        page = (await client.get(started.headers["location"])).text
        assert "Guten Tag, hier ist Lena." in page
        action = re.search(r'action="([^"]+/test/conv_[^"]+)"', page)
        assert action
        answered = await client.post(
            action.group(1),
            data={"csrf_token": token, "text": "Bieten Sie Zahnreinigung an?"},
            headers={"HX-Request": "true"},
        )
        assert answered.status_code == 200
        assert "89 Euro" in answered.text
        assert 'id="test-chat"' in answered.text and "<html" not in answered.text
        plain = await client.post(action.group(1), data={"csrf_token": token, "text": "Danke"})
        assert plain.status_code == 303
    conversation_id = action.group(1).rsplit("/", 1)[-1]
    async with db.session(Scope.for_system()) as session:
        conversation = await session.get(Conversation, conversation_id)
    assert conversation is not None and conversation.channel == "test"
    assert conversation.message_count >= 4


async def test_the_phone_simulator_answers(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        token = await _signed_in(client, tenant.users["client_member"])
        url = await _create(client, tenant, token, kind="phone")
        early = await client.post(
            f"{url}/simulate-call", data={"csrf_token": token}, headers={"HX-Request": "true"}
        )
        assert early.status_code == 200 and "Publish" in early.text
        await _save(
            client, url, "basics", token, name="Telefon", kind="phone", language="de",
            persona_name="Lena", greeting="Guten Tag, hier ist Lena.", instructions="",
            price_info="",
        )  # fmt: skip
        await _save(
            client, url, "qualification", token,
            **{"q_count": "1", "q-0-key": "name", "q-0-label_de": "Name", "q-0-type": "text",
               "q-0-required": "on"},
        )  # fmt: skip
        await client.post(f"{url}/publish", data={"csrf_token": token})
        started = await client.post(f"{url}/simulate-call", data={"csrf_token": token})
        assert started.status_code == 303
        page = (await client.get(started.headers["location"])).text
        assert "Guten Tag, hier ist Lena" in page
        call_id = re.search(r'name="call_id" value="([^"]+)"', page)
        assert call_id
        turn = await client.post(
            f"{url}/simulate-call/turn",
            data={
                "csrf_token": token,
                "call_id": call_id.group(1),
                "text": "Hallo, ich hätte gern einen Termin.",
            },
            headers={"HX-Request": "true"},
        )
        assert turn.status_code == 200
        assert "Name" in turn.text and "Listening" in turn.text
        bye = await client.post(
            f"{url}/simulate-call/turn",
            data={"csrf_token": token, "call_id": call_id.group(1), "text": "Danke, tschüss!"},
            headers={"HX-Request": "true"},
        )
        assert "Hang-up" in bye.text
        over = await client.post(
            f"{url}/simulate-call/turn",
            data={"csrf_token": token, "call_id": call_id.group(1), "text": "Hallo?"},
            headers={"HX-Request": "true"},
        )
        assert over.status_code == 200 and "over" in over.text


# --- roles and tenants ---------------------------------------------------------------------


async def test_a_viewer_sees_the_builder_read_only_and_cannot_post(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        token = await _signed_in(client, tenant.users["client_member"])
        url = await _create(client, tenant, token)
    async with browser(app) as client:
        token = await _signed_in(client, tenant.users["client_viewer"])
        listing = await client.get(_base(tenant))
        assert listing.status_code == 200 and "Empfang" in listing.text
        assert "New agent" not in listing.text
        page = await client.get(url)
        assert page.status_code == 200
        assert '<form method="post" action="' + url not in page.text
        assert "Test chat" not in page.text
        for path, data in (
            ("/sections/basics", {"name": "Gekapert", "kind": "chat", "language": "de"}),
            ("/publish", {}),
            ("/test", {}),
            ("/simulate-call", {}),
        ):
            refused = await client.post(url + path, data={"csrf_token": token, **data})
            assert refused.status_code == 403, path
        created = await client.post(
            _base(tenant), data={"name": "X", "kind": "chat", "language": "de", "csrf_token": token}
        )
        assert created.status_code == 403
    assert (await _agent_row(db, url)).name == "Empfang"


async def test_another_agencys_agent_is_not_found(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = await make_tenant(db), await make_tenant(db)
    async with browser(app) as client:
        token = await _signed_in(client, theirs.users["agency_owner"])
        their_url = await _create(client, theirs, token, name="Geheim")
    agent_id = their_url.rsplit("/", 1)[-1]
    async with browser(app) as client:
        token = await _signed_in(client, ours.users["agency_owner"])
        mine = f"{_base(ours)}/{agent_id}"
        for response in (
            await client.get(their_url),
            await client.get(mine),
            await client.get(f"{mine}/preview.css"),
            await client.post(f"{mine}/sections/basics", data={"csrf_token": token, "name": "x"}),
            await client.post(f"{mine}/publish", data={"csrf_token": token}),
            await client.post(f"{mine}/test", data={"csrf_token": token}),
        ):
            assert response.status_code == 404
            assert "Geheim" not in response.text
        # A client of ours, but an agent of the other client of ours: also not found here.
        other = f"/app/clients/{ours.clients[1].id}/agents"
        own_url = await _create(client, ours, token)
        wrong = await client.get(f"{other}/{own_url.rsplit('/', 1)[-1]}")
        assert wrong.status_code == 404


async def test_an_agency_member_picks_the_agencys_connection(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with db.session(Scope.for_system()) as session:
        connection = await service.create_connection(
            session,
            s.ProviderConnectionCreate(
                agency_id=tenant.agency.id, name="Mistral EU", base_url="https://api.mistral.ai/v1",
                default_model="mistral-small", region="eu",
            ),
        )  # fmt: skip
        await session.commit()
    async with browser(app) as client:
        token = await _signed_in(client, tenant.users["client_member"])
        url = await _create(client, tenant, token)
        page = (await client.get(url)).text
        assert "Mistral EU" in page
        saved = await _save(
            client, url, "llm", token, connection_id=connection.id, model="", temperature="0.3",
            max_tokens="512",
        )  # fmt: skip
        assert saved.status_code == 303
        wrong = await _save(
            client, url, "llm", token, connection_id="pc_nope", model="", temperature="0.3",
            max_tokens="512",
        )  # fmt: skip
        assert wrong.status_code == 422 and 'id="llm-connection_id-e"' in wrong.text
    assert (await _agent_row(db, url)).definition["llm"]["connection_id"] == connection.id


async def test_csrf_is_required(app, db: Database) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(db)
    async with browser(app) as client:
        token = await _signed_in(client, tenant.users["client_member"])
        url = await _create(client, tenant, token)
        refused = await client.post(f"{url}/publish")
        assert refused.status_code == 403
        assert csrf_of((await client.get(url)).text) == token
    rows = await _agents_of(db, tenant)
    assert all(a.current_version_id is None for a in rows)


async def _agents_of(db: Database, tenant: Tenant) -> list[Agent]:
    async with db.session(Scope.for_system()) as session:
        result = await session.execute(select(Agent).where(Agent.client_id == tenant.clients[0].id))
        return list(result.scalars())
