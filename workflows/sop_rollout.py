"""`SopRolloutWorkflow`: one per SOP rollout, fed by the sop outbox, ends when every org
acknowledged or the rollout is cancelled (a newer version took effect).

Each org gets a first notice when its wave starts and a reminder every `reminder_interval` until it
acknowledges or its due time passes; at the due time an unacknowledged org is escalated once
(`sop.rollout_overdue`, to the SOP owner and the org lead). The service rebuilds the start input
from its database for every signal, so a run started by a late signal begins from the truth.

`SopReviewSweepWorkflow` (run daily by a Temporal schedule, `ensure_sop_review_schedule`) reminds
owners of SOPs whose periodic review is due soon and flags the overdue ones (`sop.review_due`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleSpec,
)

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import (
        SOP_REVIEW_SWEEP_WORKFLOW,
        SOP_ROLLOUT_SIGNAL,
        SOP_ROLLOUT_STATE_QUERY,
        SOP_ROLLOUT_WORKFLOW,
        DueSopReview,
        RolloutOrgTarget,
        SopNotifyInput,
        SopReviewSweepInput,
        SopRolloutInput,
        SopRolloutSignal,
        SopRolloutState,
    )
    from workflows.sop_approval import (
        ACTIVITY_LIST_DUE_SOP_REVIEWS,
        ACTIVITY_TIMEOUT,
        RETRY,
        notify,
    )

# Reminders per org stop after this many (history stays bounded for a long wave).
MAX_REMINDERS = 30
DEDUP_WINDOW = 500
REVIEW_SWEEP_SCHEDULE_ID = "sop-review-sweep"


@dataclass(frozen=True, slots=True)
class RolloutAction:
    """Something due for one org: `remind` (the n-th notice) or `escalate`."""

    kind: str
    org_id: str
    number: int = 0


def plan_rollout(
    orgs: list[RolloutOrgTarget], *, now: datetime, interval: timedelta
) -> tuple[list[RolloutAction], datetime | None]:
    """What is due now for the orgs still pending, and when the next thing falls due.

    Notice n of an org falls at `starts_at + n * interval` while before its due time; at the due
    time it is escalated once. Nothing is planned for acknowledged orgs."""
    actions: list[RolloutAction] = []
    wakes: list[datetime] = []
    for org in orgs:
        if org.acknowledged:
            continue
        if now >= org.due_at:
            if not org.escalated:
                actions.append(RolloutAction("escalate", org.org_id))
            continue
        wakes.append(org.due_at)
        if org.reminders_sent < MAX_REMINDERS:
            at = org.starts_at + interval * org.reminders_sent
            if at < org.due_at:
                if at <= now:
                    actions.append(RolloutAction("remind", org.org_id, org.reminders_sent))
                else:
                    wakes.append(at)
    return actions, (min(wakes) if wakes else None)


@workflow.defn(name=SOP_ROLLOUT_WORKFLOW)
class SopRolloutWorkflow:
    """Reminds and escalates the org leads of one rollout until each acknowledged."""

    @workflow.init
    def __init__(self, input: SopRolloutInput) -> None:
        self._input = input
        self._orgs = {org.org_id: org for org in input.orgs}
        self._cancelled = input.cancelled
        self._seen: list[str] = []
        self._changed = False
        self._trace: str | None = None

    @workflow.run
    async def run(self, input: SopRolloutInput) -> SopRolloutState:
        """Notify until every org acknowledged or the rollout is cancelled."""
        interval = timedelta(seconds=input.reminder_interval_seconds)
        while not self._cancelled and any(not o.acknowledged for o in self._orgs.values()):
            actions, wake = plan_rollout(
                list(self._orgs.values()), now=workflow.now(), interval=interval
            )
            for action in actions:
                await self._act(action)
            if actions:
                continue
            self._changed = False
            timeout = None if wake is None else max(wake - workflow.now(), timedelta(0))
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._changed, timeout=timeout)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state()

    @workflow.signal(name=SOP_ROLLOUT_SIGNAL)
    def rollout_event(self, signal: SopRolloutSignal) -> None:
        """An acknowledgement or a cancellation; a repeated event is ignored."""
        if signal.event_id in self._seen:
            return
        self._seen = [*self._seen[-DEDUP_WINDOW:], signal.event_id]
        self._trace = signal.trace_request_id or self._trace
        if signal.kind == "acknowledged" and signal.org_id in self._orgs:
            self._orgs[signal.org_id].acknowledged = True
        elif signal.kind == "cancelled":
            self._cancelled = True
        self._changed = True

    @workflow.query(name=SOP_ROLLOUT_STATE_QUERY)
    def state(self) -> SopRolloutState:
        """Each org's acknowledgement, notices and escalation as the workflow knows them."""
        return self._state()

    def _state(self) -> SopRolloutState:
        pending = any(not o.acknowledged for o in self._orgs.values())
        status = "cancelled" if self._cancelled else ("in_progress" if pending else "completed")
        return SopRolloutState(
            rollout_id=self._input.rollout_id, status=status, orgs=list(self._orgs.values())
        )

    async def _act(self, action: RolloutAction) -> None:
        input = self._input
        org = self._orgs[action.org_id]
        prefix = f"sop-rollout-{input.rollout_id}:{org.org_id}"
        data = {
            "sop_key": input.sop_key,
            "wave": org.wave,
            "due_at": org.due_at.isoformat(),
        }
        if action.kind == "escalate":
            org.escalated = True
            event_id, kind, type_ = f"{prefix}:overdue", "rollout_escalated", "sop.rollout_overdue"
            data["recipients"] = [input.owner, org.lead_subject]
        else:
            org.reminders_sent += 1
            event_id = f"{prefix}:reminder:{action.number}"
            kind, type_ = "rollout_reminder", "sop.reminder"
            data.update(recipients=[org.lead_subject], notice=action.number)
        await notify(
            SopNotifyInput(
                event_id=event_id,
                sop_id=input.sop_id,
                kind=kind,
                team=input.team,
                actor="rollout-workflow",
                occurred_at=workflow.now(),
                type=type_,
                version_number=input.version_number,
                rollout_id=input.rollout_id,
                org_id=org.org_id,
                data=data,
                trace_request_id=self._trace,
            )
        )


@workflow.defn(name=SOP_REVIEW_SWEEP_WORKFLOW)
class SopReviewSweepWorkflow:
    """One sweep of periodic reviews: remind owners of due reviews, flag overdue ones."""

    @workflow.run
    async def run(self, input: SopReviewSweepInput) -> int:
        """Notify each SOP due for review (once per review date and state); returns how many."""
        due: list[DueSopReview] = await workflow.execute_activity(
            ACTIVITY_LIST_DUE_SOP_REVIEWS,
            input,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
            result_type=list[DueSopReview],
        )
        for review in due:
            state = "overdue" if review.overdue else "due"
            await notify(
                SopNotifyInput(
                    # Once per review date and state: a daily sweep does not repeat itself.
                    event_id=f"sop-{review.sop_id}:review:{review.next_review_at.date()}:{state}",
                    sop_id=review.sop_id,
                    kind=f"review_{state}",
                    team=review.team,
                    actor="review-sweep",
                    occurred_at=workflow.now(),
                    type="sop.review_due",
                    data={
                        "sop_key": review.key,
                        "title": review.title,
                        "next_review_at": review.next_review_at.isoformat(),
                        "overdue": review.overdue,
                        "recipients": [review.owner],
                    },
                    trace_request_id=input.trace_request_id,
                )
            )
        return len(due)


async def ensure_sop_review_schedule(
    client: Client,
    *,
    task_queue: str,
    every: timedelta = timedelta(days=1),
    schedule_id: str = REVIEW_SWEEP_SCHEDULE_ID,
) -> bool:
    """Create the schedule running `SopReviewSweepWorkflow` every `every` (False if it exists)."""
    try:
        await client.create_schedule(
            schedule_id,
            Schedule(
                action=ScheduleActionStartWorkflow(
                    SOP_REVIEW_SWEEP_WORKFLOW,
                    SopReviewSweepInput(),
                    id=f"{schedule_id}-run",
                    task_queue=task_queue,
                ),
                spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
            ),
        )
    except ScheduleAlreadyRunningError:
        return False
    return True
