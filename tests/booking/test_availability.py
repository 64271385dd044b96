"""One test per availability rule, on the pure computation (fixed clock, no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from demandly.booking.availability import Rules, Slot, compute_slots

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
NINE_TO_FIVE = {d: [(time(9), time(17))] for d in range(7)}
HOUR = timedelta(hours=1)


def rules(**overrides: object) -> Rules:
    values: dict[str, object] = {
        "timezone": "Europe/Berlin",
        "weekly": NINE_TO_FIVE,
        "window_days": 400,
    }
    values.update(overrides)
    return Rules(**values)  # type: ignore[arg-type]


def day_slots(
    day: date,
    the_rules: Rules | None = None,
    duration: timedelta = HOUR,
    *,
    now: datetime = NOW,
    busy: list[tuple[datetime, datetime]] | None = None,
) -> list[str]:
    start = datetime.combine(day, time(0), tzinfo=BERLIN)
    found = compute_slots(
        the_rules or rules(), duration, start, start + timedelta(days=1), now=now, busy=busy or []
    )
    return [s.start.astimezone(BERLIN).strftime("%H:%M") for s in found]


def berlin(day: date, hh_mm: str) -> datetime:
    return datetime.combine(day, time.fromisoformat(hh_mm), tzinfo=BERLIN).astimezone(UTC)


MONDAY = date(2026, 2, 2)


def test_weekly_hours_with_several_ranges_per_day() -> None:
    weekly = {0: [(time(8), time(10)), (time(14), time(16))]}
    assert day_slots(MONDAY, rules(weekly=weekly)) == ["08:00", "09:00", "14:00", "15:00"]
    assert day_slots(MONDAY + timedelta(days=1), rules(weekly=weekly)) == []  # Tuesday: closed


def test_a_date_override_closes_a_day_or_gives_it_special_hours() -> None:
    special = MONDAY + timedelta(days=1)
    overrides = {MONDAY: [], special: [(time(18), time(20))]}
    assert day_slots(MONDAY, rules(overrides=overrides)) == []
    assert day_slots(special, rules(overrides=overrides)) == ["18:00", "19:00"]


def test_public_holidays_of_the_chosen_state_close_the_calendar() -> None:
    epiphany = date(2026, 1, 6)  # a holiday in Bavaria, not in North Rhine-Westphalia
    from demandly.booking.service import _holidays

    assert day_slots(epiphany, rules(holidays=_holidays("BY", 2026))) == []
    assert len(day_slots(epiphany, rules(holidays=_holidays("NW", 2026)))) == 8
    # An override opens a holiday again.
    opened = rules(holidays=_holidays("BY", 2026), overrides={epiphany: [(time(10), time(12))]})
    assert day_slots(epiphany, opened) == ["10:00", "11:00"]


def test_slot_interval_sets_the_step_between_starts() -> None:
    weekly = {0: [(time(9), time(11))]}
    assert day_slots(MONDAY, rules(weekly=weekly), HOUR) == ["09:00", "10:00"]
    stepped = rules(weekly=weekly, interval=timedelta(minutes=30))
    assert day_slots(MONDAY, stepped, HOUR) == ["09:00", "09:30", "10:00"]


def test_slots_fit_inside_the_range() -> None:
    weekly = {0: [(time(9), time(10, 30))]}
    assert day_slots(MONDAY, rules(weekly=weekly), HOUR) == ["09:00"]


def test_minimum_notice_hides_slots_too_soon() -> None:
    now = berlin(MONDAY, "10:20")
    found = day_slots(MONDAY, rules(minimum_notice=timedelta(hours=2)), now=now)
    assert found[0] == "13:00"  # 12:20 is the earliest start; the next slot is 13:00


def test_the_booking_window_ends_the_days_on_offer() -> None:
    now = berlin(MONDAY, "08:00")
    window = rules(window_days=2)
    assert day_slots(MONDAY + timedelta(days=2), window, now=now)
    assert day_slots(MONDAY + timedelta(days=3), window, now=now) == []


def test_existing_appointments_take_their_time() -> None:
    busy = [(berlin(MONDAY, "10:00"), berlin(MONDAY, "11:00"))]
    found = day_slots(MONDAY, busy=busy)
    assert "10:00" not in found and "09:00" in found and "11:00" in found


def test_buffers_keep_time_free_around_appointments_but_not_at_the_edges() -> None:
    busy = [(berlin(MONDAY, "12:00"), berlin(MONDAY, "13:00"))]
    buffered = rules(
        interval=timedelta(minutes=15),
        buffer_before=timedelta(minutes=15),
        buffer_after=timedelta(minutes=30),
    )
    found = day_slots(MONDAY, buffered, busy=busy)
    assert found[0] == "09:00"  # no buffer against the opening time
    assert "10:30" in found and "10:45" not in found  # must end 30 min before 12:00
    assert "13:15" not in found and "13:30" in found  # starts 30 min after 13:00
    assert found[-1] == "16:00"  # and none against the closing time


def test_a_day_with_its_maximum_of_bookings_offers_nothing() -> None:
    busy = [
        (berlin(MONDAY, "09:00"), berlin(MONDAY, "10:00")),
        (berlin(MONDAY, "15:00"), berlin(MONDAY, "16:00")),
    ]
    limited = rules(max_per_day=2)
    assert day_slots(MONDAY, limited, busy=busy) == []
    assert day_slots(MONDAY, limited, busy=busy[:1])
    assert len(day_slots(MONDAY + timedelta(days=1), limited, busy=busy)) == 8


def test_a_long_appointment_blocks_across_shorter_later_ones() -> None:
    busy = [
        (berlin(MONDAY, "09:00"), berlin(MONDAY, "15:00")),
        (berlin(MONDAY, "10:00"), berlin(MONDAY, "10:30")),
    ]
    assert day_slots(MONDAY, busy=busy) == ["15:00", "16:00"]


def test_spring_forward_in_berlin() -> None:
    """29 March 2026: 02:00 CET becomes 03:00 CEST. Opening hours keep their wall times
    (09:00 is 08:00 UTC before and 07:00 UTC after), and a range across the change has one
    real hour less."""
    before, change, after = date(2026, 3, 28), date(2026, 3, 29), date(2026, 3, 30)
    nine = {"start": time(9)}
    for day, utc_hour in ((before, 8), (after, 7)):
        start = datetime.combine(day, nine["start"], tzinfo=BERLIN)
        found = compute_slots(rules(), HOUR, start, start + HOUR, now=NOW)
        assert found == [Slot(found[0].start, found[0].start + HOUR)]
        assert found[0].start.hour == utc_hour
    night = rules(weekly={6: [(time(0), time(6))]})
    assert day_slots(change, night) == ["00:00", "01:00", "03:00", "04:00", "05:00"]


def test_fall_back_in_berlin() -> None:
    """25 October 2026: 03:00 CEST becomes 02:00 CET. The hour from 02:00 happens twice,
    and both are offered."""
    change = date(2026, 10, 25)
    night = rules(weekly={6: [(time(0), time(6))]})
    start = datetime.combine(change, time(0), tzinfo=BERLIN)
    found = compute_slots(night, HOUR, start, start + timedelta(days=1), now=NOW)
    assert [s.start.astimezone(BERLIN).strftime("%H:%M") for s in found] == [
        "00:00",
        "01:00",
        "02:00",
        "02:00",
        "03:00",
        "04:00",
        "05:00",
    ]
    assert len({s.start for s in found}) == 7  # seven distinct instants
    assert day_slots(date(2026, 10, 26), rules())[0] == "09:00"
    monday_nine = compute_slots(
        rules(),
        HOUR,
        berlin(date(2026, 10, 26), "09:00"),
        berlin(date(2026, 10, 26), "10:00"),
        now=NOW,
    )
    assert monday_nine[0].start.hour == 8  # 09:00 CET is 08:00 UTC


def test_a_visitor_in_another_time_zone_gets_the_same_instants() -> None:
    """The request range is in the visitor's zone; the slots stay Berlin's opening hours."""
    new_york = ZoneInfo("America/New_York")
    start = datetime.combine(MONDAY, time(0), tzinfo=new_york)  # 06:00 Berlin
    found = compute_slots(rules(), HOUR, start, start + timedelta(hours=12), now=NOW)
    local = [s.start.astimezone(new_york).strftime("%H:%M") for s in found]
    assert local == ["03:00", "04:00", "05:00", "06:00", "07:00", "08:00", "09:00", "10:00"]
