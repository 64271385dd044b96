"""Date and time phrases of a booking wish, German and English, relative to the clock."""

from __future__ import annotations

from datetime import date, time

import pytest

from demandly.engine.offline.when import When, parse_when
from tests.engine.offline_dialogue import INSIDE, at

# INSIDE is Wednesday 12 March 2025, 10:00 in Berlin.
THU, FRI, TUE = date(2025, 3, 13), date(2025, 3, 14), date(2025, 3, 18)


def day(value: date, part: str | None = None, clock: time | None = None) -> When:
    return When(value, value, part, clock)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("morgen Nachmittag", day(THU, "afternoon")),
        ("Geht es morgen früh?", day(THU, "morning")),
        ("nächsten Dienstag um 10", day(TUE, None, time(10))),
        ("am 3.12. vormittags", day(date(2025, 12, 3), "morning")),
        ("übermorgen", day(FRI)),
        ("Freitag um 15:30 Uhr", day(FRI, None, time(15, 30))),
        ("am 3. Dezember um 9 Uhr", day(date(2025, 12, 3), None, time(9))),
        ("in 2 Tagen", day(FRI)),
        ("heute Abend", day(date(2025, 3, 12), "evening")),
        ("Friday at 3pm", day(FRI, None, time(15))),
        ("tomorrow morning", day(THU, "morning")),
        ("December 3rd at 10am", day(date(2025, 12, 3), None, time(10))),
        ("the day after tomorrow at 4", day(FRI, None, time(16))),
    ],
)
def test_day_part_and_time(text: str, expected: When) -> None:
    assert parse_when(text, INSIDE) == expected


def test_next_week_is_monday_to_sunday_of_the_coming_week() -> None:
    for text in ("nächste Woche", "next week"):
        assert parse_when(text, INSIDE) == When(date(2025, 3, 17), date(2025, 3, 23))


def test_a_weekday_said_on_that_day_means_the_coming_one() -> None:
    assert parse_when("Mittwoch", INSIDE) == day(date(2025, 3, 19))
    assert parse_when("this Wednesday", INSIDE) == day(date(2025, 3, 12))


def test_a_date_already_past_this_year_is_next_years() -> None:
    assert parse_when("am 1.2.", INSIDE) == day(date(2026, 2, 1))


def test_from_a_time_on() -> None:
    assert parse_when("ab 14 Uhr", INSIDE) == When(at=time(14), after=True)
    assert parse_when("after 2pm", INSIDE) == When(at=time(14), after=True)


def test_a_time_alone_and_a_part_of_day_alone() -> None:
    assert parse_when("um 11", INSIDE) == When(at=time(11))
    assert parse_when("lieber vormittags", INSIDE) == When(part_of_day="morning")


@pytest.mark.parametrize(
    "text",
    ["Guten Morgen", "Ich möchte einen Termin", "den zweiten", "2", "I'd like an appointment"],
)
def test_no_time_in_the_text(text: str) -> None:
    assert parse_when(text, INSIDE) is None


def test_relative_to_the_clock() -> None:
    saturday = at(2025, 3, 15, 20)
    assert parse_when("morgen", saturday) == day(date(2025, 3, 16))
    assert parse_when("Montag", saturday) == day(date(2025, 3, 17))
