"""Build, store and read weekly reports; goals; path-to-green notes; the `report.weekly` event.

Which weeks are stored: a week is *final* once it has ended (its Monday-to-Monday UTC range lies
in the past). A final week is built once — by the Monday schedule, or by the first read after
the week ended — stored with everything it shows (values, last week's values, goals, RAG,
trends, aging), and from then on read back unchanged, whatever data arrives later. The running
week is computed live on every read and never stored. Notes are not part of the frozen
snapshot: they are written after a report is built (the path to green of a red metric), and a
read shows the notes as they are now.

Last week's value and the trend points come from the stored reports of those weeks when they
exist (so a report agrees with the reports before it), and are computed live otherwise.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import utcnow
from services.common.errors import Conflict, NotFound, ValidationFailed
from services.common.settings import Settings
from services.common.stats import (
    EARLIEST_YEAR,
    LATEST_YEAR,
    current_week,
    previous_week,
    week_period,
)
from services.gateway.aging.service import aging_calendar
from services.gateway.notifications import service as notifications
from services.gateway.notifications.models import Subscription
from services.gateway.notifications.schemas import EventIn, EventSubject
from services.gateway.reports.catalog import BY_KEY, METRICS, Metric, values_of
from services.gateway.reports.models import ReportGoal, ReportNote, WeeklyReport
from services.gateway.reports.rag import RULE, Rag, improved, rag
from services.gateway.reports.sources import fetch_week
from services.gateway.runtime import GatewayRuntime

TREND_WEEKS = 8
EVENT_TYPE = "report.weekly"
# Live weeks fetched at once (4 service calls each): enough to overlap, few enough for SQLite.
_PARALLEL_WEEKS = 4


def is_final(week: str, now: datetime | None = None) -> bool:
    """Whether the week has ended (its report can be stored)."""
    return week_period(week).end <= (now or utcnow())


def check_week(week: str, *, field: str = "query.week", now: datetime | None = None) -> None:
    """422 unless `week` is an ISO week that has started and whose report (with its 8-week
    trend) lies within the years the stats cover (2000-2099)."""
    try:
        first = week_period(previous_week(week, TREND_WEEKS - 1)).first_day
        start = week_period(week).start
        valid = first.year >= EARLIEST_YEAR and start.year <= LATEST_YEAR
    except (ValueError, OverflowError):
        valid = False
    if not valid:
        message = "not an ISO week such as 2026-W48 (reports cover 2000-2099)"
        raise ValidationFailed(
            f"{field}: {message}", errors=[{"field": field, "message": message, "code": "invalid"}]
        )
    if start > (now or utcnow()):
        message = f"The week {week} has not started yet."
        raise ValidationFailed(
            message, errors=[{"field": field, "message": message, "code": "future"}]
        )


def metric_or_404(metric: str) -> Metric:
    """The catalog entry of `metric` (404 if the report has no such metric)."""
    entry = BY_KEY.get(metric)
    if entry is None:
        raise NotFound(f"The weekly report has no metric {metric!r}.")
    return entry


async def goals(session: AsyncSession) -> dict[str, tuple[float | None, float, bool]]:
    """Each metric's (goal, amber band, whether it was set) — the code's default unless set."""
    rows = {row.metric: row for row in (await session.execute(select(ReportGoal))).scalars()}
    result: dict[str, tuple[float | None, float, bool]] = {}
    for metric in METRICS:
        row = rows.get(metric.key)
        result[metric.key] = (
            (row.target, row.amber_within, True)
            if row is not None
            else (metric.goal, metric.amber_within, False)
        )
    return result


async def set_goal(
    session: AsyncSession, *, metric: str, target: float | None, amber_within: float, by: str
) -> ReportGoal:
    """Set (or replace) the goal of `metric`; stored reports keep the goal they were built with."""
    metric_or_404(metric)
    row = await session.get(ReportGoal, metric)
    if row is None:
        row = ReportGoal(metric=metric)
        session.add(row)
    row.target, row.amber_within, row.updated_by, row.updated_at = (
        target,
        amber_within,
        by,
        utcnow(),
    )
    await session.commit()
    return row


async def set_note(
    session: AsyncSession, *, week: str, metric: str, note: str, by: str
) -> ReportNote:
    """Write the path-to-green note of `metric` in `week`'s report (replacing an earlier one)."""
    metric_or_404(metric)
    check_week(week, field="path.week")
    row = await session.get(ReportNote, (week, metric))
    if row is None:
        row = ReportNote(week=week, metric=metric)
        session.add(row)
    row.note, row.author, row.updated_at = note, by, utcnow()
    await session.commit()
    return row


async def read(session: AsyncSession, *, runtime: GatewayRuntime, week: str) -> dict[str, Any]:
    """The report of `week`: stored if final (built and stored now if it was not yet), live if
    the week is still running; with the notes as they are now."""
    check_week(week)
    stored = await session.get(WeeklyReport, week)
    if stored is not None:
        snapshot = dict(stored.snapshot)
    elif is_final(week):
        snapshot, _created = await build_and_store(session, runtime=runtime, week=week)
    else:
        snapshot = await build(session, runtime=runtime, week=week)
    return await with_notes(session, snapshot, stored=is_final(week))


async def build_and_store(
    session: AsyncSession, *, runtime: GatewayRuntime, week: str
) -> tuple[dict[str, Any], bool]:
    """The stored snapshot of a final week, building and storing it if there is none yet
    (returns it and whether this call stored it). 409 for a week that has not ended."""
    if not is_final(week):
        raise Conflict(f"The week {week} has not ended; only ended weeks are stored.")
    existing = await session.get(WeeklyReport, week)
    if existing is not None:
        return dict(existing.snapshot), False
    snapshot = await build(session, runtime=runtime, week=week)
    session.add(
        WeeklyReport(
            week=week, built_at=datetime.fromisoformat(snapshot["built_at"]), snapshot=snapshot
        )
    )
    try:
        await session.commit()
    except IntegrityError:
        # Built twice at once (the schedule and a reader): the first one stored wins.
        await session.rollback()
        winner = await session.get(WeeklyReport, week)
        if winner is None:  # pragma: no cover - the conflicting row vanished meanwhile
            raise
        return dict(winner.snapshot), False
    return snapshot, True


async def build(session: AsyncSession, *, runtime: GatewayRuntime, week: str) -> dict[str, Any]:
    """Compute the report of `week` now (values, last week's, goals, RAG, trends, aging)."""
    built_at = utcnow()
    final = is_final(week, built_at)
    weeks = [previous_week(week, n) for n in range(TREND_WEEKS - 1, -1, -1)]
    stored_values = {
        row.week: {m["key"]: m["value"] for m in row.snapshot["metrics"]}
        for row in (
            await session.execute(select(WeeklyReport).where(WeeklyReport.week.in_(weeks[:-1])))
        ).scalars()
    }
    calendar_id, calendar = await aging_calendar(session, calendar_id=None)
    goal_of = await goals(session)
    await session.rollback()  # no transaction held open while the services work

    limit = asyncio.Semaphore(_PARALLEL_WEEKS)

    async def sources_of(w: str) -> dict[str, Any]:
        async with limit:
            return await fetch_week(runtime, w, calendar=calendar if w == week else None)

    live_weeks = [w for w in weeks if w not in stored_values]
    fetched = dict(zip(live_weeks, await asyncio.gather(*map(sources_of, live_weeks)), strict=True))
    values = {w: stored_values[w] if w in stored_values else values_of(fetched[w]) for w in weeks}
    current, previous = values[week], values[weeks[-2]]
    metrics: list[dict[str, Any]] = []
    summary = {status.value: 0 for status in Rag}
    for metric in METRICS:
        goal, amber_within, goal_set = goal_of[metric.key]
        value, before = current.get(metric.key), previous.get(metric.key)
        status = rag(
            value, goal, direction=metric.direction, amber_within=amber_within, unit=metric.unit
        )
        summary[status.value] += 1
        metrics.append(
            {
                "key": metric.key,
                "label": metric.label,
                "area": metric.area,
                "unit": metric.unit,
                "direction": metric.direction.value,
                "value": value,
                "previous": before,
                "change": round(value - before, 4)
                if value is not None and before is not None
                else None,
                "improved": improved(value, before, metric.direction),
                "goal": goal,
                "goal_set": goal_set,
                "amber_within": amber_within,
                "rag": status.value,
                "trend": [{"week": w, "value": values[w].get(metric.key)} for w in weeks],
            }
        )
    period = week_period(week)
    aging = fetched[week]["aging"]
    return {
        "week": week,
        "previous_week": weeks[-2],
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
        "built_at": built_at.isoformat(),
        "final": final,
        "rag_rule": RULE,
        "summary": summary,
        "metrics": metrics,
        "aging": {**aging, "calendar_id": calendar_id},
    }


async def with_notes(
    session: AsyncSession, snapshot: dict[str, Any], *, stored: bool
) -> dict[str, Any]:
    """The snapshot with each metric's note (or null) and whether the report is stored."""
    notes = {
        row.metric: row
        for row in (
            await session.execute(select(ReportNote).where(ReportNote.week == snapshot["week"]))
        ).scalars()
    }
    metrics = []
    for metric in snapshot["metrics"]:
        note = notes.get(metric["key"])
        metrics.append(
            {
                **metric,
                "note": None
                if note is None
                else {
                    "text": note.note,
                    "author": note.author,
                    "updated_at": note.updated_at.isoformat(),
                },
                "needs_path_to_green": metric["rag"] in (Rag.RED.value, Rag.AMBER.value)
                and note is None,
            }
        )
    return {**snapshot, "stored": stored, "metrics": metrics}


async def publish(
    session: AsyncSession, *, snapshot: dict[str, Any], settings: Settings
) -> list[str]:
    """One `report.weekly` event per team subscribed to it (subscriptions are per team); the
    event id `report-weekly:<week>:<team>` makes a repeat deliver nothing twice."""
    subscriptions = (
        await session.execute(
            select(Subscription.team, Subscription.event_types).where(
                Subscription.deactivated_at.is_(None)
            )
        )
    ).all()
    teams = sorted({team for team, types in subscriptions if EVENT_TYPE in types})
    data = event_data(snapshot)
    event_ids = []
    for team in teams:
        event = EventIn(
            event_id=f"report-weekly:{snapshot['week']}:{team}",
            type=EVENT_TYPE,
            team=team,
            occurred_at=datetime.fromisoformat(snapshot["built_at"]),
            subject=EventSubject(kind="report", id=snapshot["week"]),
            data=data,
        )
        await notifications.ingest_event(session, event=event, settings=settings)
        event_ids.append(event.event_id)
    return event_ids


def event_data(snapshot: dict[str, Any]) -> dict[str, Any]:
    """What subscribers get: the week, the RAG summary and each metric's headline numbers (the
    whole report is at `path`)."""
    return {
        "week": snapshot["week"],
        "path": f"/api/v1/reports/weekly?week={snapshot['week']}",
        "built_at": snapshot["built_at"],
        "summary": snapshot["summary"],
        "metrics": [
            {k: m[k] for k in ("key", "label", "value", "previous", "goal", "rag")}
            for m in snapshot["metrics"]
        ],
    }


def default_week() -> str:
    """The week a report shows when none is asked for: the current ISO week."""
    return current_week()
