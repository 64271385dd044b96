"""Dashboard screen: agents. The client's agents, the builder (one POST form per section of
the draft, saved through the same schema and service as ``PATCH /api/v1/agents/{id}``),
publish and versions, the embed snippet, a test chat on the real turn loop and the phone
simulator (the services behind ``/api/v1/agents/{id}/simulate-call``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from demandly.agents import schemas as s
from demandly.agents import service
from demandly.agents.models import Agent, AgentVersion
from demandly.agents.repository import AgentRepository
from demandly.auth.permissions import Permission
from demandly.booking.repository import BookingRepository
from demandly.channels.phone import service as phone
from demandly.channels.phone import twiml
from demandly.channels.phone.schemas import SimulatedCall, SimulatedTurn
from demandly.channels.web.schemas import VisitorMessage
from demandly.conversations import service as conversations
from demandly.conversations.models import Channel, Conversation
from demandly.engine.service import TurnRunner, visible
from demandly.engine.tools import registered
from demandly.kit.context import Scope
from demandly.kit.errors import DemandlyError, NotFound
from demandly.kit.pagination import PageParams, paginate
from demandly.knowledge.repository import KnowledgeRepository
from demandly.tenancy.branding import contrast_color
from demandly.tenancy.models import Client
from demandly.web.deps import Page, PageDep, PageRoute
from demandly.web.forms import FormInvalid, fields, parse, service_errors
from demandly.web.screens import agents_forms as forms

router = APIRouter(route_class=PageRoute, include_in_schema=False)

LIST_LIMIT = 50
VERSIONS_SHOWN = 10
Cursor = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
ConversationParam = Annotated[str | None, Query(max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]


def _base(client_id: str) -> str:
    return f"/app/clients/{client_id}/agents"


def _builder_url(agent: Agent, anchor: str = "", **query: str | None) -> str:
    params = "&".join(f"{k}={v}" for k, v in query.items() if v)
    return f"{_base(agent.client_id)}/{agent.id}" + (f"?{params}" if params else "") + anchor


async def _agent(
    page: Page, client_id: str, agent_id: str, *, write: bool = False
) -> tuple[Client, Agent]:
    """The agent of this client: 404 when out of reach (another client's too), 403 when the
    role may not change it — the API's order of checks."""
    client = await page.client(client_id)
    agent = await service.get_agent(page.session, agent_id[:40])
    if agent.client_id != client.id:
        raise NotFound("Agent not found.")
    if write:
        page.require(Permission.CONTENT_WRITE, client.id)
    return client, agent


# --- the list ------------------------------------------------------------------------------


@router.get("/app/clients/{client_id}/agents")
async def agent_list(page: PageDep, client_id: str, cursor: Cursor = None) -> Response:
    client = await page.client(client_id)
    return await _render_list(page, client, cursor=cursor)


async def _render_list(
    page: Page,
    client: Client,
    *,
    cursor: str | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    statement = AgentRepository(page.session).agents(client.id)
    rows, next_cursor = await paginate(
        page.session, statement, Agent.id, PageParams(limit=LIST_LIMIT, cursor=cursor)
    )
    return page.render(
        "agents/list.html",
        status_code=status_code,
        title=page.t("Agents"),
        section="agents",
        client=client,
        agents=rows,
        next_url=f"{_base(client.id)}?cursor={next_cursor}" if next_cursor else None,
        can_write=page.can(Permission.CONTENT_WRITE, client.id),
        errors=errors or {},
        values=values or {"kind": "chat", "language": client.locale or "de"},
    )


@router.post("/app/clients/{client_id}/agents")
async def create_agent(page: PageDep, client_id: str) -> Response:
    client = await page.client(client_id, Permission.CONTENT_WRITE)
    values = fields(await page.request.form(), "name", "kind", "language")
    try:
        data = parse(s.AgentCreate, {"client_id": client.id, **values})
        agent = await service.create_agent(page.session, client, data)
    except FormInvalid as invalid:
        return await _render_list(
            page, client, errors=invalid.errors, values=values, status_code=422
        )
    except DemandlyError as error:
        if error.status_code in (403, 404):
            raise
        errors = service_errors(error)
        return await _render_list(page, client, errors=errors, values=values, status_code=422)
    return page.redirect(_builder_url(agent), notice="Agent created.")


# --- the builder ---------------------------------------------------------------------------


@router.get("/app/clients/{client_id}/agents/{agent_id}")
async def builder(
    page: PageDep,
    client_id: str,
    agent_id: str,
    test: ConversationParam = None,
    call: ConversationParam = None,
) -> Response:
    client, agent = await _agent(page, client_id, agent_id)
    return await _render_builder(page, client, agent, test_id=test, call_id=call)


async def _render_builder(
    page: Page,
    client: Client,
    agent: Agent,
    *,
    failed: str | None = None,
    posted: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    test_id: str | None = None,
    call_id: str | None = None,
    publish_error: str | None = None,
    status_code: int = 200,
) -> Response:
    view = service.agent_view(agent)
    values = forms.form_values(view)
    if failed is not None and posted is not None:
        values[failed] = posted
    versions, _ = await paginate(
        page.session,
        AgentRepository(page.session).versions(agent.id),
        AgentVersion.id,
        PageParams(limit=VERSIONS_SHOWN),
    )
    can_write = page.can(Permission.CONTENT_WRITE, client.id)
    return page.render(
        "agents/builder.html",
        status_code=status_code,
        title=agent.name,
        section="agents",
        client=client,
        agent=agent,
        a=view,
        v=values,
        errors=errors or {},
        e=forms.ErrorLookup(errors or {}),
        failed=failed,
        can_write=can_write,
        publish_error=publish_error,
        versions=versions,
        embed=embed_snippet(page, agent),
        base=_base(client.id),
        choices=await _choices(page, client, agent),
        test=await _test_panel(page, agent, test_id) if can_write else None,
        sim=await _sim_panel(page, agent, call_id) if can_write else None,
    )


def embed_snippet(page: Page, agent: Agent) -> str:
    """The one line of docs/widget.md, with this installation's public URL."""
    base = page.public_url
    return f'<script src="{base}/widget.js" data-agent="{agent.public_key}" async></script>'


async def _choices(page: Page, client: Client, agent: Agent) -> dict[str, Any]:
    """What the selects and checkboxes offer: the agency's connections, the client's
    knowledge bases and calendars, the registered tools the schema knows."""
    bases = await page.session.execute(KnowledgeRepository(page.session).bases(client.id))
    calendars = await page.session.execute(BookingRepository(page.session).calendars(client.id))
    tools = [name for name in registered() if name in s.KNOWN_TOOLS]
    return {
        "connections": await service.connection_choices(page.session, agent.agency_id),
        "knowledge_bases": sorted(bases.scalars(), key=lambda kb: kb.name.casefold()),
        "calendars": sorted(((c.id, c.name) for c in calendars.scalars()), key=_by_name),
        "tools": [(name, forms.TOOL_LABELS.get(name, name)) for name in tools],
        "field_types": [(value, page.t(label)) for value, label in forms.FIELD_TYPES],
        "weekdays": forms.WEEKDAYS,
    }


def _by_name(choice: tuple[str, str]) -> str:
    return choice[1].casefold()


@router.get("/app/clients/{client_id}/agents/{agent_id}/preview.css")
async def preview_css(page: PageDep, client_id: str, agent_id: str) -> Response:
    """The saved widget colours for the preview when scripts are off (colours are validated
    hex values, so they are safe in CSS)."""
    _, agent = await _agent(page, client_id, agent_id)
    widget = service.definition_of(agent).widget
    rules = [
        f"--preview-{name}: {color}; --preview-on-{name}: {contrast_color(color)};"
        for name, color in (("primary", widget.primary_color), ("accent", widget.accent_color))
        if color
    ]
    css = f"#widget-preview {{ {' '.join(rules)} }}\n" if rules else ""
    return Response(css, media_type="text/css", headers={"Cache-Control": "no-store"})


@router.post("/app/clients/{client_id}/agents/{agent_id}/sections/{section}")
async def save_section(page: PageDep, client_id: str, agent_id: str, section: str) -> Response:
    client, agent = await _agent(page, client_id, agent_id, write=True)
    parser = forms.PARSERS.get(section)
    if parser is None:
        raise NotFound()
    parsed = parser(await page.request.form())
    errors = dict(parsed.errors) or await _save(page, agent, parsed.data)
    if errors:
        agent = await service.get_agent(page.session, agent.id)
        return await _render_builder(
            page,
            client,
            agent,
            failed=section,
            posted=parsed.values,
            errors=parsed.translate_errors(errors),
            status_code=422,
        )
    return page.redirect(_builder_url(agent, f"#{section}"), notice="Saved.")


async def _save(page: Page, agent: Agent, data: dict[str, Any]) -> dict[str, str]:
    """Apply one section like the API's PATCH; the messages per field, or {} when saved.
    A refused save leaves the draft untouched (its savepoint is rolled back)."""
    try:
        update = s.AgentUpdate.model_validate(data)
    except ValidationError as error:
        return forms.indexed_errors(error)
    try:
        async with page.session.begin_nested():
            await service.update_agent(page.session, agent, update)
    except DemandlyError as error:
        if error.status_code == 403:
            raise
        return {
            key: message.removeprefix(f"{key}: ") for key, message in service_errors(error).items()
        }
    return {}


@router.post("/app/clients/{client_id}/agents/{agent_id}/publish")
async def publish(page: PageDep, client_id: str, agent_id: str) -> Response:
    client, agent = await _agent(page, client_id, agent_id, write=True)
    try:
        async with page.session.begin_nested():
            agent = await service.publish(page.session, agent)
    except DemandlyError as error:
        if error.status_code in (403, 404):
            raise
        agent = await service.get_agent(page.session, agent.id)
        message = page.t("Not published: {reason}", reason=error.message)
        return await _render_builder(page, client, agent, publish_error=message, status_code=422)
    return page.redirect(_builder_url(agent, "#publish"), notice="Published.")


@router.post("/app/clients/{client_id}/agents/{agent_id}/delete")
async def delete(page: PageDep, client_id: str, agent_id: str) -> Response:
    client, agent = await _agent(page, client_id, agent_id, write=True)
    await service.delete_agent(page.session, agent)
    return page.redirect(_base(client.id), notice="Agent deleted.")


# --- test chat (the real turn loop, on the published version) ------------------------------


async def _test_conversation(page: Page, agent: Agent, conversation_id: str) -> Conversation:
    """A test conversation of this agent; 404 for any other conversation."""
    conversation = await conversations.get(page.session, conversation_id[:40])
    if conversation.agent_id != agent.id or conversation.channel != Channel.TEST:
        raise NotFound("Conversation not found.")
    return conversation


async def _test_panel(
    page: Page, agent: Agent, conversation_id: str | None, error: str | None = None
) -> dict[str, Any]:
    panel: dict[str, Any] = {"conversation": None, "messages": [], "error": error}
    if conversation_id:
        try:
            conversation = await _test_conversation(page, agent, conversation_id)
        except NotFound:
            return panel
        rows = await conversations.messages(page.session, conversation.id)
        panel.update(conversation=conversation, messages=[m for m in rows if visible(m)])
    return panel


async def _test_answer(
    page: Page, client: Client, agent: Agent, conversation_id: str | None, error: str | None
) -> Response:
    """The panel alone for htmx, else back to the builder at the panel."""
    if page.is_htmx:
        return page.render(
            "agents/_test_chat.html",
            base=_base(client.id),
            agent=agent,
            test=await _test_panel(page, agent, conversation_id, error),
        )
    if error:
        return page.redirect(_builder_url(agent, "#test-chat", test=conversation_id), notice=error)
    return page.redirect(_builder_url(agent, "#test-chat", test=conversation_id))


@router.post("/app/clients/{client_id}/agents/{agent_id}/test")
async def start_test(page: PageDep, client_id: str, agent_id: str) -> Response:
    """A new conversation with channel ``test`` on the live version: it shows in the inbox."""
    client, agent = await _agent(page, client_id, agent_id, write=True)
    version = await service.published_version(page.session, agent.id)
    if version is None:
        return await _test_answer(page, client, agent, None, "Publish first.")
    context = service.agent_context(version, client)
    conversation, _, _ = await conversations.start(
        page.session,
        agency_id=agent.agency_id,
        client_id=agent.client_id,
        agent_id=agent.id,
        agent_version_id=version.id,
        channel=Channel.TEST,
        language=context.language,
        greeting=conversations.greeting_text(
            context.greeting, context.language, context.persona_name, context.business_name
        ),
        consent=True,
    )
    return await _test_answer(page, client, agent, conversation.id, None)


@router.post("/app/clients/{client_id}/agents/{agent_id}/test/{conversation_id}")
async def send_test_message(
    page: PageDep,
    client_id: str,
    agent_id: str,
    conversation_id: str,
    text: Annotated[str, Form(max_length=10_000)] = "",
) -> Response:
    client, agent = await _agent(page, client_id, agent_id, write=True)
    conversation = await _test_conversation(page, agent, conversation_id)
    try:
        message = parse(VisitorMessage, {"text": text.strip()})
        if not message.text:
            raise FormInvalid({"text": "The message is empty."})
        conversations.ensure_open(conversation)
    except FormInvalid as invalid:
        return await _test_answer(page, client, agent, conversation.id, invalid.errors["text"])
    except DemandlyError as error:
        return await _test_answer(page, client, agent, conversation.id, error.message)
    await page.session.commit()  # the turn runs in transactions of its own, like the widget's
    runner = TurnRunner(page.request.app.state.db, page.settings)
    events = runner.run(
        Scope.for_client(agent.agency_id, agent.client_id),
        conversation.id,
        message.text,
        actor=page.auth.actor,
    )
    error = None
    try:
        async for _ in events:
            pass
    except DemandlyError as refused:  # ended meanwhile: say so instead of failing
        error = refused.message
    return await _test_answer(page, client, agent, conversation.id, error)


# --- phone simulator -----------------------------------------------------------------------


async def _sim_panel(
    page: Page,
    agent: Agent,
    call_id: str | None,
    result: SimulatedCall | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    panel: dict[str, Any] = {"call": None, "result": result, "messages": [], "error": error}
    if not call_id:
        return panel
    try:
        call = await phone.get_call(page.session, call_id[:40])
    except NotFound:
        return panel
    if call.agent_id != agent.id or not call.simulated:
        return panel
    panel["call"] = call
    if result is None:
        panel["result"] = phone.simulated(call, call.last_twiml or twiml.empty())
    if call.conversation_id:
        rows = await conversations.messages(page.session, call.conversation_id)
        panel["messages"] = [m for m in rows if visible(m)]
    return panel


async def _sim_answer(
    page: Page,
    client: Client,
    agent: Agent,
    call_id: str | None,
    result: SimulatedCall | None = None,
    error: str | None = None,
) -> Response:
    if page.is_htmx:
        return page.render(
            "agents/_phone_sim.html",
            base=_base(client.id),
            agent=agent,
            sim=await _sim_panel(page, agent, call_id, result, error),
        )
    if error:
        return page.redirect(_builder_url(agent, "#phone-sim", call=call_id), notice=error)
    return page.redirect(_builder_url(agent, "#phone-sim", call=call_id))


@router.post("/app/clients/{client_id}/agents/{agent_id}/simulate-call")
async def simulate_call(page: PageDep, client_id: str, agent_id: str) -> Response:
    client, agent = await _agent(page, client_id, agent_id, write=True)
    await page.session.commit()  # the call runs in transactions of its own, like a real one
    try:
        result = await phone.simulate_call(
            page.request.app.state.db, page.settings, agent, page.auth.actor
        )
    except DemandlyError as error:
        if error.status_code in (403, 404):
            raise
        return await _sim_answer(page, client, agent, None, error=error.message)
    return await _sim_answer(page, client, agent, result.call_id, result)


@router.post("/app/clients/{client_id}/agents/{agent_id}/simulate-call/turn")
async def simulate_turn(page: PageDep, client_id: str, agent_id: str) -> Response:
    client, agent = await _agent(page, client_id, agent_id, write=True)
    form: FormData = await page.request.form()
    values = fields(form, "call_id", "text", blank_as_none=False)
    try:
        turn = parse(SimulatedTurn, {"call_id": "", "text": "", **values})
    except FormInvalid as invalid:
        if "call_id" in invalid.errors:
            raise NotFound("Simulated call not found.") from None
        return await _sim_answer(
            page, client, agent, values.get("call_id"), error=invalid.errors.get("text")
        )
    await page.session.commit()
    try:
        result = await phone.simulate_turn(
            page.request.app.state.db,
            page.settings,
            agent,
            turn.call_id,
            turn.text,
            page.auth.actor,
        )
    except DemandlyError as error:
        if error.status_code in (403, 404):
            raise
        return await _sim_answer(page, client, agent, turn.call_id, error=error.message)
    return await _sim_answer(page, client, agent, turn.call_id, result)
