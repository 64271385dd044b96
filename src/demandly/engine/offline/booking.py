"""Booking an appointment by dialogue (German and English).

The visitor asks for an appointment ("Ich hätte gern einen Termin morgen Nachmittag",
"Can I book an appointment for Friday at 3pm?"). The engine first makes sure it has a name and
an e-mail address or phone number (asking through the usual field prompts), then calls
``check_availability`` for the wished window and offers up to three of the nearest free slots
as quick replies. The visitor picks one by number ("den zweiten"), by time ("um 11") or by
tapping it, or asks for others ("keiner passt": the next ones after the last offered; "später
am Tag": later on the same day); the engine asks "Soll ich ... buchen?" and on yes calls
``book_appointment``, then replies with the date and the manage link. An appointment booked in
the conversation can be moved ("verschieben") or cancelled ("absagen") the same way.

Like the rest of the engine this is stateless: the state is rebuilt each turn by replaying the
visitor's messages and the results of the calls in the history.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta, tzinfo
from typing import Any, Literal

from demandly.engine.offline.extract import Extraction, is_name_field
from demandly.engine.offline.hours import zone
from demandly.engine.offline.intents import Intents
from demandly.engine.offline.language import fold, has_any, phrases
from demandly.engine.offline.state import (
    Appointment,
    DialogueState,
    Prompt,
    Reply,
    Slot,
    Turn,
)
from demandly.engine.offline.texts import (
    ask_field,
    format_moment,
    join_options,
    say,
    slot_label,
)
from demandly.engine.offline.when import PartOfDay, When, parse_when
from demandly.engine.providers.base import AgentContext, QualificationField

CHECK = "check_availability"
BOOK = "book_appointment"
RESCHEDULE = "reschedule_appointment"
CANCEL = "cancel_appointment"
LOOKUPS = frozenset({CHECK, BOOK, RESCHEDULE, CANCEL})
Purpose = Literal["offer", "more", "more_days", "later", "wider"]

OFFER = 3  # slots offered at a time
# How far ahead "any time" and "vormittags" (without a day) look.
_HORIZON_DAYS = 14

_BOOK_WORDS = phrases(
    "vereinbaren", "buchen", "reservieren", "einbuchen", "eintragen", "appointment",
    "appointments", "book", "booking", "schedule", "reserve", "slot", "slots",
)  # fmt: skip
_APPOINTMENT = re.compile(r"termin(?!al)|\bappointment")
# Asking for an appointment, not about one.
_WISH = re.compile(
    r"(?:hatte|mochte|will|brauche|suche|bekomme|kriege|gern|gerne)\b.*\btermin"
    r"|\btermin\w*\b.*\b(?:vereinbaren|buchen|machen|ausmachen|bekommen|haben)"
    r"|\b(?:book|schedule|make|get|need|want|like)\b.*\bappointment"
)
_CANCEL_WORDS = phrases(
    "absagen", "stornieren", "storno", "stornierung", "abbestellen", "canceln", "cancel",
    "cancellation", "call off",
)  # fmt: skip
# "Ich möchte den Termin absagen" and the separated "Sagen Sie den Termin bitte ab".
_CANCEL_SPLIT = re.compile(r"\bsag\w*\b.*\bab\b|\babzusagen\b|\bcancel\w*\b")
# "2", "Nr. 2", "den 2." (not "um 2": that is a time).
_NUMBER_PICK = re.compile(
    r"^(?:(?:den|die|der|the|nummer|number|option|nr)\.?\s+)?(\d)\.?(?:\s+(?:bitte|please))?$"
)
_RESCHEDULE_WORDS = phrases(
    "verschieben", "verlegen", "umbuchen", "umlegen", "reschedule", "move", "postpone",
    "anderen termin", "another time", "different time", "change my appointment",
)  # fmt: skip
_NONE_FIT = phrases(
    "keiner", "keine davon", "keiner davon", "passt nicht", "passen nicht", "passt mir nicht",
    "geht nicht", "gehen nicht", "andere termine", "andere zeiten", "weitere termine",
    "none", "neither", "none of these", "none of them", "doesn't work", "does not work",
    "don't work", "doesn't suit", "don't suit", "nothing fits", "other times", "other slots",
    "more options", "any others", "something else",
)  # fmt: skip
_LATER = phrases(
    "spater", "spaeter", "spater am tag", "later", "later that day", "later in the day",
    "later on",
)  # fmt: skip
_ORDINALS = {
    0: phrases("erste", "ersten", "erster", "erstes", "first", "1st", "nummer 1", "number 1",
               "option 1"),
    1: phrases("zweite", "zweiten", "zweiter", "zweites", "second", "2nd", "nummer 2",
               "number 2", "option 2", "mittlere", "mittleren", "middle"),
    2: phrases("dritte", "dritten", "dritter", "drittes", "third", "3rd", "nummer 3",
               "number 3", "option 3"),
    -1: phrases("letzte", "letzten", "letzter", "letztes", "last", "last one"),
}  # fmt: skip


# --- contact details --------------------------------------------------------------------------

_CONTACT_FIELDS = (
    QualificationField(key="name", labels={"de": "Name", "en": "Name"}, required=False),
    QualificationField(
        key="email", labels={"de": "E-Mail-Adresse", "en": "Email"}, type="email", required=False
    ),
    QualificationField(
        key="phone",
        labels={"de": "Telefonnummer", "en": "Phone number"},
        type="phone",
        required=False,
    ),
)


def can_book(tools: frozenset[str]) -> bool:
    return CHECK in tools and BOOK in tools


def with_contact_fields(context: AgentContext) -> tuple[AgentContext, frozenset[str]]:
    """The context with name, e-mail and phone fields for the booking where the agent's form
    has none (captured like any field, but never asked for outside the booking)."""
    qualification = context.qualification
    keys = {f.key for f in qualification}
    added = []
    for item in _CONTACT_FIELDS:
        has_kind = any(
            is_name_field(f) if item.key == "name" else f.type == item.type for f in qualification
        )
        if not has_kind and item.key not in keys:
            added.append(item)
    if not added:
        return context, frozenset()
    extended = replace(context, qualification=(*qualification, *added))
    return extended, frozenset(f.key for f in added)


def _contact_field(turn: Turn, kind: str) -> QualificationField | None:
    for item in turn.context.qualification:
        if (kind == "name" and is_name_field(item)) or (kind != "name" and item.type == kind):
            return item
    return None


def _value(turn: Turn, state: DialogueState, kind: str) -> Any:
    item = _contact_field(turn, kind)
    return state.values.get(item.key) if item is not None else None


def _missing_contact(turn: Turn, state: DialogueState) -> QualificationField | None:
    if not _value(turn, state, "name"):
        return _contact_field(turn, "name")
    if _value(turn, state, "email") or _value(turn, state, "phone"):
        return None
    email = _contact_field(turn, "email")
    return email if email is not None else _contact_field(turn, "phone")


# --- reading the visitor ------------------------------------------------------------------------


def _cancels(folded: str) -> bool:
    return has_any(folded, _CANCEL_WORDS) or bool(_CANCEL_SPLIT.search(folded))


def _wants_booking(folded: str, intents: Intents) -> bool:
    if intents.price or intents.hours:
        return False  # "Was kostet ein Termin?" asks about prices
    return bool(_APPOINTMENT.search(folded)) or has_any(folded, _BOOK_WORDS)


def is_wish(turn: Turn, text: str, intents: Intents) -> bool:
    """An appointment wish the engine can act on ("Termin nächsten Dienstag um 10")."""
    return can_book(turn.tools) and _wants_booking(fold(text), intents)


def wish_it_cannot_book(turn: Turn, text: str, intents: Intents) -> bool:
    """An appointment wish to an agent without a calendar: it is passed on, not booked.
    A question that only mentions an appointment ("Can I bring my dog to the appointment?")
    is no wish."""
    if can_book(turn.tools):
        return False
    folded = fold(text)
    return bool(_WISH.search(folded)) and _wants_booking(folded, intents)


def takes_over(
    turn: Turn, state: DialogueState, text: str, intents: Intents, found: Extraction
) -> bool:
    """Whether this message belongs to the booking dialogue."""
    if not can_book(turn.tools):
        return False
    booking = state.booking
    folded = fold(text)
    kind = state.prompt.kind if state.prompt is not None else None
    if kind in ("slots", "confirm", "confirm_cancel", "booking_when"):
        return not intents.question or _understood_in_dialogue(state, text, folded, turn.now)
    if booking.appointment is not None and (
        (CANCEL in turn.tools and _cancels(folded))
        or (RESCHEDULE in turn.tools and has_any(folded, _RESCHEDULE_WORDS))
    ):
        return True
    if booking.offered and _free_to_pick(turn, state) and _pick(state, text, turn.now):
        return True  # back to the offered slots after a question in between
    if booking.waiting_for_contact and (found.values or _missing_contact(turn, state) is None):
        return True
    return _wants_booking(folded, intents)


def _free_to_pick(turn: Turn, state: DialogueState) -> bool:
    """No field is waiting for an answer that "2" or "den ersten" could be (a number, a
    choice, free text); e-mail and phone values cannot be mistaken for a pick."""
    item = turn.field(state.pending)
    return item is None or item.type in ("email", "phone")


def _understood_in_dialogue(state: DialogueState, text: str, folded: str, now: datetime) -> bool:
    return bool(
        parse_when(text, now)
        or has_any(folded, _NONE_FIT)
        or has_any(folded, _LATER)
        or _pick(state, text, now) is not None
        or _wants_booking(folded, Intents())
    )


# --- the dialogue -------------------------------------------------------------------------------


def step(turn: Turn, state: DialogueState, reply: Reply, text: str, intents: Intents) -> None:
    """Answer a message of the booking dialogue (``takes_over`` said it is one)."""
    booking = state.booking
    folded = fold(text)
    kind = state.prompt.kind if state.prompt is not None else None
    if intents.done and kind in ("slots", "confirm", "booking_when"):
        booking.offered, booking.proposed, booking.shown_until = (), None, None
        reply.parts.append(say(turn.lang, "booking_dropped"))
        _anything_else(turn, state, reply)
        return
    if kind == "confirm_cancel":
        if intents.affirm and not intents.deny:
            _call(state, reply, CANCEL, {"appointment_id": _appointment_id(state)})
            return
        if intents.deny:
            reply.parts.append(say(turn.lang, "cancel_kept"))
            _anything_else(turn, state, reply)
            return
    if kind == "confirm" and booking.proposed is not None:
        if intents.affirm and not intents.deny:
            _book(turn, state, reply, booking.proposed)
            return
        if intents.deny and not has_any(folded, _NONE_FIT) and not parse_when(text, turn.now):
            reply.parts.append(say(turn.lang, "booking_declined"))
            booking.proposed = None
            _offer(turn, state, reply, booking.offered, "slots_offer")
            return
    if booking.appointment is not None and CANCEL in turn.tools and _cancels(folded):
        moment = booking.appointment.start
        when = format_moment(moment, turn.lang) if moment else ""
        reply.parts.append(say(turn.lang, "cancel_confirm", when=when))
        _set(state, reply, Prompt("confirm_cancel"), turn)
        return
    if (
        booking.appointment is not None
        and RESCHEDULE in turn.tools
        and has_any(folded, _RESCHEDULE_WORDS)
    ):
        booking.mode = "reschedule"
        booking.offered, booking.proposed, booking.shown_until = (), None, None
        wish = parse_when(text, turn.now)
        if wish is None:
            moment = booking.appointment.start
            when = format_moment(moment, turn.lang) if moment else ""
            reply.parts.append(say(turn.lang, "reschedule_when", when=when))
            _set(state, reply, Prompt("booking_when"), turn)
            return
        _check(turn, state, reply, wish, "offer")
        return
    offered = bool(booking.offered)
    if offered and _in_offer(turn, state, reply, text, folded, intents):
        return
    wish = parse_when(text, turn.now)
    if _wants_booking(folded, intents) or wish is not None or booking.waiting_for_contact:
        booking.wish = wish if wish is not None else booking.wish
        _start(turn, state, reply)
        return
    reply.parts.append(say(turn.lang, "slots_which"))
    _set(state, reply, state.prompt or Prompt("slots"), turn)


def _in_offer(
    turn: Turn, state: DialogueState, reply: Reply, text: str, folded: str, intents: Intents
) -> bool:
    """A reply to offered slots: a pick, "none of these", "later that day" or a new wish."""
    booking = state.booking
    picked = _pick(state, text, turn.now)
    if picked is None and len(booking.offered) == 1 and intents.affirm and not intents.deny:
        picked = booking.offered[0]
    if picked is not None:
        _propose(turn, state, reply, picked)
        return True
    reference = booking.shown_until
    if has_any(folded, _LATER) and reference is not None:
        _check(turn, state, reply, _rest_of_day(reference, None), "later")
        return True
    wish = parse_when(text, turn.now)
    if wish is not None and not wish.has_day and reference is not None:
        wish = wish.on(booking.offered[0].start.date())
    if wish is not None:
        booking.wish = wish
        _check(turn, state, reply, wish, "offer")
        return True
    if has_any(folded, _NONE_FIT) or (intents.deny and not intents.affirm):
        if reference is None:
            return False
        part = booking.wish.part_of_day if booking.wish else None
        _check(turn, state, reply, _rest_of_day(reference, part), "more")
        return True
    return False


def _rest_of_day(reference: datetime, part: PartOfDay | None) -> When:
    """The slots after ``reference`` on its day (check_availability's after_time applies to
    every day, so the days after are a second check: ``_more_days``)."""
    day = reference.date()
    return When(day, day, part, reference.time().replace(tzinfo=None), True, exclusive=True)


def _more_days(turn: Turn, state: DialogueState, reply: Reply, found: list[Slot]) -> None:
    """ "Keiner passt" and the rest of the day had too few: look at the following days too."""
    booking = state.booking
    reference = booking.shown_until
    assert reference is not None
    wish = booking.wish or When()
    start = reference.date() + timedelta(days=1)
    following = When(start, None, wish.part_of_day, wish.at, wish.after)
    booking.found = tuple(found)
    _check(turn, state, reply, following, "more_days", keep_days=True, limit=OFFER - len(found))


def _start(turn: Turn, state: DialogueState, reply: Reply) -> None:
    """A booking wish: ask for the contact details still missing, else look for slots."""
    booking = state.booking
    missing = _missing_contact(turn, state)
    if missing is not None:
        if not booking.waiting_for_contact:
            has_name = _value(turn, state, "name")
            reply.parts.append(
                say(turn.lang, "booking_contact_reach" if has_name else "booking_contact")
            )
        booking.waiting_for_contact = True
        reply.parts.append(ask_field(missing, turn.lang))
        _set(state, reply, Prompt("field", missing.key), turn)
        return
    booking.waiting_for_contact = False
    _check(turn, state, reply, booking.wish, "offer")


def _check(
    turn: Turn,
    state: DialogueState,
    reply: Reply,
    wish: When | None,
    purpose: Purpose,
    *,
    keep_days: bool = False,
    limit: int = OFFER,
) -> None:
    booking = state.booking
    args = _window(turn, wish, keep_days=keep_days)
    args["limit"] = limit
    booking.purpose = purpose
    booking.checked = args
    booking.wish = wish if purpose == "offer" else booking.wish
    _call(state, reply, CHECK, args)


def _window(turn: Turn, wish: When | None, *, keep_days: bool = False) -> dict[str, Any]:
    """check_availability arguments for a wish; ``keep_days`` leaves the end open (the tool's
    own booking window applies)."""
    if wish is None:
        return {}
    start, end = wish.date_from, wish.date_to
    if start is None:
        today = turn.now.date()
        if wish.at is not None and wish.part_of_day is None and not wish.after:
            # "um 11" with no day: today if still to come, else tomorrow.
            later_today = wish.at > turn.now.time().replace(tzinfo=None)
            start = end = today if later_today else today + timedelta(days=1)
        else:
            start, end = today, today + timedelta(days=_HORIZON_DAYS)
    args: dict[str, Any] = {"date_from": start.isoformat()}
    if end is not None and not keep_days:
        args["date_to"] = end.isoformat()
    if wish.part_of_day is not None:
        args["part_of_day"] = wish.part_of_day
    if wish.at is not None:
        args["after_time"] = _after_time(wish)
    return args


def _after_time(wish: When) -> str:
    """check_availability's ``after_time`` is exclusive: "um 10" and "ab 10" include 10:00,
    "later than the 10:00 slot" (``exclusive``) does not."""
    assert wish.at is not None
    moment = datetime.combine(datetime.min.date(), wish.at)
    if not wish.exclusive:
        moment -= timedelta(minutes=1)
    return moment.strftime("%H:%M")


def _propose(turn: Turn, state: DialogueState, reply: Reply, slot: Slot) -> None:
    state.booking.proposed = slot
    phrase = "reschedule_confirm" if state.booking.mode == "reschedule" else "booking_confirm"
    reply.parts.append(say(turn.lang, phrase, when=format_moment(slot.start, turn.lang)))
    _set(state, reply, Prompt("confirm"), turn)


def _book(turn: Turn, state: DialogueState, reply: Reply, slot: Slot) -> None:
    booking = state.booking
    if booking.mode == "reschedule" and RESCHEDULE in turn.tools:
        _call(
            state, reply, RESCHEDULE, {"appointment_id": _appointment_id(state), "start": slot.raw}
        )
        return
    args: dict[str, Any] = {"start": slot.raw, "name": str(_value(turn, state, "name") or "")}
    for kind in ("email", "phone"):
        if value := _value(turn, state, kind):
            args[kind] = value
    _call(state, reply, BOOK, args)


def _appointment_id(state: DialogueState) -> str | None:
    appointment = state.booking.appointment
    return appointment.id if appointment is not None else None


def _call(state: DialogueState, reply: Reply, name: str, args: dict[str, Any]) -> None:
    reply.lookup = (name, args)
    state.prompt = None


def _set(state: DialogueState, reply: Reply, prompt: Prompt, turn: Turn) -> None:
    state.prompt = prompt
    if prompt.kind == "confirm" or prompt.kind == "confirm_cancel":
        reply.quick_replies = (say(turn.lang, "yes"), say(turn.lang, "no"))


def _anything_else(turn: Turn, state: DialogueState, reply: Reply) -> None:
    reply.parts.append(say(turn.lang, "anything_else"))
    state.prompt = Prompt("anything_else")


def _offer(
    turn: Turn, state: DialogueState, reply: Reply, slots: tuple[Slot, ...], phrase: str
) -> None:
    booking = state.booking
    booking.offered = slots
    latest = max(s.start for s in slots)
    booking.shown_until = max(latest, booking.shown_until or latest)
    labels = [slot_label(s.start, turn.lang) for s in slots]
    if len(slots) == 1 and phrase == "slots_offer":
        phrase = "slots_offer_one"
    listed = join_options(labels, turn.lang)
    reply.parts.append(say(turn.lang, phrase, slots=listed))
    reply.quick_replies = (*labels, say(turn.lang, "none_fit"))
    state.prompt = Prompt("slots")


# --- picking an offered slot --------------------------------------------------------------------


def _pick(state: DialogueState, text: str, now: datetime) -> Slot | None:
    offered = state.booking.offered
    if not offered:
        return None
    folded = fold(text).strip(" .!?")
    for slot_ in offered:
        for lang in ("de", "en"):
            if fold(slot_label(slot_.start, lang)) in folded:
                return slot_
    number = _NUMBER_PICK.match(folded)
    if number and 1 <= int(number[1]) <= len(offered):
        return offered[int(number[1]) - 1]
    for index, group in _ORDINALS.items():
        if has_any(folded, group) and -len(offered) <= index < len(offered):
            return offered[index]
    wish = parse_when(text, now)
    if wish is not None and wish.at is not None and not wish.after:
        for slot_ in offered:
            same_day = not wish.has_day or slot_.start.date() == wish.date_from
            if same_day and slot_.start.time().replace(tzinfo=None) == wish.at:
                return slot_
    return None


# --- results ------------------------------------------------------------------------------------


def slots_of(result: dict[str, Any], tz: tzinfo) -> list[Slot]:
    raw = result.get("slots")
    found = []
    for item in raw if isinstance(raw, list) else []:
        value = item.get("start") if isinstance(item, dict) else item
        if not isinstance(value, str):
            continue
        moment = _moment(value, tz)
        if moment is not None:
            found.append(Slot(start=moment, raw=value))
    return sorted(found, key=lambda s: s.start)


def _moment(value: Any, tz: tzinfo) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment.astimezone(tz)


def _ok(result: dict[str, Any]) -> bool:
    return result.get("ok") is not False and "error" not in result


def after_result(
    turn: Turn, state: DialogueState, reply: Reply, name: str, result: dict[str, Any]
) -> None:
    """Finish the reply with the result of the call it waited for."""
    if name == CHECK:
        _after_check(turn, state, reply, result)
    elif name in (BOOK, RESCHEDULE):
        _after_book(turn, state, reply, name, result)
    elif name == CANCEL:
        _after_cancel(turn, state, reply, result)


def _after_check(turn: Turn, state: DialogueState, reply: Reply, result: dict[str, Any]) -> None:
    booking = state.booking
    lang = turn.lang
    if not _ok(result):
        reply.parts.append(say(lang, "slots_failed"))
        _anything_else(turn, state, reply)
        return
    slots = slots_of(result, zone(turn.context.timezone))
    if booking.purpose in ("more", "later") and booking.shown_until is not None:
        slots = [s for s in slots if s.start > booking.shown_until]
    if booking.purpose == "more" and len(slots) < OFFER:
        _more_days(turn, state, reply, slots[:OFFER])
        return
    if booking.purpose == "more_days":
        slots, booking.found = [*booking.found, *slots], ()
    slots = slots[:OFFER]
    if not slots:
        _nothing_free(turn, state, reply)
        return
    wish = booking.wish
    first = slots[0]
    exact = (
        booking.purpose == "offer"
        and wish is not None
        and wish.at is not None
        and not wish.after
        and first.start.time().replace(tzinfo=None) == wish.at
        and (wish.date_from is None or first.start.date() == wish.date_from)
    )
    phrase = {
        "more": "slots_more",
        "more_days": "slots_more",
        "later": "slots_later",
        "wider": "slots_wider",
    }.get(booking.purpose, "slots_offer")
    if exact:
        booking.offered = tuple(slots)
        booking.shown_until = max(s.start for s in slots)
        _propose(turn, state, reply, first)
        return
    _offer(turn, state, reply, tuple(slots), phrase)


def _nothing_free(turn: Turn, state: DialogueState, reply: Reply) -> None:
    booking = state.booking
    lang = turn.lang
    if booking.purpose == "offer" and "date_from" in booking.checked:
        # Nothing on the wished day: look at the next free slots after it instead.
        last = booking.checked.get("date_to") or booking.checked["date_from"]
        start = max(
            datetime.fromisoformat(last).date() + timedelta(days=1),
            turn.now.date(),
        )
        wider = When(start, None, None, None, False)
        _check(turn, state, reply, wider, "wider", keep_days=True)
        booking.wish = wider
        return
    phrase = {"more_days": "slots_no_more", "later": "slots_no_later"}.get(
        booking.purpose, "slots_none"
    )
    reply.parts.append(say(lang, phrase))
    state.prompt = Prompt("booking_when")


def _after_book(
    turn: Turn, state: DialogueState, reply: Reply, name: str, result: dict[str, Any]
) -> None:
    booking = state.booking
    lang = turn.lang
    proposed = booking.proposed
    if not _ok(result):
        alternatives = slots_of({"slots": result.get("alternatives")}, zone(turn.context.timezone))
        remaining = tuple(alternatives[:OFFER]) or tuple(
            s for s in booking.offered if s != proposed
        )
        booking.proposed = None
        if _is_conflict(result) and remaining:
            reply.parts.append(say(lang, "slot_taken"))
            _offer(turn, state, reply, remaining, "slots_offer")
        elif _is_conflict(result):
            reply.parts.append(say(lang, "slot_taken"))
            reply.parts.append(say(lang, "booking_when"))
            state.prompt = Prompt("booking_when")
        else:
            reply.parts.append(say(lang, "booking_failed"))
            _anything_else(turn, state, reply)
        return
    appointment = _appointment_of(result, turn, proposed)
    booking.appointment = appointment
    booking.offered, booking.proposed, booking.shown_until = (), None, None
    moment = appointment.start or (proposed.start if proposed else None)
    when = format_moment(moment, lang) if moment else ""
    if name == RESCHEDULE:
        reply.parts.append(say(lang, "rescheduled", when=when))
    else:
        reply.parts.append(say(lang, "booked", when=when))
        if _value(turn, state, "email"):
            reply.parts.append(say(lang, "booked_email"))
    if appointment.manage_url:
        reply.parts.append(say(lang, "manage_link", url=appointment.manage_url))
    booking.mode = "book"
    state.summary_given = True  # the booking confirmation replaces the form's summary
    _anything_else(turn, state, reply)


def _is_conflict(result: dict[str, Any]) -> bool:
    error = fold(str(result.get("error") or result.get("reason") or ""))
    return any(word in error for word in ("taken", "conflict", "vergeben", "unavailable", "slot"))


def _appointment_of(result: dict[str, Any], turn: Turn, proposed: Slot | None) -> Appointment:
    data = result.get("appointment") if isinstance(result.get("appointment"), dict) else result
    tz = zone(turn.context.timezone)
    start = _moment(data.get("start"), tz) or (proposed.start if proposed else None)
    identifier = data.get("id") or data.get("appointment_id") or result.get("appointment_id")
    url = data.get("manage_url") or result.get("manage_url") or result.get("manage_link")
    return Appointment(
        id=str(identifier) if identifier else None,
        start=start,
        manage_url=str(url) if url else None,
    )


def _after_cancel(turn: Turn, state: DialogueState, reply: Reply, result: dict[str, Any]) -> None:
    booking = state.booking
    lang = turn.lang
    if not _ok(result):
        reply.parts.append(say(lang, "cancel_failed"))
        _anything_else(turn, state, reply)
        return
    moment = booking.appointment.start if booking.appointment else None
    reply.parts.append(say(lang, "cancelled", when=format_moment(moment, lang) if moment else ""))
    booking.appointment = None
    _anything_else(turn, state, reply)
