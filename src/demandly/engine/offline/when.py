"""Reading when a visitor wants an appointment: German and English date and time phrases.

``parse_when("nächsten Dienstag um 10", "de", now)`` gives a ``When``: the days to look at, a
part of the day and a clock time, each only if the visitor said it. Everything is relative to
``now`` (the engine's clock, in the client's time zone), so the same words always mean the same
window for the same clock. Supported: "heute", "morgen", "übermorgen", weekdays ("Freitag",
"nächsten Dienstag", "next Friday"), "3.12.", "3.12.2026", "3. Dezember", "December 3rd",
"nächste Woche", "next week", "in 3 Tagen", parts of the day ("vormittags", "morgen früh",
"afternoon"), clock times ("um 10", "10:30 Uhr", "at 3pm") and "ab 14 Uhr" / "after 3pm".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal

from demandly.engine.offline.language import fold

PartOfDay = Literal["morning", "afternoon", "evening"]

_MONTHS = {
    "januar": 1, "janner": 1, "jan": 1, "january": 1, "februar": 2, "feb": 2, "february": 2,
    "marz": 3, "maerz": 3, "mar": 3, "march": 3, "april": 4, "apr": 4, "mai": 5, "may": 5,
    "juni": 6, "jun": 6, "june": 6, "juli": 7, "jul": 7, "july": 7, "august": 8, "aug": 8,
    "september": 9, "sep": 9, "sept": 9, "oktober": 10, "okt": 10, "october": 10, "oct": 10,
    "november": 11, "nov": 11, "dezember": 12, "dez": 12, "december": 12, "dec": 12,
}  # fmt: skip
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_WEEKDAYS = {
    "montag": 0, "monday": 0, "mon": 0, "dienstag": 1, "tuesday": 1, "tue": 1, "tues": 1,
    "mittwoch": 2, "wednesday": 2, "wed": 2, "donnerstag": 3, "thursday": 3, "thu": 3,
    "thurs": 3, "freitag": 4, "friday": 4, "fri": 4, "samstag": 5, "sonnabend": 5,
    "saturday": 5, "sat": 5, "sonntag": 6, "sunday": 6, "sun": 6,
}  # fmt: skip
_WEEKDAY = "|".join(sorted(_WEEKDAYS, key=len, reverse=True))
_NUMBER_WORDS = {
    "eins": 1, "ein": 1, "one": 1, "zwei": 2, "two": 2, "drei": 3, "three": 3, "vier": 4,
    "four": 4, "funf": 5, "five": 5, "sechs": 6, "six": 6, "sieben": 7, "seven": 7, "acht": 8,
    "eight": 8, "neun": 9, "nine": 9, "zehn": 10, "ten": 10, "elf": 11, "eleven": 11,
    "zwolf": 12, "twelve": 12,
}  # fmt: skip
_HOUR_WORD = "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True))

# Day phrases, tried in this order on folded text; each match is blanked before the next.
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_NUMERIC_DATE = re.compile(r"(?<![\d.:])(\d{1,2})\.\s?(\d{1,2})\.(?:\s?(\d{4}|\d{2})\b)?")
_SLASH_DATE = re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})(?:/(\d{4}|\d{2}))?(?![\d/])")
_DAY_MONTH = re.compile(
    rf"\b(\d{{1,2}})(?:\.|st|nd|rd|th)?\s+(?:of\s+)?({_MONTH})\b\.?(?:\s+(\d{{4}}))?"
)
_MONTH_DAY = re.compile(rf"\b({_MONTH})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(\d{{4}}))?")
_AFTER_TOMORROW = re.compile(r"\b(?:ubermorgen|uebermorgen|day after tomorrow)\b")
_TOMORROW = re.compile(r"(?<!guten )\b(?:morgen|tomorrow)\b(?!s)")
_TODAY = re.compile(r"\b(?:heute|today|tonight)\b")
_NEXT_WEEK = re.compile(r"\b(?:nachste|nachsten|kommende|kommenden|next|coming)\s+(?:woche|week)\b")
_THIS_WEEK = re.compile(r"\b(?:diese|dieser|this)\s+(?:woche|week)\b")
_IN_DAYS = re.compile(
    r"\bin\s+(\d{1,2}|" + _HOUR_WORD + r")\s+(tagen|tag|days?|wochen|woche|weeks?)\b"
)
_WEEKDAY_PHRASE = re.compile(
    rf"\b(?:(nachsten|nachster|kommenden|kommender|next|coming|this|diesen|dieser)\s+)?"
    rf"({_WEEKDAY})\b\.?"
)

_PARTS: tuple[tuple[PartOfDay, re.Pattern[str]], ...] = (
    (
        "morning",
        re.compile(r"\b(?:vormittags?|morgens|fruh|in the morning|morning|am vormittag)\b"),
    ),
    ("afternoon", re.compile(r"\b(?:nachmittags?|afternoon|mittags?|noon|midday|lunchtime)\b")),
    ("evening", re.compile(r"\b(?:abends?|evening|tonight|feierabend)\b")),
)
_LEAD = r"(?:(?:um|at|gegen|around|ab|nach|after|from)\s+)?"
_CLOCK_AMPM = re.compile(rf"\b{_LEAD}(\d{{1,2}})(?:[:.](\d{{2}}))?\s*(a\.?m\.?|p\.?m\.?)(?![a-z])")
_CLOCK_24 = re.compile(rf"\b{_LEAD}(\d{{1,2}})[:.](\d{{2}})\b(?:\s*uhr)?")
_CLOCK_UHR = re.compile(rf"\b(?:(?:um|gegen|ab|nach)\s+)?(\d{{1,2}}|{_HOUR_WORD})\s*uhr\b")
_CLOCK_AT = re.compile(
    rf"\b(?:um|at|gegen|around|ab|nach|after|from)\s+(\d{{1,2}}|{_HOUR_WORD})\b(?![.:/]\d)"
)
_AFTER_WORD = re.compile(r"(?:ab|nach|after|from)\s")


@dataclass(frozen=True)
class When:
    """A wished time window; ``None`` fields were not mentioned."""

    date_from: date | None = None
    date_to: date | None = None
    part_of_day: PartOfDay | None = None
    at: time | None = None  # "um 10": this time, or the nearest after it
    after: bool = False  # "ab 14 Uhr": any time from ``at`` on
    exclusive: bool = False  # strictly after ``at`` (slots later than one already offered)

    @property
    def has_day(self) -> bool:
        return self.date_from is not None

    def on(self, day: date) -> When:
        """The same wish placed on another day ("um 11" said about an offered day)."""
        return When(day, day, self.part_of_day, self.at, self.after, self.exclusive)


def parse_when(text: str, now: datetime) -> When | None:
    """The time window in the text, or None when it names no day, part of day or time."""
    folded = fold(text)
    today = now.date()
    days, folded = _days(folded, today)
    clock, after, folded = _clock(folded)
    part = _part_of_day(folded)
    if days is None and part is None and clock is None:
        return None
    date_from, date_to = days if days is not None else (None, None)
    return When(date_from, date_to, part, clock, after)


def _blank(text: str, match: re.Match[str]) -> str:
    return text[: match.start()] + " " * (match.end() - match.start()) + text[match.end() :]


def _days(folded: str, today: date) -> tuple[tuple[date, date] | None, str]:
    for finder in (_explicit, _relative, _weekday):
        found = finder(folded, today)
        if found is not None:
            span, match = found
            return span, _blank(folded, match)
    return None, folded


def _year_for(day: int, month: int, year: str | None, today: date) -> date | None:
    """A date without a year is the next one to come (today included)."""
    try:
        if year:
            full = int(year) + (2000 if len(year) == 2 else 0)
            return date(full, month, day)
        candidate = date(today.year, month, day)
        return candidate if candidate >= today else date(today.year + 1, month, day)
    except ValueError:
        return None


def _explicit(folded: str, today: date) -> tuple[tuple[date, date], re.Match[str]] | None:
    match = _ISO_DATE.search(folded)
    if match:
        try:
            day = date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            return None
        return (day, day), match
    for pattern, order in (
        (_NUMERIC_DATE, "dm"),
        (_DAY_MONTH, "dm"),
        (_MONTH_DAY, "md"),
        (_SLASH_DATE, "dm"),
    ):
        match = pattern.search(folded)
        if not match:
            continue
        first, second, year = match[1], match[2], match[3]
        day_text, month_text = (first, second) if order == "dm" else (second, first)
        month = int(month_text) if month_text.isdigit() else _MONTHS[month_text]
        found = _year_for(int(day_text), month, year, today)
        if found is not None:
            return (found, found), match
    return None


def _relative(folded: str, today: date) -> tuple[tuple[date, date], re.Match[str]] | None:
    if match := _AFTER_TOMORROW.search(folded):
        day = today + timedelta(days=2)
        return (day, day), match
    if match := _TOMORROW.search(folded):
        day = today + timedelta(days=1)
        return (day, day), match
    if match := _TODAY.search(folded):
        return (today, today), match
    if match := _NEXT_WEEK.search(folded):
        monday = today + timedelta(days=7 - today.weekday())
        return (monday, monday + timedelta(days=6)), match
    if match := _THIS_WEEK.search(folded):
        return (today, today + timedelta(days=6 - today.weekday())), match
    if match := _IN_DAYS.search(folded):
        count = int(match[1]) if match[1].isdigit() else _NUMBER_WORDS[match[1]]
        unit = 7 if match[2].startswith(("woche", "week")) else 1
        day = today + timedelta(days=count * unit)
        return (day, day), match
    return None


def _weekday(folded: str, today: date) -> tuple[tuple[date, date], re.Match[str]] | None:
    match = _WEEKDAY_PHRASE.search(folded)
    if not match:
        return None
    ahead = (_WEEKDAYS[match[2]] - today.weekday()) % 7
    if ahead == 0 and match[1] not in ("this", "diesen", "dieser"):
        ahead = 7  # "Dienstag" said on a Tuesday means the coming one
    day = today + timedelta(days=ahead)
    return (day, day), match


def _hour_value(raw: str) -> int:
    return int(raw) if raw.isdigit() else _NUMBER_WORDS[raw]


def _clock(folded: str) -> tuple[time | None, bool, str]:
    """The clock time, whether it was "from/after" it, and the text without it."""
    for pattern in (_CLOCK_AMPM, _CLOCK_24, _CLOCK_UHR, _CLOCK_AT):
        match = pattern.search(folded)
        if not match:
            continue
        hour = _hour_value(match[1])
        minute = int(match[2]) if pattern in (_CLOCK_AMPM, _CLOCK_24) and match[2] else 0
        if pattern is _CLOCK_AMPM:
            pm = match[3].startswith("p")
            hour = hour % 12 + (12 if pm else 0)
        elif hour < 7 and pattern is not _CLOCK_24:
            hour += 12  # "um 3" / "at 3" in business hours means the afternoon
        if hour > 23 or minute > 59:
            continue
        after = bool(_AFTER_WORD.match(folded, match.start()))
        return time(hour, minute), after, _blank(folded, match)
    return None, False, folded


def _part_of_day(folded: str) -> PartOfDay | None:
    for part, pattern in _PARTS:
        if pattern.search(folded):
            return part
    return None
