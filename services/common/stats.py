"""Domain-free helpers of the stats endpoints: the reporting period and SQL percentiles.

A period is a half-open UTC range `[start, end)`, given as an ISO week (`week=2026-W48`: Monday
00:00 to the next Monday 00:00) or as dates (`from`/`to`, both included: `to` ends at the next
midnight). Percentiles follow PostgreSQL's `percentile_cont` (linear interpolation between the
two nearest ranks); on SQLite, which has none, each percentile is one ordered `LIMIT 2 OFFSET k`
query on the same filter, so neither backend ships rows to Python.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Float, SQLColumnExpression, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import utcnow
from services.common.errors import ValidationFailed

WEEK_PATTERN = r"^\d{4}-W\d{2}$"
MAX_PERIOD_DAYS = 366
EARLIEST_YEAR, LATEST_YEAR = 2000, 2099
DEFAULT_PERCENTILES: tuple[float, ...] = (0.5, 0.9)


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open UTC range `[start, end)`; `week` is set when it is exactly one ISO week."""

    start: datetime
    end: datetime
    week: str | None = None

    @property
    def first_day(self) -> date:
        """The first date of the period."""
        return self.start.date()

    @property
    def last_day(self) -> date:
        """The last date of the period (included)."""
        return (self.end - timedelta(days=1)).date()

    def as_of(self, now: datetime | None = None) -> datetime:
        """The instant a point-in-time value (backlog, overdue) is taken at: the end of the
        period, or now while the period is still running."""
        return min(self.end, now or utcnow())


class PeriodRead(BaseModel):
    """The period a stats answer covers: `[start, end)` in UTC, and its ISO week if it is one."""

    start: datetime
    end: datetime
    week: str | None = Field(default=None, description='e.g. "2026-W48"')
    as_of: datetime = Field(
        description="Point-in-time values (backlog, overdue) are taken at this instant: the end "
        "of the period, or the moment of the call while the period is still running."
    )

    @classmethod
    def of(cls, period: Period, as_of: datetime) -> PeriodRead:
        """The read model of `period`, its point-in-time values taken at `as_of`."""
        return cls(start=period.start, end=period.end, week=period.week, as_of=as_of)


class DurationStats(BaseModel):
    """How many durations were measured in a period, and their median and 90th percentile."""

    count: int
    p50_seconds: float | None = None
    p90_seconds: float | None = None


def iso_week_of(day: date) -> str:
    """`2026-W48` for any date of that ISO week."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def week_period(week: str) -> Period:
    """The period of an ISO week such as `2026-W48` (ValueError if there is no such week)."""
    if not re.match(WEEK_PATTERN, week):
        raise ValueError("an ISO week looks like 2026-W48")
    year, number = int(week[:4]), int(week[6:])
    monday = date.fromisocalendar(year, number, 1)
    start = datetime.combine(monday, time(), tzinfo=UTC)
    return Period(start=start, end=start + timedelta(days=7), week=iso_week_of(monday))


def current_week(now: datetime | None = None) -> str:
    """The ISO week (UTC) running now."""
    return iso_week_of((now or utcnow()).astimezone(UTC).date())


def previous_week(week: str, weeks: int = 1) -> str:
    """The ISO week `weeks` before `week`."""
    return iso_week_of(week_period(week).first_day - timedelta(weeks=weeks))


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        f"query.{field}: {message}",
        errors=[{"field": f"query.{field}", "message": message, "code": "invalid"}],
    )


def resolve_period(
    *, week: str | None, from_: date | None, to: date | None, now: datetime | None = None
) -> Period:
    """The period a stats call asks for: `week`, or `from`/`to`, or else the current ISO week."""
    if week is not None:
        if from_ is not None or to is not None:
            raise _invalid("week", "give either week or from/to, not both")
        try:
            period = week_period(week)
        except ValueError:
            raise _invalid("week", "not an ISO week such as 2026-W48") from None
        if not EARLIEST_YEAR <= period.first_day.year <= LATEST_YEAR:
            raise _invalid("week", f"weeks of {EARLIEST_YEAR}-{LATEST_YEAR} only")
        return period
    if from_ is None and to is None:
        return week_period(current_week(now))
    if from_ is None or to is None:
        raise _invalid("from" if from_ is None else "to", "give both from and to")
    if to < from_:
        raise _invalid("to", "must not be before from")
    if (to - from_).days + 1 > MAX_PERIOD_DAYS:
        raise _invalid("to", f"a period is at most {MAX_PERIOD_DAYS} days")
    if not (from_.year >= EARLIEST_YEAR and to.year <= LATEST_YEAR):
        raise _invalid("from", f"dates of {EARLIEST_YEAR}-{LATEST_YEAR} only")
    start = datetime.combine(from_, time(), tzinfo=UTC)
    end = datetime.combine(to + timedelta(days=1), time(), tzinfo=UTC)
    whole_week = from_.isoweekday() == 1 and (to - from_).days == 6
    return Period(start=start, end=end, week=iso_week_of(from_) if whole_week else None)


def period_query(
    week: Annotated[
        str | None,
        Query(
            pattern=WEEK_PATTERN,
            description="An ISO week, e.g. `2026-W48` (UTC, Monday to Sunday). Default: the "
            "current week.",
        ),
    ] = None,
    from_: Annotated[
        date | None, Query(alias="from", description="First day (UTC), with `to`.")
    ] = None,
    to: Annotated[date | None, Query(description="Last day (UTC, included), with `from`.")] = None,
) -> Period:
    """FastAPI dependency: the period of a stats call (422 problem+json if it makes no sense)."""
    return resolve_period(week=week, from_=from_, to=to)


PeriodDep = Annotated[Period, Depends(period_query)]


def seconds_between(
    session: AsyncSession, start: SQLColumnExpression[Any], end: SQLColumnExpression[Any]
) -> ColumnElement[float]:
    """SQL for `end - start` in seconds on the session's backend (timestamps stored as UTC)."""
    if _dialect(session) == "postgresql":
        return cast(func.extract("epoch", end - start), Float)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


async def percentiles(
    session: AsyncSession,
    value: SQLColumnExpression[Any],
    where: Sequence[ColumnElement[bool]],
    fractions: Sequence[float] = DEFAULT_PERCENTILES,
) -> tuple[int, list[float | None]]:
    """How many non-null `value`s match `where`, and their continuous percentiles (None if none).

    PostgreSQL computes all of them in one `percentile_cont(...) WITHIN GROUP` aggregate; SQLite
    counts, then reads the one or two rows around each rank with an ordered OFFSET query (an
    index on the filter and value columns keeps both fast).
    """
    conditions = [*where, value.is_not(None)]
    if _dialect(session) == "postgresql":
        columns = [func.count(value)] + [
            func.percentile_cont(fraction).within_group(value) for fraction in fractions
        ]
        row = (await session.execute(select(*columns).where(*conditions))).one()
        count = int(row[0])
        return count, [float(v) if v is not None else None for v in row[1:]]
    count = int((await session.execute(select(func.count()).where(*conditions))).scalar_one())
    if count == 0:
        return 0, [None for _ in fractions]
    results: list[float | None] = []
    for fraction in fractions:
        position = fraction * (count - 1)
        lower = math.floor(position)
        rows = (
            await session.execute(
                select(value).where(*conditions).order_by(value).offset(lower).limit(2)
            )
        ).all()
        low = float(rows[0][0])
        high = float(rows[1][0]) if len(rows) > 1 else low
        results.append(low + (high - low) * (position - lower))
    return count, results


async def duration_stats(
    session: AsyncSession, value: SQLColumnExpression[Any], where: Sequence[ColumnElement[bool]]
) -> DurationStats:
    """Count, p50 and p90 of `value` (seconds) over the rows matching `where`."""
    count, (p50, p90) = await percentiles(session, value, where, (0.5, 0.9))
    return DurationStats(
        count=count,
        p50_seconds=round(p50, 3) if p50 is not None else None,
        p90_seconds=round(p90, 3) if p90 is not None else None,
    )


def ratio(numerator: int, denominator: int) -> float | None:
    """`numerator / denominator` rounded to 4 places, None when there is nothing to divide."""
    return round(numerator / denominator, 4) if denominator else None


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name
