"""`WeeklyReportWorkflow`: the weekly flash report, run by the Temporal schedule `weekly-report`
(`ensure_weekly_report_schedule`, called at worker start) every Monday at 06:00 UTC.

It asks the gateway to build, store and publish the report of the ISO week that just ended
(`POST /internal/reports/weekly/{week}`). The gateway keeps a week's report once stored and
publishes `report.weekly` with the event id `report-weekly:<week>:<team>`, so a retried
activity or a second run for the same week changes and sends nothing twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleRange,
    ScheduleSpec,
)
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.service_api import ServiceApi

WEEKLY_REPORT_WORKFLOW = "WeeklyReportWorkflow"
WEEKLY_REPORT_SCHEDULE_ID = "weekly-report"
ACTIVITY_BUILD_WEEKLY_REPORT = "build_weekly_report"
# Monday 06:00 UTC: the week (Monday 00:00 to Monday 00:00 UTC) ended six hours earlier, so the
# workflows recording the week's last clocks have long written them.
SCHEDULE_AT = ScheduleCalendarSpec(
    day_of_week=[ScheduleRange(1)],
    hour=[ScheduleRange(6)],
    minute=[ScheduleRange(0)],
    second=[ScheduleRange(0)],
    comment="Mondays 06:00 UTC",
)
# Building reads three services for up to eight weeks: generous, but bounded.
ACTIVITY_TIMEOUT = timedelta(minutes=2)
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=12,
)


@dataclass
class WeeklyReportInput:
    """Input of `WeeklyReportWorkflow`; the schedule leaves `week` unset (the week just ended)."""

    week: str | None = None
    trace_request_id: str | None = None


@dataclass
class BuildWeeklyReportInput:
    """Input of the `build_weekly_report` activity."""

    week: str
    trace_request_id: str | None = None


@dataclass
class WeeklyReportResult:
    """What the gateway did: stored the week now (or had it already) and the events published."""

    week: str
    created: bool
    events: list[str] = field(default_factory=list)


def iso_week_of(day: date) -> str:
    """`2026-W48` for any date of that ISO week."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def week_just_ended(now: datetime) -> str:
    """The ISO week before the one `now` falls in (UTC)."""
    return iso_week_of(now.date() - timedelta(days=7))


class WeeklyReportActivities:
    """The report's activity: one call to the gateway through the worker's ServiceApi."""

    def __init__(self, api: ServiceApi) -> None:
        self.api = api

    @activity.defn(name=ACTIVITY_BUILD_WEEKLY_REPORT)
    async def build_weekly_report(self, input: BuildWeeklyReportInput) -> WeeklyReportResult:
        """Build, store and publish the week's report (gateway `POST /internal/reports/weekly`)."""
        response = await self.api.call(
            "gateway",
            "POST",
            f"/internal/reports/weekly/{input.week}",
            request_id=input.trace_request_id,
        )
        try:
            body = response.json()
            return WeeklyReportResult(
                week=str(body["week"]), created=bool(body["created"]), events=list(body["events"])
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ApplicationError(f"unexpected answer: {exc!r}", non_retryable=True) from exc

    def all(self) -> list[Callable[..., Awaitable[Any]]]:
        """Every activity of this class, for the worker."""
        return [self.build_weekly_report]


@workflow.defn(name=WEEKLY_REPORT_WORKFLOW)
class WeeklyReportWorkflow:
    """Build and publish one week's report."""

    @workflow.run
    async def run(self, input: WeeklyReportInput) -> WeeklyReportResult:
        """The week's report, stored and published; `week` defaults to the week just ended."""
        week = input.week or week_just_ended(workflow.now())
        result: WeeklyReportResult = await workflow.execute_activity(
            ACTIVITY_BUILD_WEEKLY_REPORT,
            BuildWeeklyReportInput(week=week, trace_request_id=input.trace_request_id),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
            result_type=WeeklyReportResult,
        )
        return result


async def ensure_weekly_report_schedule(
    client: Client, *, task_queue: str, schedule_id: str = WEEKLY_REPORT_SCHEDULE_ID
) -> bool:
    """Create the schedule running `WeeklyReportWorkflow` every Monday 06:00 UTC (False if it
    exists already)."""
    try:
        await client.create_schedule(
            schedule_id,
            Schedule(
                action=ScheduleActionStartWorkflow(
                    WEEKLY_REPORT_WORKFLOW,
                    WeeklyReportInput(),
                    id=f"{schedule_id}-run",
                    task_queue=task_queue,
                ),
                spec=ScheduleSpec(calendars=[SCHEDULE_AT], time_zone_name="UTC"),
            ),
        )
    except ScheduleAlreadyRunningError:
        return False
    return True
