# ruff: noqa: RUF001 (the engine writes typographic dashes)
"""The offline engine's building blocks: normalising values, recognising intents, matching
FAQ questions and describing opening hours."""

from __future__ import annotations

from datetime import date, time

import pytest

from demandly.engine.offline.extract import (
    normalise_email,
    normalise_number,
    normalise_phone,
    parse_date,
    plausible_name,
    yes_or_no,
)
from demandly.engine.offline.faq import best_match
from demandly.engine.offline.hours import describe_hours, is_open, next_opening
from demandly.engine.offline.intents import detect
from demandly.engine.providers.base import FaqPair, OpeningRange
from tests.engine.offline_dialogue import INSIDE, OUTSIDE, at, practice


def test_emails_are_lowercased_and_incomplete_ones_refused() -> None:
    assert normalise_email("Max.Muster@Example.COM") == "max.muster@example.com"
    assert normalise_email("max@example") is None
    assert normalise_email("max@@example.com") is None
    assert normalise_email("max example.com") is None


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("0171 1234567", "DE", "+491711234567"),
        ("030/1234567", "DE", "+49301234567"),
        ("+49 (0)171 1234567", "DE", "+491711234567"),
        ("0664 1234567", "AT", "+436641234567"),
        ("(415) 555-0132", "US", "+14155550132"),
        ("+44 20 7946 0958", "DE", "+442079460958"),
        ("123", "DE", None),
        ("0171 12", "DE", None),
    ],
)
def test_phones_become_e164_in_the_agents_region(raw: str, region: str, expected: str) -> None:
    assert normalise_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "lang", "expected"),
    [
        ("morgen", "de", "2025-03-13"),
        ("übermorgen", "de", "2025-03-14"),
        ("am 15. April", "de", "2025-04-15"),
        ("15.04.2025", "de", "2025-04-15"),
        ("15.4.", "de", "2025-04-15"),
        ("nächsten Dienstag", "de", "2025-03-18"),
        ("Freitag", "de", "2025-03-14"),
        ("1.3.", "de", "2026-03-01"),  # 1 March has passed: the next one
        ("tomorrow", "en", "2025-03-13"),
        ("next friday", "en", "2025-03-14"),
        ("April 3", "en", "2025-04-03"),
        ("on the 5th of May", "en", "2025-05-05"),
        ("31.02.", "de", None),
        ("irgendwann", "de", None),
    ],
)
def test_dates_are_iso_relative_to_the_clock_and_prefer_the_future(
    raw: str, lang: str, expected: str | None
) -> None:
    assert parse_date(raw, lang, INSIDE) == expected


@pytest.mark.parametrize(
    ("raw", "lang", "expected"),
    [
        ("3", "de", 3),
        ("1.500", "de", 1500),
        ("2,5", "de", 2.5),
        ("1,500", "en", 1500),
        ("2.5", "en", 2.5),
        ("-4", "en", -4),
    ],
)
def test_numbers_read_the_languages_separators(raw: str, lang: str, expected: float) -> None:
    value = normalise_number(raw, lang)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ja", True),
        ("ja, gerne", True),
        ("Nein", False),
        ("nö", False),
        ("Yes please", True),
        ("no", False),
        ("Ja, aber nicht privat", True),
        ("vielleicht", None),
    ],
)
def test_yes_or_no(text: str, expected: bool | None) -> None:
    assert yes_or_no(text) is expected


def test_name_plausibility() -> None:
    assert plausible_name("Max Muster")
    assert plausible_name("Ursula von der Leyen")
    assert plausible_name("Jane Doe")
    assert not plausible_name("Ich möchte einen Termin")
    assert not plausible_name("interessiert an einer Beratung")
    assert not plausible_name("Max 123")


@pytest.mark.parametrize(
    "text",
    [
        "Kann ich mit einem Menschen sprechen?",
        "Ich möchte bitte einen Mitarbeiter sprechen",
        "Verbinden Sie mich mit einer echten Person",
        "Mitarbeiter bitte!",
        "I want to talk to a human",
        "Can I speak to someone?",
        "real person please",
        "Are you a bot? I need a human",
    ],
)
def test_requests_for_a_person(text: str) -> None:
    assert detect(text).handoff


@pytest.mark.parametrize(
    "text",
    [
        "Wie viele Mitarbeiter haben Sie?",
        "Für 4 Personen bitte",
        "Ich bin Max Muster",
        "Haben Sie Parkplätze?",
        "How many people work there?",
    ],
)
def test_not_requests_for_a_person(text: str) -> None:
    assert not detect(text).handoff


def test_handoff_keywords_of_the_agent_count_too() -> None:
    assert not detect("Ich habe einen Notfall!").handoff
    assert detect("Ich habe einen Notfall!", ("Notfall",)).handoff


@pytest.mark.parametrize(
    ("text", "hours"),
    [
        ("Wann haben Sie geöffnet?", True),
        ("Öffnungszeiten?", True),
        ("Haben Sie samstags auf?", True),
        ("Sind Sie morgen erreichbar?", True),
        ("What are your opening hours?", True),
        ("Are you open on Saturday?", True),
        ("Kann ich auf Rechnung zahlen?", False),
        ("Ich bin Max", False),
    ],
)
def test_opening_hours_questions(text: str, hours: bool) -> None:
    assert detect(text).hours is hours


def test_courtesy_only_messages() -> None:
    assert detect("Hallo!").only_courtesy
    assert detect("Danke schön").only_courtesy
    assert detect("ok").only_courtesy
    assert not detect("Hallo, ich bin Max").only_courtesy


FAQ = (
    FaqPair("Nehmen Sie neue Patienten auf?", "Ja."),
    FaqPair("Was kostet eine professionelle Zahnreinigung?", "89 Euro."),
    FaqPair("Haben Sie Parkplätze?", "Drei vor der Tür."),
    FaqPair("Is there parking nearby?", "Yes, three spaces."),
)


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("Nehmen Sie noch neue Patienten?", "Ja."),
        ("nehmt ihr neue patienten auf", "Ja."),
        ("Wie teuer ist eine Zahnreinigung?", "89 Euro."),
        ("Gibt es Parkplaetze?", "Drei vor der Tür."),
        ("Parkplatz?", "Drei vor der Tür."),
        ("Is parking available nearby?", "Yes, three spaces."),
    ],
)
def test_faq_questions_match_when_phrased_differently(question: str, answer: str) -> None:
    match = best_match(FAQ, question)
    assert match is not None and match[0].answer == answer


@pytest.mark.parametrize(
    "question",
    [
        "Wie lange dauert eine Wurzelbehandlung?",
        "Kann ich meinen Hund mitbringen?",
        "Do you do root canals?",
        "Hallo",
    ],
)
def test_unrelated_questions_do_not_match_an_faq(question: str) -> None:
    assert best_match(FAQ, question) is None


def test_hours_are_described_by_weekday_in_both_languages() -> None:
    hours = (
        *(OpeningRange(day, time(8), time(12)) for day in range(5)),
        *(OpeningRange(day, time(14), time(18)) for day in (0, 1, 3)),
        OpeningRange(5, time(9), time(13)),
    )
    context = practice("de", opening_hours=hours)
    assert describe_hours(context, "de") == (
        "Montag und Dienstag 8:00–12:00 Uhr und 14:00–18:00 Uhr, Mittwoch 8:00–12:00 Uhr, "
        "Donnerstag 8:00–12:00 Uhr und 14:00–18:00 Uhr, Freitag 8:00–12:00 Uhr, "
        "Samstag 9:00–13:00 Uhr, Sonntag geschlossen"
    )
    assert describe_hours(context, "en").startswith(
        "Monday and Tuesday 8:00 am–12:00 pm and 2:00 pm–6:00 pm, Wednesday 8:00 am–12:00 pm"
    )


def test_open_now_respects_ranges_and_closed_dates() -> None:
    context = practice("de")
    assert is_open(context, INSIDE)
    assert not is_open(context, OUTSIDE)
    assert not is_open(context, at(2025, 3, 12, 18, 0)), "closing time is exclusive"
    assert is_open(context, at(2025, 3, 12, 8, 0))
    holiday = practice("de", closed_dates=(date(2025, 3, 12), date(2025, 3, 13)))
    assert not is_open(holiday, INSIDE)
    assert next_opening(holiday, INSIDE) == at(2025, 3, 14, 8, 0)
    assert next_opening(practice("de", opening_hours=()), INSIDE) is None
