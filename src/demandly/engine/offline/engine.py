"""The built-in offline conversation engine: a deterministic receptionist in German and English.

It implements the provider protocol (``stream(request)``) and is stateless: every turn it
replays the visitor's earlier messages through the same dialogue rules to recover where the
conversation stands (which field was asked for last, whether the summary was given, how often
in a row it did not understand), while the values captured so far come from the
``save_lead_details`` calls in the history, the record the turn loop keeps.

Per visitor message it answers (FAQ, opening hours, prices, thanks, goodbye, a request for a
person, or "I don't know that yet, I'll pass it on"), captures and validates qualification
values, and then steers back to the next missing required field. Time only enters through the
injectable clock, so the same history always gives the same reply.

Two things need a look-up first: answers from the agent's knowledge (``search_knowledge``,
sentence choice in knowledge.py) and the booking dialogue (booking.py). Such a call goes out
alone (``Reply.lookup``, no text); the turn loop runs it and calls ``stream`` again with the
result as the last message, and the replay finishes the reply from that result.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from demandly.engine.offline import booking, knowledge, texts
from demandly.engine.offline.extract import (
    Extraction,
    Invalid,
    extract,
    is_name_field,
    phone_example,
)
from demandly.engine.offline.faq import best_match
from demandly.engine.offline.hours import (
    Clock,
    describe_next,
    hours_answer,
    is_open,
    local_now,
    next_opening,
)
from demandly.engine.offline.intents import Intents, detect
from demandly.engine.offline.language import STOP_WORDS, phrases, words
from demandly.engine.offline.state import Continuation, DialogueState, Prompt, Reply, Turn
from demandly.engine.offline.texts import ask_field, field_phrase, label_of, lower_first, say
from demandly.engine.providers.base import (
    ChatMessage,
    CompletionRequest,
    FaqPair,
    Finished,
    ProviderEvent,
    QualificationField,
    QuickReplies,
    Sources,
    TextDelta,
    ToolCall,
    ToolCallEvent,
)

SAVE_LEAD = "save_lead_details"
REQUEST_HANDOFF = "request_handoff"
END_CONVERSATION = "end_conversation"
SEARCH_KNOWLEDGE = "search_knowledge"
_BOOKING_PROMPTS = frozenset({"booking_when", "slots", "confirm", "confirm_cancel"})
_MAX_QUERY = 300

# Reasons as the rest of the platform records them (end_reason is a short code).
HANDOFF_ASKED = "visitor asked for a person"
HANDOFF_NOT_UNDERSTOOD = "visitor not understood twice"
END_GOODBYE = "goodbye"
END_FINISHED = "finished"

_WORDS_PER_CHUNK = 4
_CONCERN_WORDS = phrases(
    "anliegen", "nachricht", "message", "concern", "grund", "reason", "frage", "question",
    "notiz", "notes", "note", "bemerkung", "comment", "kommentar", "request", "anfrage",
    "details", "beschreibung", "description", "wunsch",
)  # fmt: skip


class OfflineEngine:
    """The default provider when no LLM is configured; deterministic, German and English.

    ``clock`` returns the current time (default: now in the agent's time zone); it decides
    "open now" and is the base for relative dates such as "morgen".
    """

    name = "offline"
    # Its tool calls come with the finished answer: no second round with their results ...
    needs_tool_results = False
    # ... except for these: it looks something up, and answers once the result is in.
    tools_needing_results = frozenset({SEARCH_KNOWLEDGE, *booking.LOOKUPS})
    # It computes a reply whole, with no I/O: its events can go to the visitor together.
    answers_at_once = True

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock

    async def stream(self, request: CompletionRequest) -> AsyncIterator[ProviderEvent]:
        reply, call_prefix = self._respond(request)
        if reply is None:
            yield Finished(reason="stop")
            return
        if reply.lookup is None:  # a lookup goes out alone; the answer follows its result
            for chunk in _chunks(reply.text):
                yield TextDelta(text=chunk)
            if reply.quick_replies:
                yield QuickReplies(options=reply.quick_replies)
            if reply.sources:
                yield Sources(items=reply.sources)
        calls = _tool_calls(reply, request, call_prefix)
        for call in calls:
            yield ToolCallEvent(call=call)
        yield Finished(reason="tool_calls" if calls else "stop")

    def _respond(self, request: CompletionRequest) -> tuple[Reply | None, str]:
        """The reply to the conversation's last visitor message (or the greeting, or the rest
        of a reply that waited for a looked-up result), or None when that was already given
        (a call after the tool results); and the prefix for its tool call ids."""
        context = request.context
        tools = frozenset(t.name for t in request.tools)
        booking_only: frozenset[str] = frozenset()
        if booking.can_book(tools):
            context, booking_only = booking.with_contact_fields(context)
        turn = Turn(
            context=context,
            lang=texts.language_of(context.language),
            tools=tools,
            now=local_now(self._clock, context),
            booking_only=booking_only,
        )
        messages = [m for m in request.messages if m.role != "system"]
        if not messages:
            return _greeting_turn(turn, DialogueState()), "offline_0"
        reply, users, rounds = _replay(turn, messages)
        return reply, f"offline_{users}" if rounds == 0 else f"offline_{users}_{rounds}"


# --- replaying the history --------------------------------------------------------------------


def _failed_calls(messages: list[ChatMessage]) -> set[str]:
    failed = set()
    for message in messages:
        if message.role != "tool" or not message.tool_call_id or not message.content:
            continue
        try:
            result = json.loads(message.content)
        except (TypeError, ValueError):
            continue
        if isinstance(result, dict) and (result.get("ok") is False or "error" in result):
            failed.add(message.tool_call_id)
    return failed


def _saved_fields(call: ToolCall) -> dict[str, Any]:
    fields = call.arguments.get("fields") if isinstance(call.arguments, dict) else None
    return dict(fields) if isinstance(fields, dict) else {}


def _result(content: str | None) -> dict[str, Any]:
    try:
        result = json.loads(content or "")
    except (TypeError, ValueError):
        return {"ok": False, "error": "unreadable result"}
    return result if isinstance(result, dict) else {"ok": False, "error": "unexpected result"}


def _replay(turn: Turn, messages: list[ChatMessage]) -> tuple[Reply | None, int, int]:
    """Replay the visitor's messages and the results the engine waited for; the reply still
    to give (None when the last one was given), the number of visitor messages, and how many
    results that reply has taken in."""
    failed = _failed_calls(messages)
    saving = SAVE_LEAD in turn.tools
    state = DialogueState()
    saved: dict[str, Any] = {}
    calls: dict[str, ToolCall] = {}
    reply: Reply | None = None
    unanswered = False
    users = rounds = 0
    for message in messages:
        if message.role == "assistant":
            if message.content and not state.greeted and state.turn == 0:
                _replay_greeting(turn, state, message.content)
            state.greeted = state.greeted or bool(message.content)
            for call in message.tool_calls:
                calls[call.id] = call
                if call.name == SAVE_LEAD and call.id not in failed:
                    saved.update(_saved_fields(call))
            unanswered = False
        elif message.role == "user":
            users, rounds = users + 1, 0
            if saving:
                state.values = dict(saved)
            reply = _step(turn, state, message.content or "")
            state.greeted = True
            unanswered = True
        elif message.role == "tool":
            call = calls.get(message.tool_call_id or "")
            if reply is not None and call is not None and _awaited(reply, call):
                reply = _after_lookup(turn, state, reply, call.name, _result(message.content))
                rounds += 1
                unanswered = True
    return (reply if unanswered else None), users, rounds


def _awaited(reply: Reply, call: ToolCall) -> bool:
    return reply.lookup is not None and reply.lookup[0] == call.name


def _after_lookup(
    turn: Turn, state: DialogueState, reply: Reply, name: str, result: dict[str, Any]
) -> Reply:
    """Go on with a reply whose lookup result is in (its saves went out with the lookup)."""
    reply.lookup = None
    reply.saves = {}
    if name == SEARCH_KNOWLEDGE:
        _after_search(turn, state, reply, result)
    else:
        booking.after_result(turn, state, reply, name, result)
    return reply


def _after_search(turn: Turn, state: DialogueState, reply: Reply, result: dict[str, Any]) -> None:
    rest = state.continuation
    state.continuation = None
    if rest is None:
        return
    found = knowledge.answer_from(result, rest.text)
    if found is not None:
        reply.parts.append(found.text)
        reply.sources = found.sources
    else:
        unknown = "price_unknown" if rest.intents.price else "kb_unknown"
        reply.parts.append(say(turn.lang, unknown))
        _note_concern(turn, state, reply, rest.text)
    _finish_step(turn, state, reply, rest, answered=True)


def _replay_greeting(turn: Turn, state: DialogueState, said: str) -> None:
    """A greeting already in the history: ours (which asked for the first field) or one the
    channel wrote itself (which only asked how to help)."""
    ours = DialogueState()
    start = _greeting_turn(turn, ours).parts[-1]  # compared alone: "open now" may have changed
    if " ".join(said.split()).endswith(" ".join(start.split())):
        state.prompt, state.form_started = ours.prompt, ours.form_started
    else:
        state.prompt = Prompt("open")


# --- one visitor message ----------------------------------------------------------------------


def _greeting_turn(turn: Turn, state: DialogueState) -> Reply:
    reply = Reply(parts=_greeting(turn))
    state.greeted = True
    _gentle_start(turn, state, reply)
    return reply


def _greeting(turn: Turn) -> list[str]:
    context, lang = turn.context, turn.lang
    if context.greeting and context.greeting.strip():
        parts = [context.greeting.strip()]
    elif context.business_name:
        parts = [say(lang, "greeting", business=context.business_name, persona=_persona(turn))]
    else:
        parts = [say(lang, "greeting_nobusiness", persona=_persona(turn))]
    if context.opening_hours and not is_open(context, turn.now):
        parts.append(context.out_of_hours_message or say(lang, "out_of_hours_default"))
    return parts


def _persona(turn: Turn) -> str:
    return turn.context.persona_name or "Assistant"


def _gentle_start(turn: Turn, state: DialogueState, reply: Reply) -> None:
    first = _next_missing(turn, state)
    if first is None:
        reply.parts.append(say(turn.lang, "how_can_i_help"))
        state.prompt = Prompt("open")
        return
    ask = lower_first(ask_field(first, turn.lang))
    reply.parts.append(say(turn.lang, "greeting_form_start", ask=ask))
    state.form_started = True
    _set_prompt(turn, state, reply, Prompt("field", first.key))


def _step(turn: Turn, state: DialogueState, text: str) -> Reply:
    state.turn += 1
    lang, context = turn.lang, turn.context
    intents = detect(text, context.handoff_keywords)
    faq = best_match(context.faq, text) if context.faq else None
    faq_lookup = faq is not None and (intents.question or len(_content(text)) <= 3)
    found = extract(
        context,
        text,
        pending=state.pending,
        captured=state.values,
        intents=intents,
        lang=lang,
        now=turn.now,
        allow_text=not faq_lookup,
    )
    previous = dict(state.values)
    reply = Reply(saves=dict(found.values))
    state.values.update(found.values)

    if intents.handoff:
        return _handoff(turn, state, reply, HANDOFF_ASKED, "handoff")
    if _is_farewell(turn, state, intents):
        return _farewell(turn, state, reply, intents)

    greeted_now = False
    if intents.greeting and not state.greeted:
        reply.parts.extend(_greeting(turn))
        greeted_now = True
    elif intents.greeting and intents.only_courtesy:
        reply.parts.append(say(lang, "hello_again", state.turn))

    invalid = next((i for i in found.invalid if i.key not in found.values), None)
    # "nächsten Dienstag um 10" is no phone number, even when the phone was asked for.
    if (invalid is None or booking.is_wish(turn, text, intents)) and booking.takes_over(
        turn, state, text, intents, found
    ):
        if found.values:
            reply.parts.extend(_acknowledge(turn, state, found, previous, False))
        booking.step(turn, state, reply, text, intents)
        state.misunderstood = 0
        return reply

    answered = _answer(turn, state, reply, text, intents, faq if faq_lookup else None, found)
    rest = Continuation(text, intents, found, previous, greeted_now)
    if reply.lookup is not None:
        state.continuation = rest  # finished when the looked-up result is in
        return reply
    return _finish_step(turn, state, reply, rest, answered=answered)


def _finish_step(
    turn: Turn, state: DialogueState, reply: Reply, rest: Continuation, *, answered: bool
) -> Reply:
    """Acknowledge values, handle what was not understood, and steer to the next question."""
    lang, text, intents, found = turn.lang, rest.text, rest.intents, rest.found
    previous, greeted_now = rest.previous, rest.greeted_now
    invalid = next((i for i in found.invalid if i.key not in found.values), None)
    to_prompt = False
    if not found.values and invalid is None and not answered:
        to_prompt = _prompt_answers(turn, state, reply, intents)
    if intents.thanks and not answered and not found.values and not to_prompt:
        reply.parts.append(say(lang, "thanks_reply", state.turn))

    completes = bool(found.values) and not state.summary_given and _form_complete(turn, state)
    if found.values:
        reply.parts.extend(_acknowledge(turn, state, found, previous, completes))
    if invalid is not None:
        reply.parts.append(_invalid_text(turn, invalid))

    understood = bool(
        found.values
        or (invalid is not None and invalid.shaped)
        or answered
        or to_prompt
        or intents.greeting
        or intents.thanks
        or intents.affirm
        or intents.deny
        or intents.done
    )
    if not understood and invalid is None and len(_content(text)) >= 2:
        reply.parts.append(say(lang, "statement_noted", state.turn))
        _note_concern(turn, state, reply, text)
        understood = True

    if understood:
        state.misunderstood = 0
    else:
        state.misunderstood += 1
        if state.misunderstood >= 2 and REQUEST_HANDOFF in turn.tools:
            return _handoff(turn, state, reply, HANDOFF_NOT_UNDERSTOOD, "handoff_not_understood")
        if invalid is None:
            reply.parts.append(say(lang, "not_understood", state.turn))

    before = len(reply.parts)
    _next_prompt(turn, state, reply, invalid, answered, greeted_now, found)
    if not understood and len(reply.parts) == before:
        reply.parts.append(say(lang, "how_can_i_help"))
    return reply


def _answer(
    turn: Turn,
    state: DialogueState,
    reply: Reply,
    text: str,
    intents: Intents,
    faq: tuple[FaqPair, float] | None,
    found: Extraction,
) -> bool:
    """Answer what the visitor asked (FAQ, hours, prices), or say it will be passed on."""
    lang, context = turn.lang, turn.context
    searchable = SEARCH_KNOWLEDGE in turn.tools
    asked = intents.question or intents.price or intents.hours
    if faq is not None:
        reply.parts.append(faq[0].answer)
    elif intents.hours and (context.opening_hours or not searchable):
        reply.parts.append(hours_answer(context, turn.now, lang))
    elif intents.price and context.price_info:
        reply.parts.append(say(lang, "price", price_info=context.price_info))
    elif searchable and asked and _content(text) and not found.values and not found.invalid:
        reply.lookup = (SEARCH_KNOWLEDGE, {"query": text.strip()[:_MAX_QUERY]})
    elif intents.price:
        reply.parts.append(say(lang, "price_unknown"))
    elif booking.wish_it_cannot_book(turn, text, intents):
        reply.parts.append(say(lang, "booking_wish_noted"))
        _note_concern(turn, state, reply, text)
    elif intents.question and _content(text) and not found.values and not found.invalid:
        reply.parts.append(say(lang, "unknown_question"))
        _note_concern(turn, state, reply, text)
    else:
        return False
    return True


def _content(text: str) -> list[str]:
    return [w for w in words(text) if w not in STOP_WORDS]


def _is_farewell(turn: Turn, state: DialogueState, intents: Intents) -> bool:
    if intents.goodbye:
        return True
    if intents.question:
        return False
    if intents.done and not intents.deny:
        return True  # "Das war's" / "that's all": the visitor is leaving
    if state.prompt is not None and state.prompt.kind in _BOOKING_PROMPTS:
        return False  # "Nein" to "Soll ich buchen?" declines the slot, not the conversation
    if not (intents.deny and intents.only_courtesy):
        return False
    # A bare "Nein (danke)" ends only after "anything else?"; to a field it declines the field.
    kind = state.prompt.kind if state.prompt is not None else None
    if kind == "anything_else":
        return True
    return kind not in ("field", "optional") and _form_complete(turn, state)


def _prompt_answers(turn: Turn, state: DialogueState, reply: Reply, intents: Intents) -> bool:
    """A bare yes/no to what was asked last; True when it was answered here."""
    prompt = state.prompt
    lang = turn.lang
    if prompt is None:
        return False
    if prompt.kind == "field" and prompt.key and intents.deny and not intents.affirm:
        state.declined.add(prompt.key)
        reply.parts.append(say(lang, "decline_required"))
        return True
    if prompt.kind == "optional" and (intents.deny or intents.done):
        state.offered.update(f.key for f in turn.optional)
        reply.parts.extend([say(lang, "decline_optional"), say(lang, "anything_else")])
        state.prompt = Prompt("anything_else")
        return True
    if prompt.kind == "anything_else" and intents.affirm:
        reply.parts.append(say(lang, "affirm_open"))
        state.prompt = Prompt("open")
        return True
    return False


def _note_concern(turn: Turn, state: DialogueState, reply: Reply, text: str) -> None:
    """Keep an unanswered question or request in a free-text field meant for it, if any."""
    for item in turn.context.qualification:
        if item.type != "text" or item.key in state.values or is_name_field(item):
            continue
        label_words = set(words(item.key.replace("_", " ")))
        for label in item.labels.values():
            label_words.update(words(label))
        if label_words & _CONCERN_WORDS:
            value = text.strip()[:500]
            state.values[item.key] = value
            reply.saves[item.key] = value
            return


# --- replies ----------------------------------------------------------------------------------


def _acknowledge(
    turn: Turn, state: DialogueState, found: Extraction, previous: dict[str, Any], completes: bool
) -> list[str]:
    lang = turn.lang
    parts = []
    for key, value in found.values.items():
        item = turn.field(key)
        if item is not None and key in previous:
            shown = display_value(item, value, lang)
            label = field_phrase(item, lang) if lang == "en" else label_of(item, lang)
            parts.append(say(lang, "ack_correction", label=label, value=shown))
    if parts or completes:
        return parts
    name_field = next(
        (turn.field(k) for k in found.values if (f := turn.field(k)) and is_name_field(f)), None
    )
    if name_field is not None:
        return [say(lang, "ack_name", state.turn, name=found.values[name_field.key])]
    return [say(lang, "ack", state.turn)]


def _invalid_text(turn: Turn, invalid: Invalid) -> str:
    lang = turn.lang
    item = turn.field(invalid.key)
    if item is None:
        return ""
    hint = item.hint or _type_hint(turn, item)
    if not invalid.shaped:
        return f"{say(lang, 'not_understood', 0)} {hint}"
    label = field_phrase(item, lang) if lang == "en" else label_of(item, lang)
    intro = say(lang, "invalid_intro", raw=invalid.raw[:80], label=label)
    return f"{intro} {hint}"


def _type_hint(turn: Turn, item: QualificationField) -> str:
    lang = turn.lang
    if item.type == "email":
        return say(lang, "hint_email")
    if item.type == "phone":
        return say(lang, "hint_phone", example=phone_example(turn.context.phone_region or "DE"))
    if item.type == "number":
        return say(lang, "hint_number")
    if item.type == "date":
        return say(lang, "hint_date")
    if item.type == "choice":
        return say(lang, "hint_choice", options=texts.join_options(item.options, lang))
    if item.type == "boolean":
        return say(lang, "hint_boolean")
    label = field_phrase(item, lang) if lang == "en" else label_of(item, lang)
    return say(lang, "hint_text", label=label)


def display_value(item: QualificationField, value: Any, lang: str) -> str:
    if item.type == "phone" and isinstance(value, str):
        import phonenumbers

        try:
            number = phonenumbers.parse(value, None)
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        except phonenumbers.NumberParseException:
            return value
    if item.type == "date" and isinstance(value, str):
        try:
            return texts.format_date(datetime.fromisoformat(value).date(), lang)
        except ValueError:
            return value
    if isinstance(value, bool):
        return say(lang, "yes" if value else "no")
    if isinstance(value, float) and lang == "de":
        return f"{value:g}".replace(".", ",")
    return str(value)


def _summary(turn: Turn, state: DialogueState) -> str:
    items = [
        f"{label_of(f, turn.lang).rstrip(' ?')}: {display_value(f, state.values[f.key], turn.lang)}"
        for f in turn.context.qualification
        if f.key in state.values
    ]
    return say(turn.lang, "summary", summary=", ".join(items))


def _handoff(turn: Turn, state: DialogueState, reply: Reply, reason: str, phrase: str) -> Reply:
    lang, context = turn.lang, turn.context
    if REQUEST_HANDOFF not in turn.tools:
        reply.parts.append(say(lang, "handoff_unavailable"))
        _next_prompt(turn, state, reply, None, True, False, Extraction())
        return reply
    if phrase == "handoff" and context.opening_hours and not is_open(context, turn.now):
        start = next_opening(context, turn.now)
        if start is None:
            reply.parts.append(say(lang, "handoff_closed_unknown"))
        else:
            reply.parts.append(
                say(lang, "handoff_closed", next=describe_next(start, turn.now, lang))
            )
    else:
        reply.parts.append(say(lang, phrase))
    reply.handoff = reason
    state.misunderstood = 0
    state.prompt = None
    return reply


def _farewell(turn: Turn, state: DialogueState, reply: Reply, intents: Intents) -> Reply:
    lang = turn.lang
    name = next(
        (state.values[f.key] for f in turn.context.qualification
         if is_name_field(f) and f.key in state.values),
        None,
    )  # fmt: skip
    suffix = f", {name}" if name else ""
    reply.parts.append(say(lang, "farewell_thanked" if intents.thanks else "farewell", name=suffix))
    if turn.required and not state.values:
        reply.parts.append(say(lang, "farewell_incomplete"))
    reply.end = END_GOODBYE if intents.goodbye else END_FINISHED
    state.prompt = None
    return reply


# --- what to ask next -------------------------------------------------------------------------


def _form_complete(turn: Turn, state: DialogueState) -> bool:
    return all(f.key in state.values or f.key in state.declined for f in turn.required)


def _next_missing(turn: Turn, state: DialogueState) -> QualificationField | None:
    return next(
        (f for f in turn.required if f.key not in state.values and f.key not in state.declined),
        None,
    )


def _next_optional(turn: Turn, state: DialogueState) -> QualificationField | None:
    return next(
        (f for f in turn.optional if f.key not in state.values and f.key not in state.offered),
        None,
    )


def _set_prompt(turn: Turn, state: DialogueState, reply: Reply, prompt: Prompt) -> None:
    state.prompt = prompt
    item = turn.field(prompt.key)
    if item is None:
        return
    if item.type == "choice":
        reply.quick_replies = tuple(item.options)
    elif item.type == "boolean":
        reply.quick_replies = (say(turn.lang, "yes"), say(turn.lang, "no"))


def _next_prompt(
    turn: Turn,
    state: DialogueState,
    reply: Reply,
    invalid: Invalid | None,
    answered: bool,
    greeted_now: bool,
    found: Extraction,
) -> None:
    lang = turn.lang
    previous = state.prompt
    if invalid is not None:
        kind = "optional" if previous and previous.kind == "optional" else "field"
        _set_prompt(turn, state, reply, Prompt(kind, invalid.key))
        return
    missing = _next_missing(turn, state)
    if missing is not None:
        ask = ask_field(missing, lang)
        if greeted_now and not state.form_started:
            reply.parts.append(say(lang, "greeting_form_start", ask=lower_first(ask)))
        elif not state.form_started:
            reply.parts.extend([say(lang, "form_start"), ask])
        elif answered and previous == Prompt("field", missing.key):
            reply.parts.extend([say(lang, "back_to_form", state.turn), ask])
        else:
            reply.parts.append(ask)
        state.form_started = True
        _set_prompt(turn, state, reply, Prompt("field", missing.key))
        return
    if turn.required and not state.summary_given and state.values:
        state.summary_given = True
        reply.parts.append(_summary(turn, state))
        _offer_optional_or_close(turn, state, reply, first=True)
        return
    if previous is not None and previous.kind == "optional" and previous.key in found.values:
        _offer_optional_or_close(turn, state, reply, first=False)
        return
    if greeted_now:
        reply.parts.append(say(lang, "how_can_i_help"))
        state.prompt = Prompt("open")
        return
    already_asked = previous is not None and previous.kind == "anything_else"
    if answered or (found.values and not already_asked):
        reply.parts.append(say(lang, "anything_else"))
        state.prompt = Prompt("anything_else")


def _offer_optional_or_close(
    turn: Turn, state: DialogueState, reply: Reply, *, first: bool
) -> None:
    optional = _next_optional(turn, state)
    if optional is None:
        reply.parts.append(say(turn.lang, "anything_else"))
        state.prompt = Prompt("anything_else")
        return
    state.offered.add(optional.key)
    ask = ask_field(optional, turn.lang)
    reply.parts.append(say(turn.lang, "optional_offer", ask=ask) if first else ask)
    _set_prompt(turn, state, reply, Prompt("optional", optional.key))


# --- output -----------------------------------------------------------------------------------


def _chunks(text: str) -> list[str]:
    """A few word groups, so the reply streams like a model's would."""
    tokens = text.split(" ")
    groups = [
        " ".join(tokens[i : i + _WORDS_PER_CHUNK]) for i in range(0, len(tokens), _WORDS_PER_CHUNK)
    ]
    return [group + (" " if index < len(groups) - 1 else "") for index, group in enumerate(groups)]


def _tool_calls(reply: Reply, request: CompletionRequest, prefix: str) -> list[ToolCall]:
    offered = {t.name for t in request.tools}
    wanted: list[tuple[str, dict[str, Any]]] = []
    if reply.saves:
        wanted.append((SAVE_LEAD, {"fields": reply.saves}))
    if reply.handoff:
        wanted.append((REQUEST_HANDOFF, {"reason": reply.handoff}))
    if reply.end:
        wanted.append((END_CONVERSATION, {"reason": reply.end}))
    if reply.lookup:
        wanted.append(reply.lookup)
    return [
        ToolCall(id=f"{prefix}_{index}", name=name, arguments=arguments)
        for index, (name, arguments) in enumerate(
            (name, arguments) for name, arguments in wanted if name in offered
        )
    ]
