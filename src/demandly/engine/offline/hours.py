"""Opening hours: open now?, next opening, and the hours described in words."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from demandly.engine.offline.texts import WEEKDAYS, format_date, format_range, format_time, say
from demandly.engine.providers.base import AgentContext, OpeningRange

Clock = Callable[[], datetime]


def zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def local_now(clock: Clock | None, context: AgentContext) -> datetime:
    """The current time in the agent's time zone (a naive clock value is read as local)."""
    tz = zone(context.timezone)
    now = clock() if clock is not None else datetime.now(tz)
    return now.replace(tzinfo=tz) if now.tzinfo is None else now.astimezone(tz)


def _ranges(context: AgentContext, weekday: int) -> list[OpeningRange]:
    return sorted((r for r in context.opening_hours if r.weekday == weekday), key=lambda r: r.opens)


def is_open(context: AgentContext, now: datetime) -> bool:
    if not context.opening_hours or now.date() in context.closed_dates:
        return False
    moment = now.time().replace(tzinfo=None)
    for r in _ranges(context, now.weekday()):
        if r.opens <= moment < r.closes or (r.closes <= r.opens and moment >= r.opens):
            return True
    yesterday = (now.weekday() - 1) % 7
    return any(r.closes <= r.opens and moment < r.closes for r in _ranges(context, yesterday))


def next_opening(context: AgentContext, now: datetime) -> datetime | None:
    for offset in range(15):
        day = now.date() + timedelta(days=offset)
        if day in context.closed_dates:
            continue
        for r in _ranges(context, day.weekday()):
            start = datetime.combine(day, r.opens, tzinfo=now.tzinfo)
            if start > now:
                return start
    return None


def describe_next(start: datetime, now: datetime, lang: str) -> str:
    days = (start.date() - now.date()).days
    at = format_time(start.time(), lang)
    if days == 0:
        return say(lang, "next_today", time=at)
    if days == 1:
        return say(lang, "next_tomorrow", time=at)
    if days < 7:
        return say(lang, "next_weekday", weekday=WEEKDAYS[lang][start.weekday()], time=at)
    return say(lang, "next_date", date=format_date(start.date(), lang), time=at)


def describe_hours(context: AgentContext, lang: str) -> str:
    """E.g. "Montag bis Freitag 8:00-18:00 Uhr, Samstag 9:00-13:00 Uhr, Sonntag geschlossen"."""
    names = WEEKDAYS[lang]
    closed = "geschlossen" if lang == "de" else "closed"
    per_day = [
        tuple(format_range(r.opens, r.closes, lang) for r in _ranges(context, day))
        for day in range(7)
    ]
    parts: list[str] = []
    day = 0
    while day < 7:
        end = day
        while end + 1 < 7 and per_day[end + 1] == per_day[day]:
            end += 1
        if end == day:
            days = names[day]
        elif end == day + 1:
            days = f"{names[day]} {say(lang, 'and')} {names[end]}"
        else:
            days = f"{names[day]} {say(lang, 'to')} {names[end]}"
        times = f" {say(lang, 'and')} ".join(per_day[day]) if per_day[day] else closed
        parts.append(f"{days} {times}")
        day = end + 1
    return ", ".join(parts)


def open_status(context: AgentContext, now: datetime, lang: str) -> str:
    if is_open(context, now):
        return say(lang, "open_now")
    start = next_opening(context, now)
    if start is None:
        return say(lang, "closed_now_unknown")
    return say(lang, "closed_now", next=describe_next(start, now, lang))


def hours_answer(context: AgentContext, now: datetime, lang: str) -> str:
    if not context.opening_hours:
        return say(lang, "hours_unknown")
    hours = say(lang, "hours", hours=describe_hours(context, lang))
    return f"{hours} {open_status(context, now, lang)}"
