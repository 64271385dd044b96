"""The agent builder's forms: each section of the draft as the fields a page shows, and a
posted section back into the body of ``PATCH /api/v1/agents/{id}`` (``AgentUpdate``).

Reading a form only reshapes it (lines into lists, ``09:00-12:00`` into ranges); every rule
about a value stays in the API's schema and the agents service. Their messages name the
API's path (``qualification.2.options``); ``Parsed.translate_errors`` moves those that point
into a reshaped list onto the field the user typed them in."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from demandly.agents import schemas as s
from demandly.web.forms import message_of

MAX_ROWS = 60
FIELD_TYPES: tuple[tuple[str, str], ...] = (
    ("text", "Text"),
    ("email", "E-mail"),
    ("phone", "Phone"),
    ("number", "Numeric"),
    ("choice", "Choice"),
    ("date", "Date"),
    ("boolean", "Yes/no"),
)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
TOOL_LABELS = {
    "save_lead_details": "Save the visitor's details",
    "request_handoff": "Hand over to a person",
    "end_conversation": "End the conversation",
    "search_knowledge": "Search the knowledge bases",
    "check_availability": "Check free appointment slots",
    "book_appointment": "Book appointments",
    "reschedule_appointment": "Reschedule appointments",
    "cancel_appointment": "Cancel appointments",
    "qualify_lead": "Qualify the lead",
    "transfer_call": "Transfer the call to a person",
}
RANGE_FORMAT = "Write opening times like 09:00-12:00, 14:00-18:00."
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})\s*[-\u2013]\s*(\d{1,2}):(\d{2})$")
_INDEXED = re.compile(r"^(?P<list>[a-z_.]+)\.(?P<index>\d+)(?:\.(?P<rest>.*))?$")


@dataclass
class Parsed:
    """A posted section: ``values`` to show again, ``data`` for ``AgentUpdate``, ``errors``
    found while reading (by API path)."""

    values: dict[str, Any]
    data: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)
    remap: Callable[[str, str], tuple[str, str]] | None = None

    def translate_errors(self, errors: dict[str, str]) -> dict[str, str]:
        if self.remap is None:
            return errors
        moved: dict[str, str] = {}
        for key, message in errors.items():
            new_key, new_message = self.remap(key, message)
            moved.setdefault(new_key, new_message)
        return moved


def indexed_errors(error: ValidationError) -> dict[str, str]:
    """Pydantic's errors by dotted path, list indexes kept (``qualification.0.options``)."""
    errors: dict[str, str] = {}
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "_form"
        errors.setdefault(key, message_of(item))
    return errors


class ErrorLookup:
    """For templates: ``e(key)`` is the message of a field or of anything inside it; what no
    field asked for is ``e.unshown()``, shown at the end of the section, so none is lost."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        self.shown: set[str] = set()

    def __call__(self, key: str) -> str | None:
        found = [name for name in self.errors if name == key or name.startswith(f"{key}.")]
        self.shown.update(found)
        return self.errors[found[0]] if found else None

    def unshown(self) -> list[str]:
        return [m for k, m in self.errors.items() if k not in self.shown and k != "_form"]


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _optional(value: str) -> str | None:
    return value or None


def _lines(value: str, separators: str = "\n") -> list[str]:
    parts = re.split(f"[{re.escape(separators)}]", value)
    return [part.strip() for part in parts if part.strip()]


def _checked(form: FormData, name: str) -> bool:
    return form.get(name) is not None


def _list_message(label: str, items: list[str]) -> Callable[[str, str], tuple[str, str]]:
    """Errors on item N of a list typed as lines move onto the list's field, naming the item."""

    def remap(key: str, message: str) -> tuple[str, str]:
        found = _INDEXED.match(key)
        if found and found["list"] == label:
            index = int(found["index"])
            if index < len(items):
                return label, f"“{items[index]}”: {message}"
        return key, message

    return remap


# --- sections ------------------------------------------------------------------------------


def parse_basics(form: FormData) -> Parsed:
    names = ("name", "kind", "language", "persona_name", "greeting", "instructions", "price_info")
    values = {name: _text(form, name) for name in names}
    data: dict[str, Any] = {
        "name": values["name"],
        "kind": values["kind"],
        "language": values["language"],
    }
    for name in ("persona_name", "greeting", "instructions", "price_info"):
        data[name] = _optional(values[name])
    return Parsed(values, data)


def parse_llm(form: FormData) -> Parsed:
    values = {n: _text(form, n) for n in ("connection_id", "model", "temperature", "max_tokens")}
    llm: dict[str, Any] = {
        "connection_id": _optional(values["connection_id"]),
        "model": _optional(values["model"]),
    }
    if values["temperature"]:
        llm["temperature"] = values["temperature"].replace(",", ".")  # German decimal comma
    if values["max_tokens"]:
        llm["max_tokens"] = values["max_tokens"]
    return Parsed(values, {"llm": llm})


def _rows(form: FormData, prefix: str, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """The rows of a list editor (``{prefix}-{i}-{name}``), blank ones left out."""
    try:
        count = min(int(_text(form, f"{prefix}_count") or 0), MAX_ROWS)
    except ValueError:
        count = 0
    rows = []
    for index in range(count):
        row: dict[str, Any] = {name: _text(form, f"{prefix}-{index}-{name}") for name in names}
        if any(row.values()):
            row["_index"] = index
            rows.append(row)
    return rows


def _apply_op(rows: list[dict[str, Any]], op: str) -> list[dict[str, Any]]:
    """The row buttons: ``remove-N``, ``up-N``, ``down-N`` (N: the row's number on the page)."""
    action, _, number = op.partition("-")
    position = next((i for i, row in enumerate(rows) if str(row["_index"]) == number), None)
    if position is None:
        return rows
    rows = list(rows)
    if action == "remove":
        del rows[position]
    elif action == "up" and position > 0:
        rows[position - 1], rows[position] = rows[position], rows[position - 1]
    elif action == "down" and position < len(rows) - 1:
        rows[position + 1], rows[position] = rows[position], rows[position + 1]
    return rows


QUALIFICATION_TEXT = ("key", "label_de", "label_en", "options", "hint")


def parse_qualification(form: FormData) -> Parsed:
    rows = _rows(form, "q", QUALIFICATION_TEXT)
    for row in rows:
        index = row["_index"]
        row["type"] = _text(form, f"q-{index}-type") or "text"
        row["required"] = _checked(form, f"q-{index}-required")
    rows = _apply_op(rows, _text(form, "op"))
    data = [
        {
            "key": row["key"],
            "label": {"de": _optional(row["label_de"]), "en": _optional(row["label_en"])},
            "type": row["type"],
            "required": row["required"],
            "options": _lines(row["options"], ",\n") or None,
            "hint": _optional(row["hint"]),
        }
        for row in rows
    ]
    return Parsed({"rows": rows}, {"qualification": data})


def parse_faq(form: FormData) -> Parsed:
    rows = _apply_op(_rows(form, "faq", ("question", "answer")), _text(form, "op"))
    data = [{"question": row["question"], "answer": row["answer"]} for row in rows]
    return Parsed({"rows": rows}, {"faq": data})


def parse_tools(form: FormData) -> Parsed:
    tools = [t for t in form.getlist("tools") if isinstance(t, str)]
    return Parsed({"tools": tools}, {"tools": tools})


def parse_knowledge(form: FormData) -> Parsed:
    ids = [i for i in form.getlist("knowledge_base_ids") if isinstance(i, str)]
    calendar = _text(form, "calendar_id")
    values = {"knowledge_base_ids": ids, "calendar_id": calendar}
    return Parsed(values, {"knowledge_base_ids": ids, "calendar_id": _optional(calendar)})


def _ranges(text: str) -> list[tuple[str, str]] | None:
    """``09:00-12:00, 14:00-18:00`` as (opens, closes) pairs; None if it does not read."""
    ranges = []
    for part in _lines(text, ",;\n"):
        found = _RANGE.match(part)
        if not found:
            return None
        h1, m1, h2, m2 = found.groups()
        ranges.append((f"{int(h1):02d}:{m1}", f"{int(h2):02d}:{m2}"))
    return ranges


def parse_hours(form: FormData) -> Parsed:
    days = [_text(form, f"day-{weekday}") for weekday in range(7)]
    values = {
        "timezone": _text(form, "timezone"),
        "days": days,
        "closed_dates": _text(form, "closed_dates"),
        "out_of_hours_message": _text(form, "out_of_hours_message"),
    }
    errors: dict[str, str] = {}
    weekly: list[dict[str, Any]] = []
    day_of: list[int] = []  # weekly[i] came from weekday day_of[i]
    for weekday, text in enumerate(days):
        ranges = _ranges(text)
        if ranges is None:
            errors[f"business_hours.day.{weekday}"] = RANGE_FORMAT
            continue
        for opens, closes in ranges:
            weekly.append({"weekday": weekday, "opens": opens, "closes": closes})
            day_of.append(weekday)
    closed = _lines(values["closed_dates"], ",\n")
    hours = {
        "timezone": _optional(values["timezone"]),
        "weekly": weekly,
        "closed_dates": closed,
        "out_of_hours_message": _optional(values["out_of_hours_message"]),
    }
    dates = _list_message("business_hours.closed_dates", closed)

    def remap(key: str, message: str) -> tuple[str, str]:
        found = _INDEXED.match(key)
        if found and found["list"] == "business_hours.weekly":
            index = int(found["index"])
            if index < len(day_of):
                return f"business_hours.day.{day_of[index]}", message
        return dates(key, message)

    return Parsed(values, {"business_hours": hours}, errors, remap)


def parse_handoff(form: FormData) -> Parsed:
    values = {
        "keywords": _text(form, "keywords"),
        "after_turns_without_progress": _text(form, "after_turns_without_progress"),
    }
    keywords = _lines(values["keywords"], ",\n")
    handoff = {
        "keywords": keywords,
        "after_turns_without_progress": _optional(values["after_turns_without_progress"]),
    }
    return Parsed(values, {"handoff": handoff}, remap=_list_message("handoff.keywords", keywords))


PHONE_TEXT = (
    "voice_mode",
    "say_voice",
    "realtime_voice",
    "transfer_number",
    "transfer_caller_id",
    "silence_reprompts",
    "voicemail_message",
)


def parse_phone(form: FormData) -> Parsed:
    values: dict[str, Any] = {name: _text(form, name) for name in PHONE_TEXT}
    values["record_calls"] = _checked(form, "record_calls")
    values["warm_transfer_sms"] = _checked(form, "warm_transfer_sms")
    phone: dict[str, Any] = {
        "voice_mode": values["voice_mode"],
        "say_voice": _optional(values["say_voice"]),
        "realtime_voice": _optional(values["realtime_voice"]),
        "record_calls": values["record_calls"],
        "transfer_number": _optional(values["transfer_number"].replace(" ", "")),
        "transfer_caller_id": values["transfer_caller_id"],
        "warm_transfer_sms": values["warm_transfer_sms"],
        "voicemail_message": _optional(values["voicemail_message"]),
    }
    if values["silence_reprompts"]:
        phone["silence_reprompts"] = values["silence_reprompts"]
    return Parsed(values, {"phone": phone})


WIDGET_TEXT = (
    "primary_color",
    "accent_color",
    "position",
    "avatar_url",
    "privacy_notice",
    "allowed_origins",
)


def parse_widget(form: FormData) -> Parsed:
    values = {name: _text(form, name) for name in WIDGET_TEXT}
    origins = _lines(values["allowed_origins"], ",\n")
    widget = {
        "primary_color": _optional(values["primary_color"]),
        "accent_color": _optional(values["accent_color"]),
        "position": values["position"],
        "avatar_url": _optional(values["avatar_url"]),
        "privacy_notice": _optional(values["privacy_notice"]),
        "allowed_origins": origins,
    }
    remap = _list_message("widget.allowed_origins", origins)
    return Parsed(values, {"widget": widget}, remap=remap)


PARSERS: dict[str, Callable[[FormData], Parsed]] = {
    "basics": parse_basics,
    "llm": parse_llm,
    "qualification": parse_qualification,
    "faq": parse_faq,
    "tools": parse_tools,
    "knowledge": parse_knowledge,
    "hours": parse_hours,
    "handoff": parse_handoff,
    "phone": parse_phone,
    "widget": parse_widget,
}


# --- the saved draft as form values --------------------------------------------------------


def _day_text(weekly: list[s.OpeningRange], weekday: int) -> str:
    ranges = sorted((r.opens, r.closes) for r in weekly if r.weekday == weekday)
    return ", ".join(f"{opens}-{closes}" for opens, closes in ranges)


def form_values(agent: s.Agent) -> dict[str, Any]:
    """Every section's fields as the saved draft fills them."""
    hours, widget, phone = agent.business_hours, agent.widget, agent.phone
    return {
        "basics": {
            "name": agent.name,
            "kind": agent.kind,
            "language": agent.language,
            "persona_name": agent.persona_name or "",
            "greeting": agent.greeting or "",
            "instructions": agent.instructions or "",
            "price_info": agent.price_info or "",
        },
        "llm": {
            "connection_id": agent.llm.connection_id or "",
            "model": agent.llm.model or "",
            "temperature": f"{agent.llm.temperature:g}",
            "max_tokens": str(agent.llm.max_tokens),
        },
        "qualification": {
            "rows": [
                {
                    "_index": index,
                    "key": item.key,
                    "label_de": item.label.de or "",
                    "label_en": item.label.en or "",
                    "type": item.type,
                    "required": item.required,
                    "options": ", ".join(item.options or []),
                    "hint": item.hint or "",
                }
                for index, item in enumerate(agent.qualification)
            ]
        },
        "faq": {
            "rows": [
                {"_index": index, "question": pair.question, "answer": pair.answer}
                for index, pair in enumerate(agent.faq)
            ]
        },
        "tools": {"tools": list(agent.tools)},
        "knowledge": {
            "knowledge_base_ids": list(agent.knowledge_base_ids),
            "calendar_id": agent.calendar_id or "",
        },
        "hours": {
            "timezone": hours.timezone or "",
            "days": [_day_text(hours.weekly, weekday) for weekday in range(7)],
            "closed_dates": "\n".join(d.isoformat() for d in hours.closed_dates),
            "out_of_hours_message": hours.out_of_hours_message or "",
        },
        "handoff": {
            "keywords": ", ".join(agent.handoff.keywords),
            "after_turns_without_progress": str(agent.handoff.after_turns_without_progress or ""),
        },
        "phone": {
            **{name: getattr(phone, name) or "" for name in PHONE_TEXT},
            "silence_reprompts": str(phone.silence_reprompts),
            "record_calls": phone.record_calls,
            "warm_transfer_sms": phone.warm_transfer_sms,
        },
        "widget": {
            **{name: getattr(widget, name) or "" for name in WIDGET_TEXT[:-1]},
            "allowed_origins": "\n".join(widget.allowed_origins),
        },
    }
