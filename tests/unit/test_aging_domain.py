"""Aging rules: buckets and their edges, staleness, business-day ages and the SQL thresholds."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.business_time import Calendar, CalendarError
from services.intake.aging.domain import (
    BUCKETS,
    MAX_DAYS_BACK,
    AgeBucket,
    BusinessDayCounter,
    bucket_of,
    bucket_range,
    business_days_between,
    is_stale,
    local_midnight,
)

WEEKDAYS = {day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
INDIA = Calendar.from_spec(
    {
        "timezone": "Asia/Kolkata",
        "hours": WEEKDAYS,
        "holidays": {"country": "IN", "subdivision": None},
        "closed_dates": ["2026-12-24"],
    }
)
OFFICE_UTC = Calendar.from_spec({"timezone": "UTC", "hours": WEEKDAYS})
ALWAYS = Calendar.always_open_in("UTC")
KOLKATA = ZoneInfo("Asia/Kolkata")


def local(day: str, clock: str = "12:00", zone: ZoneInfo = KOLKATA) -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=zone)


EXPECTED_BUCKETS = (
    [AgeBucket.DAYS_0_2] * 3
    + [AgeBucket.DAYS_3_7] * 5
    + [AgeBucket.DAYS_8_14] * 7
    + [AgeBucket.DAYS_15_30] * 16
    + [AgeBucket.DAYS_30_PLUS] * 20
)


@pytest.mark.parametrize("age", range(len(EXPECTED_BUCKETS)))
def test_every_age_up_to_fifty_has_its_bucket(age: int) -> None:
    assert bucket_of(age) is EXPECTED_BUCKETS[age]


@pytest.mark.parametrize(
    ("age", "bucket"),
    [
        (0, "0-2"),
        (2, "0-2"),
        (3, "3-7"),
        (7, "3-7"),
        (8, "8-14"),
        (14, "8-14"),
        (15, "15-30"),
        (30, "15-30"),
        (31, "30+"),
        (10_000, "30+"),
    ],
)
def test_bucket_edges(age: int, bucket: str) -> None:
    assert bucket_of(age).value == bucket


def test_a_negative_age_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        bucket_of(-1)


def test_bucket_ranges_tile_the_ages_without_gaps_or_overlap() -> None:
    assert [b.value for b in BUCKETS] == ["0-2", "3-7", "8-14", "15-30", "30+"]
    ranges = [bucket_range(b) for b in BUCKETS]
    assert ranges == [(0, 2), (3, 7), (8, 14), (15, 30), (31, None)]
    for (_, high), (low, _) in itertools.pairwise(ranges):
        assert high is not None
        assert low == high + 1


@pytest.mark.parametrize(
    ("idle", "after", "stale"),
    [(0, 1, False), (1, 1, True), (4, 5, False), (5, 5, True), (6, 5, True), (0, 5, False)],
)
def test_stale_from_the_threshold_on(idle: int, after: int, stale: bool) -> None:
    assert is_stale(idle, after) is stale


def test_a_stale_threshold_below_one_day_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        is_stale(3, 0)


# 2026-11-23 is a Monday, 2026-11-24 a public holiday in India (Guru Nanak's Birthday).
@pytest.mark.parametrize(
    ("start", "at", "days"),
    [
        (local("2026-11-23", "09:00"), local("2026-11-23", "23:59"), 0),  # same day
        (local("2026-11-24", "23:59"), local("2026-11-25", "00:00"), 1),  # a day began
        (local("2026-11-23", "23:59"), local("2026-11-24", "12:00"), 0),  # Tue 24: a holiday
        (local("2026-11-23"), local("2026-11-27"), 3),  # Mon -> Fri, the holiday skipped
        (local("2026-11-27", "17:00"), local("2026-11-28"), 0),  # Fri -> Sat: closed
        (local("2026-11-27", "17:00"), local("2026-11-29"), 0),  # Fri -> Sun: closed
        (local("2026-11-27", "17:00"), local("2026-11-30", "00:01"), 1),  # Fri -> Mon
        (local("2026-11-30"), local("2026-12-14"), 10),  # two weeks
        (local("2026-12-23"), local("2026-12-28"), 1),  # 24th closed, 25th holiday
        (local("2026-11-27"), local("2026-11-23"), 0),  # at before start
    ],
)
def test_business_days_on_the_india_calendar(start: datetime, at: datetime, days: int) -> None:
    assert business_days_between(INDIA, start, at) == days


def test_dates_are_local_to_the_calendar() -> None:
    # 20:00 UTC on Monday is already Tuesday 01:30 in Kolkata: one business day has begun.
    start = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)  # Monday 23:30 in Kolkata
    at = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)
    assert business_days_between(INDIA, start, at) == 1
    assert business_days_between(OFFICE_UTC, start, at) == 0


def test_an_always_open_calendar_counts_every_date() -> None:
    start = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)  # Friday
    assert business_days_between(ALWAYS, start, datetime(2026, 11, 30, 1, tzinfo=UTC)) == 3


def test_naive_instants_are_refused() -> None:
    with pytest.raises(CalendarError):
        BusinessDayCounter(INDIA, datetime(2026, 11, 23))
    with pytest.raises(CalendarError):
        BusinessDayCounter(INDIA, local("2026-11-23")).age(datetime(2026, 11, 23))


def test_ages_older_than_the_scan_limit_still_count_exactly() -> None:
    at = datetime(2026, 11, 28, tzinfo=UTC)
    counter = BusinessDayCounter(ALWAYS, at)
    assert counter.age(at - timedelta(days=MAX_DAYS_BACK + 40)) == MAX_DAYS_BACK + 40
    office = BusinessDayCounter(OFFICE_UTC, at)
    start = at - timedelta(days=MAX_DAYS_BACK + 9)
    brute = sum(
        1
        for offset in range(1, (at.date() - start.date()).days + 1)
        if (start.date() + timedelta(days=offset)).weekday() < 5
    )
    assert office.age(start) == brute


def test_thresholds_are_the_start_of_the_nth_business_day_back() -> None:
    counter = BusinessDayCounter(INDIA, local("2026-11-30", "10:00"))  # Monday
    assert counter.threshold(1) == local("2026-11-30", "00:00").astimezone(UTC)
    assert counter.threshold(2) == local("2026-11-27", "00:00").astimezone(UTC)  # Friday
    # Back from Monday 30: 30, 27, 26, 25, (24 is a holiday), 23, 20.
    assert counter.threshold(5) == local("2026-11-23", "00:00").astimezone(UTC)
    assert counter.threshold(6) == local("2026-11-20", "00:00").astimezone(UTC)
    with pytest.raises(ValueError, match="at least one"):
        counter.threshold(0)


def test_no_threshold_beyond_the_scan_limit() -> None:
    counter = BusinessDayCounter(ALWAYS, datetime(2026, 11, 28, tzinfo=UTC))
    assert counter.threshold(MAX_DAYS_BACK) is not None
    assert counter.threshold(MAX_DAYS_BACK + 1) is None


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        ("America/Havana", date(2026, 3, 8)),  # DST starts at midnight: 00:00 does not exist
        ("America/Santiago", date(2026, 9, 6)),  # idem, southern hemisphere
        ("America/Havana", date(2026, 11, 1)),  # DST ends at 01:00: midnight is unambiguous
        ("Asia/Kolkata", date(2026, 11, 30)),
    ],
)
def test_local_midnight_is_the_first_instant_of_the_day(zone: str, day: date) -> None:
    calendar = Calendar.always_open_in(zone)
    first = local_midnight(calendar, day)
    assert first.astimezone(ZoneInfo(zone)).date() == day
    assert (first - timedelta(microseconds=1)).astimezone(ZoneInfo(zone)).date() < day


instants = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(
    start=instants,
    at=instants,
    days=st.integers(min_value=1, max_value=40),
    calendar=st.sampled_from(
        [INDIA, OFFICE_UTC, ALWAYS, Calendar.always_open_in("America/Havana")]
    ),
)
def test_the_sql_threshold_agrees_with_the_age(
    start: datetime, at: datetime, days: int, calendar: Calendar
) -> None:
    """`created_at < threshold(k)` is exactly `age >= k`: the database and Python never differ."""
    counter = BusinessDayCounter(calendar, at)
    edge = counter.threshold(days)
    assert edge is not None
    assert (start < edge) == (counter.age(start) >= days)
    assert counter.age(start) == business_days_between(calendar, start, at)


@settings(max_examples=200, deadline=None)
@given(
    start=instants,
    at=instants,
    later=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=60)),
)
def test_ages_never_decrease_as_time_passes(
    start: datetime, at: datetime, later: timedelta
) -> None:
    assert business_days_between(INDIA, start, at) <= business_days_between(
        INDIA, start, at + later
    )
