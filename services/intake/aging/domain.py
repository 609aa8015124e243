"""Pure aging rules: business-day age, age buckets and staleness. No I/O.

A **business day** is a local date (in the calendar's time zone) on which the calendar has
business hours: not a closed weekday, public holiday or closed date (`Calendar.is_open_on`). An
always-open calendar makes every date a business day.

The **age in business days** of an instant `t`, seen at `at`, is the number of business days
*d* with `local_date(t) < d <= local_date(at)`: how many business days have begun since the day
of `t`. Something filed on Monday is 0 days old all Monday and 1 day old on Tuesday; something
filed on Friday is 1 day old on Monday (the weekend is not counted). The time of day never
matters, so an age is the same all day long and does not depend on when a sweep runs. Anything at
or after `at` is 0 days old.

A request's **age** counts from its `created_at`; its **idle** days count from its `updated_at`.
It is **stale** when idle for at least N business days (`Settings.aging_stale_business_days`).

**Buckets** of the age: `0-2`, `3-7`, `8-14`, `15-30` (30 included) and `30+` (more than 30).

`BusinessDayCounter.threshold(k)` turns "at least k business days old" into an instant, so the
database can filter and count by plain `created_at < threshold` comparisons on an index, and the
calendar arithmetic runs once per query instead of once per row.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from services.common.business_time import Calendar, CalendarError

# Looking further back than ten years is a configuration error, not an age (as in business_time).
MAX_DAYS_BACK = 3_660


class AgeBucket(StrEnum):
    """Age buckets in business days, youngest first."""

    DAYS_0_2 = "0-2"
    DAYS_3_7 = "3-7"
    DAYS_8_14 = "8-14"
    DAYS_15_30 = "15-30"
    DAYS_30_PLUS = "30+"


# (bucket, smallest age in it, largest age in it or None for no bound), youngest first.
BUCKET_RANGES: tuple[tuple[AgeBucket, int, int | None], ...] = (
    (AgeBucket.DAYS_0_2, 0, 2),
    (AgeBucket.DAYS_3_7, 3, 7),
    (AgeBucket.DAYS_8_14, 8, 14),
    (AgeBucket.DAYS_15_30, 15, 30),
    (AgeBucket.DAYS_30_PLUS, 31, None),
)
BUCKETS: tuple[AgeBucket, ...] = tuple(bucket for bucket, _, _ in BUCKET_RANGES)


def bucket_of(age_days: int) -> AgeBucket:
    """The bucket of an age in business days (negative ages are refused)."""
    if age_days < 0:
        raise ValueError(f"an age cannot be negative ({age_days})")
    for bucket, low, high in BUCKET_RANGES:
        if low <= age_days and (high is None or age_days <= high):
            return bucket
    raise AssertionError("the bucket ranges cover every age")  # pragma: no cover


def bucket_range(bucket: AgeBucket) -> tuple[int, int | None]:
    """The smallest and largest age (None: unbounded) of a bucket, both included."""
    for candidate, low, high in BUCKET_RANGES:
        if candidate is bucket:
            return low, high
    raise AssertionError(f"unknown bucket {bucket!r}")  # pragma: no cover


def is_stale(idle_days: int, stale_after_days: int) -> bool:
    """Whether something idle for `idle_days` business days is stale (threshold included)."""
    if stale_after_days < 1:
        raise ValueError("the stale threshold is at least one business day")
    return idle_days >= stale_after_days


def business_days_between(calendar: Calendar, start: datetime, at: datetime) -> int:
    """The age in business days of `start` at `at` (see the module docstring)."""
    return BusinessDayCounter(calendar, at).age(start)


class BusinessDayCounter:
    """Ages and thresholds seen at one instant on one calendar, memoised per local date.

    Counting walks back from the local date of `at` once (at most `MAX_DAYS_BACK` days), so the
    ages of a thousand rows cost one walk, not a thousand.
    """

    def __init__(self, calendar: Calendar, at: datetime) -> None:
        if at.tzinfo is None:
            raise CalendarError("at", "must be a timezone-aware instant")
        self.calendar = calendar
        self.at = at.astimezone(UTC)
        self.zone = calendar.zone
        self.today: date = self.at.astimezone(self.zone).date()
        # _counts[i]: business days among the i most recent local dates (today, yesterday, ...).
        self._counts: list[int] = [0]

    def _extend_to(self, back: int) -> None:
        while len(self._counts) <= back:
            day = self.today - timedelta(days=len(self._counts) - 1)
            self._counts.append(self._counts[-1] + (1 if self.calendar.is_open_on(day) else 0))

    def days_since(self, day: date) -> int:
        """Business days `d` with `day < d <= today`."""
        back = (self.today - day).days
        if back <= 0:
            return 0
        # Past the scan limit the age keeps counting the rarer way, day by day from the limit.
        if back > MAX_DAYS_BACK:
            self._extend_to(MAX_DAYS_BACK)
            older = sum(
                1
                for offset in range(MAX_DAYS_BACK, back)
                if self.calendar.is_open_on(self.today - timedelta(days=offset))
            )
            return self._counts[MAX_DAYS_BACK] + older
        self._extend_to(back)
        return self._counts[back]

    def age(self, instant: datetime) -> int:
        """The age in business days of `instant` at this counter's `at`."""
        if instant.tzinfo is None:
            raise CalendarError("instant", "must be a timezone-aware instant")
        return self.days_since(instant.astimezone(self.zone).date())

    def threshold(self, days: int) -> datetime | None:
        """The instant before which an instant is at least `days` business days old.

        It is the start of the `days`-th business day counting back from today (today included):
        an instant earlier than that day has seen that day and the `days - 1` after it begin.
        None if there are not that many business days in the last `MAX_DAYS_BACK` days.
        """
        if days < 1:
            raise ValueError("a threshold is for at least one business day")
        for back in range(MAX_DAYS_BACK):
            self._extend_to(back + 1)
            if self._counts[back + 1] >= days:
                return local_midnight(self.calendar, self.today - timedelta(days=back))
        return None


def local_midnight(calendar: Calendar, day: date) -> datetime:
    """The first instant of a local date in the calendar's zone, in UTC.

    Where midnight does not exist (a DST gap at 00:00), zoneinfo's default fold gives the first
    wall-clock time that does, which is the start of the day.
    """
    return datetime(day.year, day.month, day.day, tzinfo=calendar.zone).astimezone(UTC)
