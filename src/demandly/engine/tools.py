"""The tool registry: typed functions with a JSON schema that agents may call.

A tool is an async function taking a ``ToolContext`` and its arguments as a Pydantic model.
Domains register theirs with ``@tool``; the turn loop offers an agent only the tools its
definition enables and runs every call in the conversation's tenant scope: whatever a model
asks for, a tool can only reach the rows of the conversation's client. A failing tool answers
``{"ok": false, "error": ...}`` to the model; it never breaks the turn.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from demandly.engine.providers.base import AgentContext, ToolCall, ToolSpec
from demandly.kit.logging import get_logger

log = get_logger(__name__)

A = TypeVar("A", bound=BaseModel)
Handler = Callable[["ToolContext", Any], Awaitable[dict[str, Any]]]


# Signals that the visitor's turn got somewhere (the "handoff after N turns without progress"
# rule counts the turns without).
PROGRESS_SIGNALS = frozenset({"lead_updated", "progress"})


@dataclass
class ToolContext:
    """A tool's world: the session (scoped to the conversation's client), the conversation,
    what the agent knows, and the events the tool raises for the channel."""

    session: AsyncSession
    conversation: Any  # conversations.models.Conversation (engine sits above that domain)
    agent: AgentContext
    signals: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def signal(self, kind: str, **data: Any) -> None:
        """Tell the turn loop something happened (handoff, end, lead captured). A sign of
        progress resets the conversation's count of turns without any at once, so that the
        conversation's next write (often the tool's own) carries it: no UPDATE of its own."""
        self.signals.append((kind, data))
        if kind in PROGRESS_SIGNALS and self.conversation.turns_without_progress:
            self.conversation.turns_without_progress = 0


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    arguments: type[BaseModel]
    handler: Handler
    spec: ToolSpec


def _spec(name: str, description: str, arguments: type[BaseModel]) -> ToolSpec:
    schema = arguments.model_json_schema()
    schema.pop("title", None)
    return ToolSpec(name=name, description=description, parameters=schema)


_tools: dict[str, Tool] = {}
_discovered = False


def autodiscover() -> None:
    """Import every ``demandly.<domain>.tools`` module once, so each domain's tools are known
    before the first turn (like ``jobs.registry.autodiscover`` does for tasks)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    root = importlib.import_module("demandly")
    for info in pkgutil.walk_packages(root.__path__, prefix="demandly."):
        if info.name.rsplit(".", 1)[-1] == "tools" and info.name != __name__:
            importlib.import_module(info.name)


def tool(
    name: str, description: str
) -> Callable[[Callable[[ToolContext, A], Awaitable[dict[str, Any]]]], Any]:
    """Register ``async def handler(ctx: ToolContext, args: ArgsModel) -> dict``; the
    arguments model is the handler's second parameter's annotation."""

    def decorate(func: Callable[[ToolContext, A], Awaitable[dict[str, Any]]]) -> Any:
        annotations = func.__annotations__
        model = annotations.get("args")
        if isinstance(model, str):
            model = func.__globals__[model]
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"tool {name}: annotate the 'args' parameter with a Pydantic model")
        _tools[name] = Tool(name, description, model, func, _spec(name, description, model))
        return func

    return decorate


def get_tool(name: str) -> Tool | None:
    autodiscover()
    return _tools.get(name)


def registered() -> list[str]:
    autodiscover()
    return sorted(_tools)


def specs_for(names: list[str] | tuple[str, ...]) -> tuple[ToolSpec, ...]:
    """The specs of the enabled tools that exist (unknown names are skipped)."""
    autodiscover()
    return tuple(_tools[n].spec for n in names if n in _tools)


async def run_tool(ctx: ToolContext, call: ToolCall, enabled: frozenset[str]) -> dict[str, Any]:
    """Run one call; every failure becomes an answer the model can read."""
    autodiscover()
    found = _tools.get(call.name)
    if found is None or call.name not in enabled:
        return {"ok": False, "error": f"unknown tool {call.name!r}"}
    try:
        args = found.arguments.model_validate(call.arguments)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
        )
        return {"ok": False, "error": f"invalid arguments: {problems}"}
    try:
        async with ctx.session.begin_nested():
            result = await found.handler(ctx, args)
    except Exception as exc:  # a tool's failure is the model's information, not a crash
        log.warning(
            "tool_failed",
            tool=call.name,
            conversation_id=getattr(ctx.conversation, "id", None),
            error_type=type(exc).__name__,
        )
        return {"ok": False, "error": "the tool failed; tell the visitor you will pass it on"}
    return {"ok": True, **result}
