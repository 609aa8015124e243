"""Intake stats as SQL aggregates: each number is one COUNT/GROUP BY (or percentile) query over
an index; nothing iterates over request rows in Python."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.errors import Forbidden
from services.common.identity import Identity
from services.common.stats import Period, PeriodRead, duration_stats, ratio
from services.intake.models import Request, RequestEvent
from services.intake.stats.schemas import (
    FiledCount,
    IntakeStatsRead,
    ReopenRate,
    SlaAttainment,
)


def _within(column: Any, period: Period) -> list[ColumnElement[bool]]:
    return [column >= period.start, column < period.end]


async def intake_stats(
    session: AsyncSession, *, caller: Identity, period: Period, team: str | None
) -> IntakeStatsRead:
    """Every intake number of `period` (optionally of one team). Staff only: the numbers span
    teams, and a partner's own numbers are in its request list."""
    if not caller.is_staff:
        raise Forbidden("Stats are for staff.")
    as_of = period.as_of()
    of_team: list[ColumnElement[bool]] = [Request.team == team] if team is not None else []

    filed_rows = (
        await session.execute(
            select(Request.team, Request.request_type, func.count())
            .where(*_within(Request.created_at, period), *of_team)
            .group_by(Request.team, Request.request_type)
            .order_by(Request.team, Request.request_type)
        )
    ).all()
    filed = [FiledCount(team=t, request_type=rt, count=int(n)) for t, rt, n in filed_rows]

    closed_rows = (
        await session.execute(
            select(Request.resolution, func.count())
            .where(*_within(Request.closed_at, period), *of_team)
            .group_by(Request.resolution)
        )
    ).all()
    closed_by_resolution = {str(resolution): int(n) for resolution, n in closed_rows}

    # Backlog at an instant = filed before it and not closed by then: the never-closed ones (a
    # partial index of open requests) plus those closed after it (a closed_at range).
    never_closed = await _count(
        session, Request.closed_at.is_(None), Request.created_at < as_of, *of_team
    )
    closed_later = await _count(
        session, Request.closed_at >= as_of, Request.created_at < as_of, *of_team
    )

    first_response = await duration_stats(
        session,
        Request.first_response_business_seconds,
        [*_within(Request.first_response_stopped_at, period), *of_team],
    )
    resolution = await duration_stats(
        session,
        Request.resolution_business_seconds,
        [*_within(Request.resolution_stopped_at, period), *of_team],
    )
    resolved, met = (
        await session.execute(
            select(func.count(), func.count().filter(Request.breached_at.is_(None))).where(
                *_within(Request.resolution_stopped_at, period), *of_team
            )
        )
    ).one()
    breaches = await _count(session, *_within(Request.breached_at, period), *of_team)

    actions = (
        select(
            func.count().filter(RequestEvent.action == "resolve"),
            func.count().filter(RequestEvent.action == "reopen"),
        )
        .select_from(RequestEvent)
        .where(
            RequestEvent.action.in_(("resolve", "reopen")),
            *_within(RequestEvent.occurred_at, period),
        )
    )
    if team is not None:
        actions = actions.join(Request, Request.id == RequestEvent.request_id).where(*of_team)
    resolves, reopens = (await session.execute(actions)).one()

    return IntakeStatsRead(
        period=PeriodRead.of(period, as_of),
        team=team,
        filed=sum(row.count for row in filed),
        filed_by_team_type=filed,
        closed=sum(closed_by_resolution.values()),
        closed_by_resolution=closed_by_resolution,
        backlog=never_closed + closed_later,
        first_response=first_response,
        resolution=resolution,
        sla=SlaAttainment(
            resolved=int(resolved),
            met=int(met),
            attainment=ratio(int(met), int(resolved)),
            breaches=breaches,
        ),
        reopen=ReopenRate(
            resolved=int(resolves), reopened=int(reopens), rate=ratio(int(reopens), int(resolves))
        ),
    )


async def _count(session: AsyncSession, *where: ColumnElement[bool]) -> int:
    result = await session.execute(select(func.count()).select_from(Request).where(*where))
    return int(result.scalar_one())
