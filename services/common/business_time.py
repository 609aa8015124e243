"""Business-time arithmetic: deadlines and elapsed time on a business calendar, with pauses.

Pure functions, no I/O: the gateway (SLA previews, aging) and the workflows (SLA clocks) both
import this module, so a deadline computed in either place is the same instant.

Semantics (ServiceNow / Jira Service Management style):
- A calendar is open during its weekly local wall-clock hours, except on its country's public
  holidays (the `holidays` package) and its own closed dates; or it is always open (24x7).
- Local times are wall-clock times in the calendar's zone, so "09:00-18:00" stays 09:00-18:00
  across DST changes; a window that spans the change itself is as long as the clock says.
- A pause is a half-open instant range `[start, end)` during which the clock does not run.
- `add` returns the first instant at which the business time worked since `start`, less
  pauses, reaches the duration; `elapsed` is the business time worked from `start` to `at`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_SECONDS = 86_400
ZERO = timedelta(0)
# A calendar with no open time in ten years is a configuration error, not a deadline.
_MAX_DAYS_SCANNED = 3_660

Pause = tuple[datetime, datetime]


class CalendarError(ValueError):
    """A calendar, duration or pause that cannot be used; `field` names the offending part."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Calendar:
    """A business calendar; build it with `Calendar.from_spec` (validates) or `always_open_in`."""

    timezone: str
    always_open: bool = False
    # Weekday (0 = Monday) -> sorted, non-overlapping (start, end) seconds since local midnight.
    hours: Mapping[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    closed_dates: frozenset[date] = frozenset()

    @property
    def zone(self) -> ZoneInfo:
        """The calendar's time zone."""
        return _zone(self.timezone)

    @classmethod
    def always_open_in(cls, timezone: str) -> Calendar:
        """A 24x7 calendar (the zone only matters for display and aging days)."""
        _zone_or_error(timezone)
        return cls(timezone=timezone, always_open=True)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Calendar:
        """Validate a calendar object as the API takes it (see the module docstring)."""
        if not isinstance(spec, Mapping):
            raise CalendarError("calendar", "must be an object")
        timezone = spec.get("timezone")
        if not isinstance(timezone, str):
            raise CalendarError("timezone", "an IANA time zone name is required")
        _zone_or_error(timezone)
        if spec.get("always_open") is True:
            return cls(timezone=timezone, always_open=True)
        hours = _parse_hours(spec.get("hours"))
        country, subdivision = _parse_holidays(spec.get("holidays"))
        closed = _parse_closed_dates(spec.get("closed_dates", []))
        return cls(
            timezone=timezone,
            hours=hours,
            holiday_country=country,
            holiday_subdivision=subdivision,
            closed_dates=closed,
        )

    def to_spec(self) -> dict[str, Any]:
        """The calendar as the API shows it (inverse of `from_spec`)."""
        if self.always_open:
            return {"timezone": self.timezone, "always_open": True}
        return {
            "timezone": self.timezone,
            "hours": {
                WEEKDAYS[day]: [[_clock(start), _clock(end)] for start, end in windows]
                for day, windows in sorted(self.hours.items())
            },
            "holidays": (
                {"country": self.holiday_country, "subdivision": self.holiday_subdivision}
                if self.holiday_country
                else None
            ),
            "closed_dates": sorted(d.isoformat() for d in self.closed_dates),
        }

    def is_open_on(self, day: date) -> bool:
        """Whether any business hours fall on a local date."""
        if self.always_open:
            return True
        if not self.hours.get(day.weekday()) or day in self.closed_dates:
            return False
        if self.holiday_country is not None:
            return day not in _holidays(self.holiday_country, self.holiday_subdivision)
        return True


def add(
    calendar: Calendar, start: datetime, duration: timedelta, pauses: Sequence[Pause] = ()
) -> datetime:
    """The first instant at which business time since `start`, less pauses, reaches `duration`."""
    _require_aware(start, "start")
    if duration < ZERO:
        raise CalendarError("duration", "must not be negative")
    remaining = duration
    if remaining == ZERO:
        return start
    for open_from, open_to in _open_intervals(calendar, start, validate_pauses(pauses)):
        length = open_to - open_from
        if length >= remaining:
            return (open_from + remaining).astimezone(UTC)
        remaining -= length
    raise CalendarError("calendar", "has no business time within ten years")  # pragma: no cover


def elapsed(
    calendar: Calendar, start: datetime, at: datetime, pauses: Sequence[Pause] = ()
) -> timedelta:
    """Business time worked from `start` to `at`, less pauses (zero if `at` is before `start`)."""
    _require_aware(start, "start")
    _require_aware(at, "at")
    total = ZERO
    if at <= start:
        return total
    for open_from, open_to in _open_intervals(calendar, start, validate_pauses(pauses)):
        if open_from >= at:
            break
        total += min(open_to, at) - open_from
    return total


def validate_pauses(pauses: Sequence[Pause]) -> list[Pause]:
    """Pauses sorted by start; inverted, empty, naive or overlapping pauses are refused."""
    ordered = sorted(pauses, key=lambda pause: pause[0])
    for index, (begin, end) in enumerate(ordered):
        _require_aware(begin, f"pauses[{index}][0]")
        _require_aware(end, f"pauses[{index}][1]")
        if end <= begin:
            raise CalendarError(f"pauses[{index}]", "must end after it starts")
        if index and begin < ordered[index - 1][1]:
            raise CalendarError(f"pauses[{index}]", "overlaps the previous pause")
    return ordered


_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?$")


def parse_business_duration(text: str) -> timedelta:
    """Parse an ISO-8601 duration of hours, minutes and seconds ("PT8H", "PT90M", "PT30S").

    Days and larger units are refused: a business "day" depends on the calendar, so targets are
    stated in business hours.
    """
    if not isinstance(text, str):
        raise CalendarError("target", "must be an ISO-8601 duration string such as PT8H")
    match = _DURATION.match(text.strip().upper())
    if match is None or text.strip().upper() == "PT":
        if re.match(r"^P(\d+[YMWD])+", text.strip().upper()):
            raise CalendarError(
                "target", "days, weeks, months and years are not allowed: state it in hours (PT24H)"
            )
        raise CalendarError("target", "must be an ISO-8601 duration such as PT8H, PT90M or PT30S")
    hours, minutes, seconds = match.groups()
    return timedelta(hours=int(hours or 0), minutes=int(minutes or 0), seconds=float(seconds or 0))


def format_duration(value: timedelta) -> str:
    """A timedelta as an ISO-8601 duration in hours, minutes and seconds."""
    total = int(value.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours}H" if hours else "", f"{minutes}M" if minutes else ""]
    parts.append(f"{seconds}S" if seconds or not (hours or minutes) else "")
    return "PT" + "".join(parts)


def _open_intervals(
    calendar: Calendar, start: datetime, pauses: list[Pause]
) -> Iterator[tuple[datetime, datetime]]:
    """Open business intervals from `start` on, in order, with the pauses cut out."""
    pause_index = 0
    for open_from, open_to in _calendar_intervals(calendar, start):
        cursor = open_from
        while pause_index < len(pauses) and pauses[pause_index][1] <= cursor:
            pause_index += 1
        scan = pause_index
        while scan < len(pauses) and pauses[scan][0] < open_to:
            pause_from, pause_to = pauses[scan]
            if pause_from > cursor:
                yield cursor, pause_from
            cursor = max(cursor, pause_to)
            if cursor >= open_to:
                break
            scan += 1
        if cursor < open_to:
            yield cursor, open_to


def _calendar_intervals(calendar: Calendar, start: datetime) -> Iterator[tuple[datetime, datetime]]:
    start = start.astimezone(UTC)
    if calendar.always_open:
        yield start, datetime.max.replace(tzinfo=UTC)
        return
    zone = calendar.zone
    day = start.astimezone(zone).date() - timedelta(days=1)  # a window may end after midnight UTC
    for _ in range(_MAX_DAYS_SCANNED):
        if calendar.is_open_on(day):
            midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
            for begin, end in calendar.hours[day.weekday()]:
                open_to = _local_instant(midnight, end)
                if open_to <= start:
                    continue
                yield max(_local_instant(midnight, begin), start), open_to
        day += timedelta(days=1)


def _local_instant(midnight: datetime, seconds: int) -> datetime:
    # Aware + timedelta is wall-clock arithmetic in zoneinfo: 09:00 stays 09:00 across DST.
    return (midnight + timedelta(seconds=seconds)).astimezone(UTC)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _zone_or_error(name: str) -> ZoneInfo:
    try:
        return _zone(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CalendarError("timezone", f"unknown time zone {name!r}") from exc


@lru_cache(maxsize=64)
def _holidays(country: str, subdivision: str | None) -> holidays.HolidayBase:
    return holidays.country_holidays(country, subdiv=subdivision)


def _parse_hours(raw: Any) -> dict[int, tuple[tuple[int, int], ...]]:
    if not isinstance(raw, Mapping) or not raw:
        raise CalendarError("hours", "weekly hours are required unless always_open is true")
    parsed: dict[int, tuple[tuple[int, int], ...]] = {}
    for name, windows in raw.items():
        if name not in WEEKDAYS:
            raise CalendarError(
                f"hours.{name}", f"unknown weekday; use one of {', '.join(WEEKDAYS)}"
            )
        if not isinstance(windows, list):
            raise CalendarError(f"hours.{name}", "must be a list of [start, end] pairs")
        spans: list[tuple[int, int]] = []
        for index, window in enumerate(windows):
            where = f"hours.{name}[{index}]"
            if not isinstance(window, list | tuple) or len(window) != 2:
                raise CalendarError(where, 'must be a pair like ["09:00", "18:00"]')
            begin, end = _seconds_of(window[0], where), _seconds_of(window[1], where)
            if end <= begin:
                raise CalendarError(where, "must end after it starts")
            spans.append((begin, end))
        spans.sort()
        for index in range(1, len(spans)):
            if spans[index][0] < spans[index - 1][1]:
                raise CalendarError(f"hours.{name}", "intervals overlap")
        if spans:
            parsed[WEEKDAYS.index(name)] = tuple(spans)
    if not parsed:
        raise CalendarError("hours", "at least one weekday needs business hours")
    return parsed


def _seconds_of(value: Any, where: str) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"\d{2}:\d{2}", value):
        raise CalendarError(where, f"{value!r} is not a HH:MM time")
    hours, minutes = int(value[:2]), int(value[3:])
    if (hours, minutes) == (24, 0):
        return DAY_SECONDS
    if hours > 23 or minutes > 59:
        raise CalendarError(where, f"{value!r} is not a valid time (00:00 to 24:00)")
    return hours * 3600 + minutes * 60


def _parse_holidays(raw: Any) -> tuple[str | None, str | None]:
    if raw is None:
        return None, None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("country"), str):
        raise CalendarError("holidays", 'must be {"country": "IN", "subdivision": null} or null')
    country, subdivision = raw["country"].upper(), raw.get("subdivision")
    if subdivision is not None and not isinstance(subdivision, str):
        raise CalendarError("holidays.subdivision", "must be a string or null")
    try:
        _holidays(country, subdivision)
    except NotImplementedError as exc:
        raise CalendarError("holidays", str(exc)) from exc
    return country, subdivision


def _parse_closed_dates(raw: Any) -> frozenset[date]:
    if not isinstance(raw, list):
        raise CalendarError("closed_dates", "must be a list of YYYY-MM-DD dates")
    closed = set()
    for index, value in enumerate(raw):
        try:
            closed.add(date.fromisoformat(value))
        except (TypeError, ValueError) as exc:
            raise CalendarError(
                f"closed_dates[{index}]", f"{value!r} is not a YYYY-MM-DD date"
            ) from exc
    return frozenset(closed)


def _clock(seconds: int) -> str:
    return (
        "24:00"
        if seconds == DAY_SECONDS
        else time(seconds // 3600, seconds % 3600 // 60).strftime("%H:%M")
    )


def _require_aware(value: datetime, name: str) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise CalendarError(name, "must be a timezone-aware instant")
