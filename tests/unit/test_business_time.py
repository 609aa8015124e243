"""Business-time arithmetic: worked examples, DST, holidays, and hypothesis properties."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.business_time import (
    Calendar,
    CalendarError,
    add,
    elapsed,
    format_duration,
    parse_business_duration,
    validate_pauses,
)

WEEKDAYS_9_TO_6 = {day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
INDIA = Calendar.from_spec(
    {
        "timezone": "Asia/Kolkata",
        "hours": WEEKDAYS_9_TO_6,
        "holidays": {"country": "IN", "subdivision": None},
    }
)
SAN_JOSE = Calendar.from_spec(
    {
        "timezone": "America/Los_Angeles",
        "hours": {
            "mon": [["08:00", "12:00"], ["13:00", "17:00"]],
            "tue": [["08:00", "17:00"]],
            "sat": [["22:00", "24:00"]],
        },
        "holidays": {"country": "US", "subdivision": "CA"},
        "closed_dates": ["2026-12-24"],
    }
)
ALWAYS = Calendar.always_open_in("UTC")
CALENDARS = [INDIA, SAN_JOSE, ALWAYS]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_deadline_skips_weekend() -> None:
    # Friday 15:30 IST + 8h business = 2.5h Friday + 5.5h Monday -> Monday 14:30 IST.
    deadline = add(INDIA, utc(2026, 11, 27, 10, 0), timedelta(hours=8))
    assert deadline == utc(2026, 11, 30, 9, 0)


def test_deadline_exactly_at_close_is_the_close_not_next_open() -> None:
    start = utc(2026, 11, 30, 3, 30)  # Monday 09:00 IST
    assert add(INDIA, start, timedelta(hours=9)) == utc(2026, 11, 30, 12, 30)  # 18:00 IST


def test_public_holiday_is_skipped() -> None:
    # 26 January 2026 (Republic Day) is a Monday: Friday 17:00 IST + 2h lands on Tuesday.
    deadline = add(INDIA, utc(2026, 1, 23, 11, 30), timedelta(hours=2))
    assert deadline.astimezone(INDIA.zone) == datetime(2026, 1, 27, 10, 0, tzinfo=INDIA.zone)


def test_closed_dates_and_split_windows() -> None:
    # Monday 21 Dec 2026 11:00 PST; 1h before lunch, then 4h after it.
    start = datetime(2026, 12, 21, 11, 0, tzinfo=SAN_JOSE.zone)
    assert add(SAN_JOSE, start, timedelta(hours=5)) == datetime(
        2026, 12, 21, 17, 0, tzinfo=SAN_JOSE.zone
    )
    # Wednesday 23 Dec has no hours, 24 Dec is closed, 25 Dec is a holiday: next is Saturday 22:00.
    tuesday_end = datetime(2026, 12, 22, 17, 0, tzinfo=SAN_JOSE.zone)
    assert add(SAN_JOSE, tuesday_end, timedelta(hours=1)) == datetime(
        2026, 12, 26, 23, 0, tzinfo=SAN_JOSE.zone
    )


def test_window_ending_at_midnight() -> None:
    saturday = datetime(2026, 12, 26, 23, 30, tzinfo=SAN_JOSE.zone)
    assert elapsed(SAN_JOSE, saturday, saturday + timedelta(hours=5)) == timedelta(minutes=30)


@pytest.mark.parametrize(
    ("day", "expected_utc_open"),
    [
        (date(2026, 3, 2), utc(2026, 3, 2, 16, 0)),  # Monday before DST starts: PST, UTC-8
        (date(2026, 3, 9), utc(2026, 3, 9, 15, 0)),  # Monday after: PDT, UTC-7
        (date(2026, 11, 2), utc(2026, 11, 2, 16, 0)),  # Monday after DST ends: PST again
    ],
)
def test_local_hours_stay_local_across_dst(day: date, expected_utc_open: datetime) -> None:
    start_of_day = datetime(day.year, day.month, day.day, tzinfo=SAN_JOSE.zone)
    assert add(SAN_JOSE, start_of_day, timedelta(seconds=1)) == expected_utc_open + timedelta(
        seconds=1
    )


def test_an_always_open_window_over_the_dst_change_is_as_long_as_the_clock_says() -> None:
    la = Calendar.from_spec(
        {"timezone": "America/Los_Angeles", "hours": {"sun": [["00:00", "24:00"]]}}
    )
    sunday = datetime(2026, 3, 8, tzinfo=la.zone)
    assert elapsed(la, sunday, sunday + timedelta(days=1)) == timedelta(hours=23)


def test_pause_moves_deadline_by_its_business_time() -> None:
    start = utc(2026, 11, 30, 3, 30)  # Monday 09:00 IST
    pause = (utc(2026, 11, 30, 5, 30), utc(2026, 11, 30, 6, 30))  # one business hour
    assert add(INDIA, start, timedelta(hours=4), [pause]) == add(INDIA, start, timedelta(hours=5))


def test_zero_duration_is_start() -> None:
    start = utc(2026, 11, 28, 12, 0)
    assert add(INDIA, start, timedelta(0)) == start


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT8H", timedelta(hours=8)),
        ("PT90M", timedelta(minutes=90)),
        ("PT30S", timedelta(seconds=30)),
        ("PT1H30M5S", timedelta(seconds=5405)),
    ],
)
def test_duration_parsing(text: str, expected: timedelta) -> None:
    assert parse_business_duration(text) == expected
    assert parse_business_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("text", ["P1D", "P1W", "P1DT2H", "P1Y", "8h", "PT", "", "PT-1H"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(CalendarError) as caught:
        parse_business_duration(text)
    if text.startswith("P1"):
        assert "hours" in caught.value.message


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"timezone": "Mars/Olympus", "always_open": True}, "timezone"),
        ({"timezone": "UTC"}, "hours"),
        ({"timezone": "UTC", "hours": {"funday": [["09:00", "10:00"]]}}, "hours.funday"),
        ({"timezone": "UTC", "hours": {"mon": [["10:00", "09:00"]]}}, "hours.mon[0]"),
        (
            {"timezone": "UTC", "hours": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}},
            "hours.mon",
        ),
        ({"timezone": "UTC", "hours": {"mon": [["25:00", "26:00"]]}}, "hours.mon[0]"),
        ({"timezone": "UTC", "hours": {"mon": [["9am", "5pm"]]}}, "hours.mon[0]"),
        (
            {
                "timezone": "UTC",
                "hours": {"mon": [["09:00", "17:00"]]},
                "holidays": {"country": "XX"},
            },
            "holidays",
        ),
        (
            {
                "timezone": "UTC",
                "hours": {"mon": [["09:00", "17:00"]]},
                "closed_dates": ["24/12/2026"],
            },
            "closed_dates[0]",
        ),
    ],
)
def test_bad_calendars_name_the_field(spec: dict[str, object], field: str) -> None:
    with pytest.raises(CalendarError) as caught:
        Calendar.from_spec(spec)
    assert caught.value.field == field


def test_overlapping_and_inverted_pauses_are_refused() -> None:
    a = utc(2026, 1, 1, 10)
    with pytest.raises(CalendarError, match="end after"):
        validate_pauses([(a, a)])
    with pytest.raises(CalendarError, match="overlaps"):
        validate_pauses(
            [(a, a + timedelta(hours=2)), (a + timedelta(hours=1), a + timedelta(hours=3))]
        )


def test_spec_round_trip() -> None:
    for calendar in CALENDARS:
        assert Calendar.from_spec(calendar.to_spec()) == calendar


# --- properties -------------------------------------------------------------------------------

instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)
durations = st.integers(min_value=0, max_value=400 * 3600).map(lambda s: timedelta(seconds=s))
calendars = st.sampled_from(CALENDARS)


@st.composite
def pause_lists(draw: st.DrawFn, start: datetime) -> list[tuple[datetime, datetime]]:
    offsets = sorted(
        draw(st.lists(st.integers(0, 60 * 24 * 40), min_size=0, max_size=6, unique=True))
    )
    pauses = []
    for begin, end in zip(offsets[::2], offsets[1::2], strict=False):
        pauses.append((start + timedelta(minutes=begin), start + timedelta(minutes=end)))
    return pauses


@settings(max_examples=300, deadline=None)
@given(calendar=calendars, start=instants, duration=durations, data=st.data())
def test_elapsed_inverts_add(
    calendar: Calendar, start: datetime, duration: timedelta, data: st.DataObject
) -> None:
    pauses = data.draw(pause_lists(start))
    deadline = add(calendar, start, duration, pauses)
    assert deadline >= start
    assert elapsed(calendar, start, deadline, pauses) == duration


@settings(max_examples=300, deadline=None)
@given(calendar=calendars, start=instants, at=instants, data=st.data())
def test_add_of_elapsed_is_the_first_instant_reaching_it(
    calendar: Calendar, start: datetime, at: datetime, data: st.DataObject
) -> None:
    pauses = data.draw(pause_lists(start))
    worked = elapsed(calendar, start, at, pauses)
    reached = add(calendar, start, worked, pauses)
    assert reached <= max(at, start)
    assert elapsed(calendar, start, reached, pauses) == worked


@settings(max_examples=300, deadline=None)
@given(calendar=calendars, start=instants, a=durations, b=durations)
def test_add_is_monotone(calendar: Calendar, start: datetime, a: timedelta, b: timedelta) -> None:
    low, high = sorted((a, b))
    assert add(calendar, start, low) <= add(calendar, start, high)


@settings(max_examples=300, deadline=None)
@given(calendar=calendars, start=instants, a=durations, b=durations)
def test_elapsed_is_monotone(
    calendar: Calendar, start: datetime, a: timedelta, b: timedelta
) -> None:
    low, high = sorted((a, b))
    assert elapsed(calendar, start, start + low) <= elapsed(calendar, start, start + high)


@settings(max_examples=300, deadline=None)
@given(
    calendar=calendars,
    start=instants,
    duration=durations.filter(lambda d: d > timedelta(0)),
    pause_at=st.integers(0, 60 * 24 * 30),
    pause_minutes=st.integers(1, 60 * 24 * 5),
)
def test_pause_moves_deadline_by_exactly_the_business_time_it_covers(
    calendar: Calendar, start: datetime, duration: timedelta, pause_at: int, pause_minutes: int
) -> None:
    pause = (
        start + timedelta(minutes=pause_at),
        start + timedelta(minutes=pause_at + pause_minutes),
    )
    with_pause = add(calendar, start, duration, [pause])
    covered = elapsed(calendar, pause[0], min(pause[1], with_pause))
    if pause[0] >= with_pause:
        covered = timedelta(0)
    assert elapsed(calendar, start, with_pause) - covered == duration
    assert with_pause == add(calendar, start, duration + covered) or covered == timedelta(0)
