"""`AgingSweepWorkflow`: the daily aging sweep, run by the Temporal schedule `aging-daily-sweep`
(`ensure_aging_sweep_schedule`, called at worker start).

It asks intake which owners have stale requests (`plan_aging_sweep`), then sends each owner ONE
`aging.digest` event through the gateway's `POST /internal/events` (`publish_aging_digest`). An
owner is an assignee within a team, or the team itself for unassigned requests: subscriptions are
per team, so a digest never shows one team's requests to another team's subscribers.

Exactly once per owner and day: the event id is `aging-digest:<owner>:<date>` (owner
`<team>/<assignee>` or `<team>`; date = the calendar's local business date of the sweep), and the
gateway ignores an id it has seen, so a retried activity or a second run the same day sends
nothing twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleSpec,
)
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import (
        AGING_SWEEP_WORKFLOW,
        AgingOwner,
        AgingSweepInput,
        AgingSweepPlan,
        PublishAgingDigestInput,
    )
    from workflows.service_api import ServiceApi

AGING_SWEEP_SCHEDULE_ID = "aging-daily-sweep"
ACTIVITY_PLAN_AGING_SWEEP = "plan_aging_sweep"
ACTIVITY_PUBLISH_AGING_DIGEST = "publish_aging_digest"
DIGEST_EVENT_TYPE = "aging.digest"
# A digest lists at most this many stale requests of its owner (stalest first), then says so.
DIGEST_MAX_ITEMS = 1000
# Gateway limits on an event id and a subject id.
_MAX_EVENT_ID = 200
_MAX_SUBJECT_ID = 100

ACTIVITY_TIMEOUT = timedelta(seconds=30)
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
)


def owner_id(team: str, assignee: str | None) -> str:
    """The owner a digest is for: `<team>/<assignee>`, or `<team>` for unassigned requests."""
    return f"{team}/{assignee}" if assignee is not None else team


def digest_event_id(owner: AgingOwner, date: str) -> str:
    """`aging-digest:<owner>:<date>`; an owner too long for the gateway's id is hashed."""
    who = owner_id(owner.team, owner.assignee)
    event_id = f"aging-digest:{who}:{date}"
    if len(event_id) <= _MAX_EVENT_ID:
        return event_id
    return f"aging-digest:sha256-{hashlib.sha256(who.encode()).hexdigest()}:{date}"


def digest_event(input: PublishAgingDigestInput, report: dict[str, Any]) -> dict[str, Any]:
    """The `POST /internal/events` body of one owner's digest, from intake's report on them."""
    owner = input.owner
    who = owner_id(owner.team, owner.assignee)
    subject_id = who if len(who) <= _MAX_SUBJECT_ID else hashlib.sha256(who.encode()).hexdigest()
    buckets: dict[str, int] = report["buckets"]
    return {
        "event_id": digest_event_id(owner, input.as_of_date),
        "type": DIGEST_EVENT_TYPE,
        "team": owner.team,
        "occurred_at": input.as_of.isoformat(),
        "subject": {"kind": "owner", "id": subject_id},
        "data": {
            "owner": owner.assignee if owner.assignee is not None else owner.team,
            "owner_kind": "assignee" if owner.assignee is not None else "team",
            "team": owner.team,
            "date": input.as_of_date,
            "as_of": input.as_of.isoformat(),
            "timezone": report["timezone"],
            "stale_business_days": report["stale_business_days"],
            "open_count": report["open_count"],
            "buckets": buckets,
            "stale_count": report["stale_count"],
            "stale": [
                {
                    "request_id": item["id"],
                    "title": item["title"],
                    "status": item["status"],
                    "priority": item["priority"],
                    "age_business_days": item["age_business_days"],
                    "idle_business_days": item["idle_business_days"],
                    "bucket": item["bucket"],
                    "updated_at": item["updated_at"],
                }
                for item in report["stale"]
            ],
            "truncated": report["truncated"],
        },
    }


class AgingActivities:
    """The sweep's activities: calls to the gateway and intake through the worker's ServiceApi."""

    def __init__(self, api: ServiceApi) -> None:
        self.api = api

    @activity.defn(name=ACTIVITY_PLAN_AGING_SWEEP)
    async def plan_aging_sweep(self, input: AgingSweepInput) -> AgingSweepPlan:
        """The calendar (gateway policy resolution) and the owners with stale requests (intake)."""
        policy = await self.api.call(
            "gateway",
            "POST",
            "/internal/sla/resolve",
            json={"request_type": input.calendar_request_type, "priority": input.calendar_priority},
            request_id=input.trace_request_id,
        )
        calendar = _json_object(policy).get("calendar")
        if not isinstance(calendar, dict):
            raise ApplicationError("the gateway resolved a policy without a calendar")
        body: dict[str, Any] = {"calendar": calendar, "limit": 1}
        if input.stale_business_days is not None:
            body["stale_business_days"] = input.stale_business_days
        report = _json_object(
            await self.api.call(
                "intake",
                "POST",
                "/internal/requests/aging",
                json=body,
                request_id=input.trace_request_id,
            )
        )
        return AgingSweepPlan(
            as_of=datetime.fromisoformat(report["as_of"]),
            as_of_date=str(report["as_of_date"]),
            calendar=calendar,
            stale_business_days=int(report["stale_business_days"]),
            owners=[
                AgingOwner(team=row["team"], assignee=row["assignee"], stale_count=row["count"])
                for row in report["stale_by_owner"]
            ],
        )

    @activity.defn(name=ACTIVITY_PUBLISH_AGING_DIGEST)
    async def publish_aging_digest(self, input: PublishAgingDigestInput) -> str:
        """Read one owner's stale requests (as of the sweep) and post their digest event; a
        repeated event id is a no-op at the gateway, so a retry never notifies twice."""
        owner = input.owner
        query: dict[str, Any] = {
            "calendar": input.calendar,
            "at": input.as_of.isoformat(),
            "stale_business_days": input.stale_business_days,
            "team": owner.team,
            "limit": DIGEST_MAX_ITEMS,
        }
        if owner.assignee is None:
            query["unassigned"] = True
        else:
            query["assignee"] = owner.assignee
        report = _json_object(
            await self.api.call(
                "intake",
                "POST",
                "/internal/requests/aging",
                json=query,
                request_id=input.trace_request_id,
            )
        )
        event = digest_event(input, report)
        await self.api.call(
            "gateway", "POST", "/internal/events", json=event, request_id=input.trace_request_id
        )
        event_id: str = event["event_id"]
        return event_id

    def all(self) -> list[Callable[..., Awaitable[Any]]]:
        """Every activity of this class, for the worker."""
        return [self.plan_aging_sweep, self.publish_aging_digest]


def _json_object(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise ApplicationError(f"not JSON: {exc}", non_retryable=True) from exc
    if not isinstance(body, dict):
        raise ApplicationError("expected a JSON object", non_retryable=True)
    return body


@workflow.defn(name=AGING_SWEEP_WORKFLOW)
class AgingSweepWorkflow:
    """One aging sweep: one digest per owner with stale requests."""

    @workflow.run
    async def run(self, input: AgingSweepInput) -> list[str]:
        """Send the digests; returns the event ids sent (or already sent earlier today)."""
        plan: AgingSweepPlan = await workflow.execute_activity(
            ACTIVITY_PLAN_AGING_SWEEP,
            input,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
            result_type=AgingSweepPlan,
        )
        sent: list[str] = []
        for owner in plan.owners:
            try:
                event_id: str = await workflow.execute_activity(
                    ACTIVITY_PUBLISH_AGING_DIGEST,
                    PublishAgingDigestInput(
                        owner=owner,
                        as_of=plan.as_of,
                        as_of_date=plan.as_of_date,
                        calendar=plan.calendar,
                        stale_business_days=plan.stale_business_days,
                        trace_request_id=input.trace_request_id,
                    ),
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    retry_policy=RETRY,
                    result_type=str,
                )
            except ActivityError as exc:
                # One owner's failure must not cost every other owner their digest.
                workflow.logger.warning(
                    "aging digest failed for %s: %s", owner_id(owner.team, owner.assignee), exc
                )
                continue
            sent.append(event_id)
        return sent


async def ensure_aging_sweep_schedule(
    client: Client,
    *,
    task_queue: str,
    every: timedelta = timedelta(days=1),
    schedule_id: str = AGING_SWEEP_SCHEDULE_ID,
) -> bool:
    """Create the schedule running `AgingSweepWorkflow` every `every` (False if it exists)."""
    try:
        await client.create_schedule(
            schedule_id,
            Schedule(
                action=ScheduleActionStartWorkflow(
                    AGING_SWEEP_WORKFLOW,
                    AgingSweepInput(),
                    id=f"{schedule_id}-run",
                    task_queue=task_queue,
                ),
                spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
            ),
        )
    except ScheduleAlreadyRunningError:
        return False
    return True
