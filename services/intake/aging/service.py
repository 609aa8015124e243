"""The aging query: SQL narrows and counts, the calendar arithmetic runs once per query.

The calendar turns each bucket edge and the stale threshold into an instant
(`BusinessDayCounter.threshold`); the database then counts open requests per team, assignee and
bucket with plain `created_at < edge` comparisons, and lists the stale ones with
`updated_at < threshold` through `ix_request_status_updated_at_id` (stalest first). Only the
listed rows get their exact ages computed in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, false, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.business_time import Calendar, CalendarError
from services.common.db import utcnow
from services.common.errors import ValidationFailed
from services.common.identity import Identity, Role
from services.intake.aging.domain import (
    BUCKET_RANGES,
    BUCKETS,
    AgeBucket,
    BusinessDayCounter,
    bucket_of,
    bucket_range,
)
from services.intake.aging.schemas import (
    AgingGroup,
    AgingItem,
    AgingQuery,
    AgingRead,
    StaleOwner,
)
from services.intake.domain import RequestStatus
from services.intake.models import Request

# Open = the clock of the work still runs: neither resolved nor closed.
OPEN_STATUSES: tuple[str, ...] = tuple(
    status.value
    for status in RequestStatus
    if status not in (RequestStatus.RESOLVED, RequestStatus.CLOSED)
)
_BUCKET_ORDER = {bucket: index for index, bucket in enumerate(BUCKETS)}


def parse_calendar(spec: dict[str, Any]) -> Calendar:
    """The calendar of the query; 422 naming `body.calendar.<field>` if it is not valid."""
    try:
        return Calendar.from_spec(spec)
    except CalendarError as exc:
        field = "body.calendar" if exc.field == "calendar" else f"body.calendar.{exc.field}"
        raise ValidationFailed(
            f"The calendar is not valid: {field} {exc.message}.",
            errors=[{"field": field, "message": exc.message, "code": "calendar_invalid"}],
        ) from exc


async def aging_report(
    session: AsyncSession, *, caller: Identity, query: AgingQuery, default_stale_days: int
) -> AgingRead:
    """Open requests the caller may see, by age bucket, and the stale ones (stalest first).

    A partner ages its own team only (another team's filter gives an empty report).
    """
    calendar = parse_calendar(query.calendar)
    at = query.at or utcnow()
    stale_days = query.stale_business_days or default_stale_days
    counter = BusinessDayCounter(calendar, at)
    edges = {low: counter.threshold(low) for _, low, _ in BUCKET_RANGES if low >= 1}

    team = query.team
    visible = True
    if caller.role is Role.PARTNER:
        visible = team is None or team == caller.team
        team = caller.team
    scope = _scope(query, team=team, edges=edges) if visible else [false()]

    bucket_expr = _bucket_expression(edges)
    per_bucket = (
        select(Request.team, Request.assignee, bucket_expr.label("bucket")).where(*scope).subquery()
    )
    group_rows = (
        await session.execute(
            select(
                per_bucket.c.team, per_bucket.c.assignee, per_bucket.c.bucket, func.count()
            ).group_by(per_bucket.c.team, per_bucket.c.assignee, per_bucket.c.bucket)
        )
    ).all()
    groups = sorted(
        (
            AgingGroup(team=t, assignee=a, bucket=AgeBucket(b), count=int(n))
            for t, a, b, n in group_rows
        ),
        key=lambda g: (g.team, g.assignee or "", _BUCKET_ORDER[g.bucket]),
    )
    buckets = dict.fromkeys(BUCKETS, 0)
    for group in groups:
        buckets[group.bucket] += group.count

    stale_edge = counter.threshold(stale_days)
    stale_scope = [*scope, Request.updated_at < stale_edge] if stale_edge else [false()]
    owner_rows = (
        await session.execute(
            select(Request.team, Request.assignee, func.count())
            .where(*stale_scope)
            .group_by(Request.team, Request.assignee)
        )
    ).all()
    stale_by_owner = sorted(
        (StaleOwner(team=t, assignee=a, count=int(n)) for t, a, n in owner_rows),
        key=lambda o: (o.team, o.assignee or ""),
    )
    stale_count = sum(owner.count for owner in stale_by_owner)
    rows = (
        await session.execute(
            select(Request)
            .where(*stale_scope)
            .order_by(Request.updated_at, Request.id)
            .limit(query.limit)
        )
    ).scalars()
    stale = [_item(row, counter) for row in rows]
    return AgingRead(
        as_of=counter.at,
        as_of_date=counter.today,
        timezone=calendar.timezone,
        stale_business_days=stale_days,
        open_count=sum(buckets.values()),
        buckets=buckets,
        groups=groups,
        stale_count=stale_count,
        stale_by_owner=stale_by_owner,
        stale=stale,
        truncated=stale_count > len(stale),
    )


def _scope(
    query: AgingQuery, *, team: str | None, edges: dict[int, datetime | None]
) -> list[ColumnElement[bool]]:
    scope: list[ColumnElement[bool]] = [Request.status.in_(OPEN_STATUSES)]
    if team is not None:
        scope.append(Request.team == team)
    if query.assignee is not None:
        scope.append(Request.assignee == query.assignee)
    if query.unassigned:
        scope.append(Request.assignee.is_(None))
    if query.bucket is not None:
        scope.extend(_bucket_condition(query.bucket, edges))
    return scope


def _bucket_condition(
    bucket: AgeBucket, edges: dict[int, datetime | None]
) -> Sequence[ColumnElement[bool]]:
    """`created_at` within the bucket: at least `low` days old and not `high + 1` days old."""
    low, high = bucket_range(bucket)
    conditions: list[ColumnElement[bool]] = []
    if low >= 1:
        older_than = edges[low]
        if older_than is None:
            return [false()]
        conditions.append(Request.created_at < older_than)
    if high is not None:
        too_old = edges[high + 1]
        if too_old is not None:
            conditions.append(Request.created_at >= too_old)
    return conditions


def _bucket_expression(edges: dict[int, datetime | None]) -> ColumnElement[str]:
    """A SQL CASE giving each row its bucket from `created_at` (oldest bucket tested first)."""
    whens: list[tuple[ColumnElement[bool], str]] = []
    for bucket, low, _high in reversed(BUCKET_RANGES):
        edge = edges.get(low)
        if low >= 1 and edge is not None:
            whens.append((Request.created_at < edge, bucket.value))
    if not whens:
        return literal(AgeBucket.DAYS_0_2.value)
    return case(*whens, else_=AgeBucket.DAYS_0_2.value)


def _item(row: Request, counter: BusinessDayCounter) -> AgingItem:
    age = counter.age(row.created_at)
    return AgingItem(
        id=row.id,
        team=row.team,
        title=row.title,
        request_type=row.request_type,
        priority=row.priority,
        status=row.status,
        assignee=row.assignee,
        created_at=row.created_at,
        updated_at=row.updated_at,
        age_business_days=age,
        idle_business_days=counter.age(row.updated_at),
        bucket=bucket_of(age),
    )
