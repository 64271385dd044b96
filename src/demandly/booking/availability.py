"""Free slots of a calendar: a pure computation (no database, no clock), so it is fast and
every rule can be tested on its own.

Rules, in the order they apply:
- opening ranges per local date: a date override if there is one (no ranges: closed), else
  closed on a public holiday, else the weekly ranges of that weekday;
- slots start at the range's start and every ``interval`` after it, and end within the range;
  the steps are in absolute time, so a range across a daylight-saving change has as many
  slots as it has real hours (one more in October, one fewer in March);
- ``minimum_notice`` after ``now``, and no later than ``window_days`` local days ahead;
- at most ``max_per_day`` appointments per local date (a full day offers nothing);
- no overlap with an existing appointment, with buffers: a slot keeps ``buffer_before``
  clear before it and ``buffer_after`` after it, and stays out of the same margins around
  each existing appointment. Buffers do not add up: two appointments are at least
  max(before, after) apart, and buffers only matter between appointments, never against
  the edges of the opening hours.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

Range = tuple[time, time]


@dataclass(frozen=True, order=True)
class Slot:
    """A bookable slot; both ends are aware UTC datetimes."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Rules:
    timezone: str
    weekly: Mapping[int, Sequence[Range]]  # weekday (Monday 0) -> ranges
    overrides: Mapping[date, Sequence[Range]] = field(default_factory=dict)  # () = closed
    holidays: frozenset[date] = frozenset()
    buffer_before: timedelta = timedelta(0)
    buffer_after: timedelta = timedelta(0)
    minimum_notice: timedelta = timedelta(0)
    window_days: int = 60
    interval: timedelta | None = None  # None: the duration
    max_per_day: int | None = None


def local_ranges(rules: Rules, day: date) -> Sequence[Range]:
    """The opening ranges of one local date."""
    if day in rules.overrides:
        return rules.overrides[day]
    if day in rules.holidays:
        return ()
    return rules.weekly.get(day.weekday(), ())


def to_utc(day: date, wall: time, zone: ZoneInfo, *, later: bool) -> datetime:
    """A local wall time as UTC. An ambiguous time (the repeated hour in autumn) is its
    first occurrence for a start and its second for an end (``later``); a time that does not
    exist (the skipped hour in spring) moves forward to the first one that does."""
    local = datetime.combine(day, wall, tzinfo=zone).replace(fold=1 if later else 0)
    instant = local.astimezone(UTC)
    for _ in range(24 * 60):
        if instant.astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None, fold=0):
            return instant
        local = (local.replace(tzinfo=None) + timedelta(minutes=1)).replace(tzinfo=zone)
        instant = local.astimezone(UTC)
    return instant  # pragma: no cover - no zone skips a whole day of minutes


def local_date(instant: datetime, zone: ZoneInfo) -> date:
    return instant.astimezone(zone).date()


class _Busy:
    """Existing appointments, sorted, padded by the buffers, for overlap tests in O(log n)."""

    def __init__(self, busy: Iterable[tuple[datetime, datetime]], rules: Rules) -> None:
        pad = max(rules.buffer_before, rules.buffer_after)
        self.intervals = sorted((s - pad, e + pad) for s, e in busy)
        self.starts = [s for s, _ in self.intervals]
        # The largest padded end among the first i intervals: a long appointment may reach
        # past later, shorter ones.
        self.max_end: list[datetime] = []
        for _, end in self.intervals:
            self.max_end.append(max(end, self.max_end[-1]) if self.max_end else end)

    def overlaps(self, start: datetime, end: datetime) -> bool:
        index = bisect.bisect_left(self.starts, end)  # intervals starting before ``end``
        return index > 0 and self.max_end[index - 1] > start


def compute_slots(
    rules: Rules,
    duration: timedelta,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    busy: Iterable[tuple[datetime, datetime]] = (),
) -> list[Slot]:
    """Free slots of ``duration`` starting in [``start``, ``end``) (aware datetimes), given
    the existing (confirmed) appointments ``busy`` as UTC (start, end) pairs."""
    if duration <= timedelta(0):
        return []
    zone = ZoneInfo(rules.timezone)
    busy = list(busy)
    interval = rules.interval or duration
    earliest = max(start.astimezone(UTC), now.astimezone(UTC) + rules.minimum_notice)
    last_day = local_date(now, zone) + timedelta(days=rules.window_days)
    per_day = Counter(local_date(s, zone) for s, _ in busy) if rules.max_per_day else Counter()
    blocked = _Busy(busy, rules)
    slots: list[Slot] = []
    day = local_date(earliest, zone)
    final = min(local_date(end, zone), last_day)
    while day <= final:
        if rules.max_per_day is None or per_day[day] < rules.max_per_day:
            for opens, closes in local_ranges(rules, day):
                slots.extend(_range_slots(day, opens, closes, zone, duration, interval, blocked))
        day += timedelta(days=1)
    end = end.astimezone(UTC)
    return sorted(s for s in slots if earliest <= s.start < end)


def _range_slots(
    day: date,
    opens: time,
    closes: time,
    zone: ZoneInfo,
    duration: timedelta,
    interval: timedelta,
    blocked: _Busy,
) -> Iterable[Slot]:
    cursor = to_utc(day, opens, zone, later=False)
    limit = to_utc(day, closes, zone, later=True)
    while cursor + duration <= limit:
        finish = cursor + duration
        if not blocked.overlaps(cursor, finish):
            yield Slot(cursor, finish)
        cursor += interval


def parse_ranges(items: Iterable[Mapping[str, str]]) -> list[Range]:
    return [(time.fromisoformat(r["start"]), time.fromisoformat(r["end"])) for r in items]
