# ruff: noqa: RUF001 (typographic dashes as the engine writes them)
"""The offline engine books appointments by dialogue, German and English.

At the provider level the calendar answers with the shapes of booking/tools.py
(``check_availability`` -> ``{"timezone", "slots": [{"start", "label"}], "more"}``,
``book_appointment`` -> ``{"appointment_id", "start", "manage_url", ...}`` or
``{"ok": false, "error": "slot_taken", "alternatives": [...]}``), following the tool's rules:
``after_time`` is exclusive and applies to every day, ``date_to`` defaults to 14 days. The
end-to-end dialogues through the public chat API and the real tools are in
tests/channels/web/test_booking_dialogue.py.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from demandly.engine.providers.base import QualificationField, ToolCall
from tests.engine.offline_dialogue import ALL_TOOLS, BERLIN, INSIDE, Dialogue, practice

BOOKING_TOOLS = (
    *ALL_TOOLS,
    "check_availability",
    "book_appointment",
    "reschedule_appointment",
    "cancel_appointment",
)
MANAGE = "https://demandly.test/manage/tok123"
PARTS = {"morning": (0, 12), "afternoon": (12, 17), "evening": (17, 24)}


class Calendar:
    """Free hourly slots 9:00-16:00 on weekdays from the clock on (Berlin)."""

    def __init__(self, now: datetime = INSIDE, zone: ZoneInfo = BERLIN) -> None:
        self.now = now
        self.zone = zone
        self.free = [
            datetime(now.year, now.month, now.day, hour, tzinfo=zone) + timedelta(days=offset)
            for offset in range(40)
            for hour in range(9, 17)
        ]
        self.free = [s for s in self.free if s.weekday() < 5 and s > now]
        self.booked: dict[str, datetime] = {}
        self.cancelled: list[str] = []
        self.checks: list[dict[str, Any]] = []
        self.taken_on_booking: set[datetime] = set()

    def __call__(self, call: ToolCall) -> dict[str, Any]:
        handler = getattr(self, call.name, None)
        return handler(call.arguments) if handler else {"ok": True}

    def _view(self, start: datetime) -> dict[str, Any]:
        return {"start": start.isoformat(), "label": start.strftime("%a %d.%m. %H:%M")}

    def check_availability(self, args: dict[str, Any]) -> dict[str, Any]:
        self.checks.append(args)
        today = self.now.date()
        first = max(date.fromisoformat(args.get("date_from") or today.isoformat()), today)
        last = date.fromisoformat(args["date_to"]) if args.get("date_to") else first
        if not args.get("date_to"):
            last = first + timedelta(days=13)
        after = time.fromisoformat(args["after_time"]) if args.get("after_time") else None
        part = PARTS.get(args.get("part_of_day") or "")

        def fits(slot: datetime) -> bool:
            local = slot.astimezone(self.zone)
            if not first <= local.date() <= last or (after and local.time() <= after):
                return False
            return part is None or part[0] <= local.hour < part[1]

        found = [s for s in self.free if fits(s)]
        limit = args.get("limit", 3)
        return {
            "timezone": str(self.zone),
            "slots": [self._view(s) for s in found[:limit]],
            "more": len(found) > limit,
        }

    def book_appointment(self, args: dict[str, Any]) -> dict[str, Any]:
        assert args["name"] and (args.get("email") or args.get("phone"))
        start = datetime.fromisoformat(args["start"])
        if start in self.taken_on_booking or start not in self.free:
            self.free = [s for s in self.free if s != start]
            nearby = [s for s in self.free if s.date() == start.date()][:3]
            return {
                "ok": False,
                "error": "slot_taken",
                "alternatives": [self._view(s) for s in nearby],
            }
        self.free.remove(start)
        self.booked["apt_1"] = start
        return self._appointment("apt_1", "confirmed")

    def reschedule_appointment(self, args: dict[str, Any]) -> dict[str, Any]:
        start = datetime.fromisoformat(args["start"])
        self.free.remove(start)
        self.booked[args["appointment_id"]] = start
        return self._appointment(args["appointment_id"], "confirmed")

    def cancel_appointment(self, args: dict[str, Any]) -> dict[str, Any]:
        self.cancelled.append(args["appointment_id"])
        return self._appointment(args["appointment_id"], "cancelled")

    def _appointment(self, identifier: str, status: str) -> dict[str, Any]:
        start = self.booked[identifier]
        return {
            "appointment_id": identifier,
            "status": status,
            "start": start.isoformat(),
            "label": start.strftime("%d.%m.%Y %H:%M"),
            "timezone": str(self.zone),
            "manage_url": MANAGE,
        }


def booking_dialogue(language: str = "de", **context: Any) -> tuple[Dialogue, Calendar]:
    calendar = Calendar()
    d = Dialogue(practice(language, **context), offered=BOOKING_TOOLS, results=calendar)
    return d, calendar


def calls(d: Dialogue, name: str) -> list[dict[str, Any]]:
    return [c.arguments for t in d.turns for c in t.calls if c.name == name]


# --- German ---------------------------------------------------------------------------------


async def test_german_booking_from_wish_to_confirmation() -> None:
    d, calendar = booking_dialogue("de")
    await d.greet()
    turn = await d.say("Ich hätte gern einen Termin morgen Nachmittag")
    assert "Namen" in turn.text and turn.text.endswith("Wie lautet Ihr Name?")
    assert calls(d, "check_availability") == [], "contact details first"

    await d.say("Max Muster")
    turn = await d.say("max@example.com")
    assert calendar.checks == [
        {"date_from": "2025-03-13", "date_to": "2025-03-13", "part_of_day": "afternoon",
         "limit": 3}
    ]  # fmt: skip
    assert "Folgende Termine sind frei: Do 13.03. um 12:00 Uhr, Do 13.03. um 13:00 Uhr oder" in (
        turn.text
    )
    assert turn.quick_replies == (
        "Do 13.03. um 12:00 Uhr",
        "Do 13.03. um 13:00 Uhr",
        "Do 13.03. um 14:00 Uhr",
        "Keiner passt",
    )

    turn = await d.say("den zweiten")
    assert turn.text == "Soll ich den Termin am Donnerstag, 13.03.2025 um 13:00 Uhr für Sie buchen?"
    assert turn.quick_replies == ("Ja", "Nein")

    turn = await d.say("Ja, gerne")
    assert calls(d, "book_appointment") == [
        {"start": "2025-03-13T13:00:00+01:00", "name": "Max Muster", "email": "max@example.com"}
    ]
    assert turn.text.startswith("Ihr Termin ist gebucht: Donnerstag, 13.03.2025 um 13:00 Uhr.")
    assert MANAGE in turn.text and "Bestätigung" in turn.text
    assert calendar.booked == {"apt_1": datetime(2025, 3, 13, 13, tzinfo=BERLIN)}


async def test_none_fit_offers_the_next_slots_after_the_last_offered() -> None:
    d, _ = booking_dialogue("de")
    await d.greet()
    await d.say("Max Muster, max@example.com – ich möchte einen Termin morgen Nachmittag")
    turn = await d.say("Keiner passt")
    assert turn.quick_replies[:3] == (
        "Do 13.03. um 15:00 Uhr",
        "Do 13.03. um 16:00 Uhr",
        "Fr 14.03. um 12:00 Uhr",
    )
    assert turn.text.startswith("Weitere freie Termine:")


async def test_later_that_day_and_picking_by_time() -> None:
    d, calendar = booking_dialogue("de")
    await d.greet()
    await d.say("Ich bin Max Muster, 0171 1234567. Termin am Freitag vormittags bitte")
    turn = await d.say("Geht es später am Tag?")
    assert calendar.checks[-1]["after_time"] == "11:00"
    assert turn.quick_replies[:3] == (
        "Fr 14.03. um 12:00 Uhr",
        "Fr 14.03. um 13:00 Uhr",
        "Fr 14.03. um 14:00 Uhr",
    )
    turn = await d.say("um 14 Uhr")
    assert "Freitag, 14.03.2025 um 14:00 Uhr" in turn.text
    await d.say("ja")
    assert calls(d, "book_appointment")[0]["phone"] == "+491711234567"


async def test_a_tapped_slot_and_a_wished_time_that_is_free_are_confirmed_at_once() -> None:
    d, _ = booking_dialogue("de")
    await d.greet()
    await d.say("Max Muster, max@example.com")
    turn = await d.say("Kann ich nächsten Dienstag um 10 einen Termin haben?")
    assert turn.text.endswith(
        "Soll ich den Termin am Dienstag, 18.03.2025 um 10:00 Uhr für Sie buchen?"
    )
    turn = await d.say("Nein")
    assert turn.text.startswith("Kein Problem.") and "Keiner passt" in turn.quick_replies
    turn = await d.say(turn.quick_replies[1])
    assert "11:00 Uhr" in turn.text and turn.quick_replies == ("Ja", "Nein")


async def test_a_question_in_between_then_a_pick_and_a_bare_afternoon_hour() -> None:
    d, _ = booking_dialogue("de")
    await d.greet()
    await d.say("Max Muster, max@example.com, Termin morgen Nachmittag")
    turn = await d.say("Haben Sie Parkplätze?")
    assert turn.text.startswith("Direkt vor der Praxis gibt es drei kostenlose Parkplätze.")
    turn = await d.say("Dann den ersten, bitte")
    assert turn.text == "Soll ich den Termin am Donnerstag, 13.03.2025 um 12:00 Uhr für Sie buchen?"
    turn = await d.say("Lieber um 2")
    assert turn.text == "Soll ich den Termin am Donnerstag, 13.03.2025 um 14:00 Uhr für Sie buchen?"


async def test_a_slot_taken_meanwhile_offers_the_alternatives() -> None:
    d, calendar = booking_dialogue("de")
    await d.greet()
    await d.say("Max Muster, max@example.com, bitte einen Termin übermorgen")
    calendar.taken_on_booking.add(datetime(2025, 3, 14, 9, tzinfo=BERLIN))
    await d.say("den ersten")
    turn = await d.say("ja")
    assert turn.text.startswith("Dieser Termin ist leider gerade vergeben worden.")
    assert turn.quick_replies[0] == "Fr 14.03. um 10:00 Uhr"
    assert calendar.booked == {}


async def test_a_full_day_offers_the_next_free_days() -> None:
    d, calendar = booking_dialogue("de")
    calendar.free = [s for s in calendar.free if s.date() != date(2025, 3, 13)]
    await d.greet()
    turn = await d.say("Ich bin Max Muster, max@example.com. Haben Sie morgen einen Termin frei?")
    assert "Zu Ihrem Wunschtermin ist leider nichts frei" in turn.text
    assert turn.quick_replies[0] == "Fr 14.03. um 9:00 Uhr"
    assert turn.rounds == 3


async def test_reschedule_and_cancel_the_appointment_booked_here() -> None:
    d, calendar = booking_dialogue("de")
    await d.greet()
    await d.say("Max Muster, max@example.com, Termin am 17.3. um 9 Uhr")
    await d.say("ja")
    turn = await d.say("Kann ich den Termin verschieben?")
    assert turn.text.startswith("Gern. Wann würde es Ihnen statt Montag, 17.03.2025")
    turn = await d.say("Mittwoch nachmittags")
    turn = await d.say("den ersten")
    assert turn.text == "Soll ich Ihren Termin auf Mittwoch, 19.03.2025 um 12:00 Uhr verschieben?"
    turn = await d.say("ja")
    assert calls(d, "reschedule_appointment") == [
        {"appointment_id": "apt_1", "start": "2025-03-19T12:00:00+01:00"}
    ]
    assert turn.text.startswith("Erledigt – Ihr Termin ist jetzt am Mittwoch, 19.03.2025")

    turn = await d.say("Ach, sagen Sie den Termin bitte doch ab.")
    assert turn.text == "Soll ich Ihren Termin am Mittwoch, 19.03.2025 um 12:00 Uhr absagen?"
    turn = await d.say("Ja")
    assert calendar.cancelled == ["apt_1"]
    assert turn.text.startswith("Ihr Termin am Mittwoch, 19.03.2025 um 12:00 Uhr ist abgesagt.")


async def test_no_to_cancelling_keeps_the_appointment() -> None:
    d, calendar = booking_dialogue("de")
    await d.greet()
    await d.say("Max Muster, max@example.com, Termin am 17.3. um 9 Uhr")
    await d.say("ja")
    await d.say("Ich möchte den Termin stornieren")
    turn = await d.say("Nein")
    assert turn.text.startswith("Gut, Ihr Termin bleibt bestehen.")
    assert calendar.cancelled == [] and not turn.calls


# --- English --------------------------------------------------------------------------------


async def test_english_booking_in_one_message_then_yes() -> None:
    d, calendar = booking_dialogue("en")
    await d.greet()
    turn = await d.say(
        "Hi, I'm Jane Doe, jane@example.com. Can I book an appointment for Friday at 3pm?"
    )
    assert turn.text == (
        "Thank you, Jane Doe! Shall I book Friday, 14 March 2025 at 3:00 pm for you?"
    )
    assert calendar.checks[-1]["after_time"] == "14:59", "3pm itself included"
    turn = await d.say("yes please")
    assert turn.text.startswith("Your appointment is booked: Friday, 14 March 2025 at 3:00 pm.")
    assert f"You can reschedule or cancel it here: {MANAGE}" in turn.text


async def test_english_next_week_none_fit_and_the_number() -> None:
    d, calendar = booking_dialogue("en", qualification=())
    await d.greet()
    turn = await d.say("I'd like to book an appointment next week")
    assert turn.text.endswith("What is your name?")
    await d.say("Jane Doe")
    turn = await d.say("0171 1234567")
    assert calendar.checks[0] == {"date_from": "2025-03-17", "date_to": "2025-03-23", "limit": 3}
    assert turn.quick_replies == (
        "Mon 17 Mar at 9:00 am",
        "Mon 17 Mar at 10:00 am",
        "Mon 17 Mar at 11:00 am",
        "None of these fit",
    )
    turn = await d.say("none of these fit")
    assert turn.quick_replies[0] == "Mon 17 Mar at 12:00 pm"
    turn = await d.say("2")
    assert turn.text == "Shall I book Monday, 17 March 2025 at 1:00 pm for you?"
    await d.say("yes")
    assert calls(d, "book_appointment") == [
        {"start": "2025-03-17T13:00:00+01:00", "name": "Jane Doe", "phone": "+491711234567"}
    ]


async def test_the_client_time_zone_and_tomorrow_morning() -> None:
    zone = ZoneInfo("America/New_York")
    now = datetime(2025, 3, 12, 22, tzinfo=zone)  # already Thursday in Berlin
    calendar = Calendar(now=now, zone=zone)
    d = Dialogue(
        practice("en", timezone="America/New_York"),
        clock=now,
        offered=BOOKING_TOOLS,
        results=calendar,
    )
    await d.greet()
    turn = await d.say("Jane Doe, jane@example.com - an appointment tomorrow morning, please")
    assert calendar.checks[-1]["date_from"] == "2025-03-13"
    assert turn.quick_replies[0] == "Thu 13 Mar at 9:00 am"


# --- what does not start a booking ----------------------------------------------------------


async def test_without_the_booking_tools_an_appointment_wish_is_taken_down_as_before() -> None:
    d = Dialogue(practice("de"), results=Calendar())
    await d.greet()
    turn = await d.say("Ich hätte gern einen Termin morgen")
    assert not any(c.name == "check_availability" for c in turn.calls)
    assert "Wie lautet Ihr Name?" in turn.text


async def test_a_price_question_about_appointments_is_no_booking() -> None:
    d, calendar = booking_dialogue("de", price_info="Eine Kontrolle kostet 40 Euro.")
    await d.greet()
    turn = await d.say("Was kostet ein Termin bei Ihnen?")
    assert "40 Euro" in turn.text
    assert calendar.checks == []


async def test_the_contact_fields_added_for_booking_are_not_asked_outside_it() -> None:
    form = (QualificationField(key="anliegen", labels={"de": "Anliegen"}),)
    d, _ = booking_dialogue("de", qualification=form)
    await d.greet()
    turn = await d.say("Zahnschmerzen")
    assert "Name" not in turn.text and "E-Mail" not in turn.text


async def test_a_booking_dialogue_is_the_same_on_every_replay() -> None:
    async def run() -> list[tuple[str, tuple[str, ...]]]:
        d, _ = booking_dialogue("de")
        await d.greet()
        for line in ("Termin morgen bitte", "Max Muster", "max@example.com", "keiner passt"):
            await d.say(line)
        return [(t.text, t.quick_replies) for t in d.turns]

    assert await run() == await run()


async def test_tool_call_ids_stay_unique_over_lookup_rounds() -> None:
    d, _ = booking_dialogue("de")
    await d.greet()
    for line in ("Max Muster, max@example.com, Termin morgen", "den ersten", "ja"):
        await d.say(line)
    ids = [c.id for t in d.turns for c in t.calls]
    assert len(ids) == len(set(ids))


async def test_that_is_all_ends_the_booking_without_a_booking() -> None:
    d, calendar = booking_dialogue("en")
    await d.greet()
    await d.say("Jane Doe, jane@example.com. An appointment tomorrow, please")
    turn = await d.say("Nah, that's all, thanks")
    assert turn.text == (
        "All right, I won't book anything then. Is there anything else I can do for you?"
    )
    assert len(calendar.checks) == 1 and calendar.booked == {}


async def test_a_calendar_that_cannot_be_read_is_passed_on() -> None:
    def no_calendar(call: ToolCall) -> dict[str, Any]:
        if call.name == "check_availability":
            return {"ok": False, "error": "not_found", "message": "This agent has no calendar."}
        return {"ok": True}

    d = Dialogue(practice("de"), offered=BOOKING_TOOLS, results=no_calendar)
    await d.greet()
    turn = await d.say("Ich bin Max Muster, max@example.com und möchte einen Termin buchen")
    assert turn.text.startswith("Danke, Max Muster! Den Kalender kann ich gerade leider nicht")
    assert turn.text.endswith("Kann ich sonst noch etwas für Sie tun?")


async def test_only_the_missing_contact_detail_is_asked_for() -> None:
    d, _ = booking_dialogue("de")
    await d.greet()
    turn = await d.say("Ich bin Max Muster und hätte gern einen Termin am Freitag")
    assert "brauche ich noch Ihre E-Mail-Adresse oder Telefonnummer" in turn.text
    assert turn.text.endswith("Wie lautet Ihre E-Mail-Adresse?")
    turn = await d.say("0171 1234567")  # a phone number is just as good
    assert turn.quick_replies[0] == "Fr 14.03. um 9:00 Uhr"
