"""Escalation stats as SQL aggregates (COUNT/GROUP BY and percentiles over indexes); the gap
counts come from the gap register's own weekly stats."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.identity import Identity
from services.common.stats import Period, PeriodRead, duration_stats, seconds_between
from services.escalation.access import require_staff
from services.escalation.action_items.models import ActionItem
from services.escalation.gaps import service as gaps
from services.escalation.models import Escalation
from services.escalation.stats.schemas import (
    ActionItemStats,
    EscalationStatsRead,
    GapCounts,
    OpenedCount,
)


def _within(column: Any, period: Period) -> list[ColumnElement[bool]]:
    return [column >= period.start, column < period.end]


async def escalation_stats(
    session: AsyncSession, *, caller: Identity, period: Period, team: str | None
) -> EscalationStatsRead:
    """Every escalation number of `period` (optionally of one team). Staff only."""
    require_staff(caller, "read stats")
    as_of = period.as_of()
    of_team: list[ColumnElement[bool]] = [Escalation.team == team] if team is not None else []

    opened_rows = (
        await session.execute(
            select(Escalation.source, Escalation.severity, func.count())
            .where(*_within(Escalation.created_at, period), *of_team)
            .group_by(Escalation.source, Escalation.severity)
            .order_by(Escalation.source, Escalation.severity)
        )
    ).all()
    opened = [OpenedCount(source=s, severity=v, count=int(n)) for s, v, n in opened_rows]
    closed = await _count(session, Escalation, *_within(Escalation.closed_at, period), *of_team)
    opened_before = await _count(session, Escalation, Escalation.created_at < as_of, *of_team)
    closed_before = await _count(session, Escalation, Escalation.closed_at < as_of, *of_team)
    closure_time = await duration_stats(
        session,
        seconds_between(session, Escalation.created_at, Escalation.closed_at),
        [*_within(Escalation.closed_at, period), *of_team],
    )

    def items(*where: ColumnElement[bool]) -> Any:
        query = select(func.count()).select_from(ActionItem).where(*where)
        if team is not None:
            query = query.join(Escalation, Escalation.id == ActionItem.escalation_id).where(
                *of_team
            )
        return query

    created = (await session.execute(items(*_within(ActionItem.created_at, period)))).scalar_one()
    completed = (
        await session.execute(items(*_within(ActionItem.completed_at, period)))
    ).scalar_one()
    overdue = (
        await session.execute(
            items(
                ActionItem.due_at < as_of,
                or_(ActionItem.completed_at.is_(None), ActionItem.completed_at > as_of),
            )
        )
    ).scalar_one()

    gap_stats = await gaps.gap_stats(
        session,
        caller=caller,
        since=period.first_day,
        until=period.last_day,
        owning_team=team,
    )
    return EscalationStatsRead(
        period=PeriodRead.of(period, as_of),
        team=team,
        opened=sum(row.count for row in opened),
        opened_by_source_severity=opened,
        closed=closed,
        open=opened_before - closed_before,
        closure_time=closure_time,
        action_items=ActionItemStats(
            created=int(created), completed=int(completed), overdue=int(overdue)
        ),
        gaps=GapCounts(
            identified=gap_stats.identified,
            quantified=gap_stats.quantified,
            closed=gap_stats.closed,
        ),
    )


async def _count(session: AsyncSession, table: Any, *where: ColumnElement[bool]) -> int:
    result = await session.execute(select(func.count()).select_from(table).where(*where))
    return int(result.scalar_one())
