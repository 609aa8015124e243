"""`SopApprovalWorkflow`: one per review round of an SOP version, and the SOP activities.

The sop service signal-with-starts it through its outbox when a draft is submitted (workflow id
`sop-version-<id>-approval-<round>`). Stages run in order; in a stage the approvers decide in
parallel through the `decide` UPDATE, whose validator refuses the author, strangers, second
decisions, closed stages and rejections without a comment (a refused update writes nothing to
history). A stage ends as soon as its quorum is met or can no longer be met; with
`reject_returns_to_draft` one rejection ends the round and sends the version back to draft.
Pending approvers are reminded every `reminder_interval`, and a stage still open after
`escalate_after` is escalated to the SOP's owner. Each decision is recorded on the SOP's audit
trail (actor and comment) by an activity before the update returns; the outcome is applied to the
version by `finish_sop_approval`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import TypeAdapter

    from workflows.contracts import (
        SOP_APPROVAL_OPENED_SIGNAL,
        SOP_APPROVAL_STATE_QUERY,
        SOP_APPROVAL_WORKFLOW,
        SOP_DECIDE_UPDATE,
        ApprovalStageState,
        DueSopReview,
        FinishSopApprovalInput,
        SopApprovalInput,
        SopApprovalOpened,
        SopApprovalState,
        SopDecisionInput,
        SopDecisionResult,
        SopNotifyInput,
        SopReviewSweepInput,
    )
    from workflows.service_api import ServiceApi

APPROVE, REJECT = "approve", "reject"
# Stage statuses: waiting (a later stage), open, then approved | rejected | returned | skipped.
OPEN, WAITING, APPROVED, REJECTED, RETURNED, SKIPPED = (
    "open",
    "waiting",
    "approved",
    "rejected",
    "returned",
    "skipped",
)
OUTCOME_OF_STAGE = {APPROVED: "approved", REJECTED: "rejected", RETURNED: "returned_to_draft"}
# Reminders stop after this many per stage (the escalation has happened long before): history
# stays bounded however long a stage waits.
MAX_REMINDERS = 30
ACTIVITY_TIMEOUT = timedelta(seconds=10)
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=20,
)

ACTIVITY_NOTIFY_SOP = "notify_sop"
ACTIVITY_FINISH_SOP_APPROVAL = "finish_sop_approval"
ACTIVITY_LIST_DUE_SOP_REVIEWS = "list_due_sop_reviews"


def stage_outcome(
    *, required: int, approvers: int, approvals: int, rejections: int, reject_returns: bool
) -> str:
    """Where a stage stands: `approved` once the quorum is met, `returned` at the first rejection
    when rejections send the version back, `rejected` once the quorum is out of reach, else open."""
    if approvals >= required:
        return APPROVED
    if reject_returns and rejections > 0:
        return RETURNED
    if approvals + (approvers - approvals - rejections) < required:
        return REJECTED
    return OPEN


class SopActivities:
    """Calls of the SOP workflows to the sop service and the gateway (the worker's ServiceApi)."""

    def __init__(self, api: ServiceApi) -> None:
        self.api = api

    @activity.defn(name=ACTIVITY_NOTIFY_SOP)
    async def notify_sop(self, input: SopNotifyInput) -> None:
        """Record an event on the SOP's audit trail and, with a `type`, publish it to the gateway
        (`POST /internal/events`). Both ignore a repeated event id: a retry notifies once."""
        await self.api.call(
            "sop",
            "POST",
            f"/internal/sops/{input.sop_id}/events",
            json={
                "event_id": input.event_id,
                "kind": input.kind,
                "actor": input.actor,
                "occurred_at": input.occurred_at.isoformat(),
                "version_number": input.version_number,
                "rollout_id": input.rollout_id,
                "org_id": input.org_id,
                "comment": input.comment,
                "data": input.data,
            },
            request_id=input.trace_request_id,
        )
        if input.type is None:
            return
        await self.api.call(
            "gateway",
            "POST",
            "/internal/events",
            json={
                "event_id": input.event_id,
                "type": input.type,
                "team": input.team,
                "occurred_at": input.occurred_at.isoformat(),
                "subject": {"kind": "sop", "id": str(input.sop_id)},
                "data": {
                    **input.data,
                    "sop_id": input.sop_id,
                    "version": input.version_number,
                    "rollout_id": input.rollout_id,
                    "org": input.org_id,
                },
            },
            request_id=input.trace_request_id,
        )

    @activity.defn(name=ACTIVITY_FINISH_SOP_APPROVAL)
    async def finish_sop_approval(self, input: FinishSopApprovalInput) -> None:
        """Apply an approval round's outcome to the version (a repeat changes nothing)."""
        await self.api.call(
            "sop",
            "PUT",
            f"/internal/sops/versions/{input.version_id}/approval-outcome",
            json={"review_round": input.review_round, "outcome": input.outcome},
            request_id=input.trace_request_id,
        )

    @activity.defn(name=ACTIVITY_LIST_DUE_SOP_REVIEWS)
    async def list_due_sop_reviews(self, input: SopReviewSweepInput) -> list[DueSopReview]:
        """SOPs whose periodic review is due within the window, or overdue."""
        response = await self.api.call(
            "sop",
            "GET",
            "/internal/sops/reviews/due",
            params={"remind_before_days": input.remind_before_days},
            request_id=input.trace_request_id,
        )
        return TypeAdapter(list[DueSopReview]).validate_python(response.json())

    def all(self) -> list[Callable[..., Awaitable[Any]]]:
        """Every activity of this class, for the worker."""
        return [self.notify_sop, self.finish_sop_approval, self.list_due_sop_reviews]


async def notify(input: SopNotifyInput) -> None:
    """Run `notify_sop` from a workflow; a notification that finally fails is logged, never
    fatal: an approval or a rollout must not die because the gateway refused one event."""
    try:
        await workflow.execute_activity(
            ACTIVITY_NOTIFY_SOP,
            input,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )
    except ActivityError as error:
        workflow.logger.error(
            "sop notification failed", extra={"event_id": input.event_id, "error": str(error)}
        )


@workflow.defn(name=SOP_APPROVAL_WORKFLOW)
class SopApprovalWorkflow:
    """One review round of an SOP version: sequential stages, parallel approvers, quorums."""

    @workflow.init
    def __init__(self, input: SopApprovalInput) -> None:
        self._input = input
        self._stages = [
            ApprovalStageState(name=s.name, approvers=list(s.approvers), required=s.required)
            for s in input.stages
        ]
        self._current = 0
        # Open from the start: a decision may arrive in the very first activation.
        self._stages[0].status = OPEN
        self._outcome: str | None = None
        self._decisions = 0
        self._trace: str | None = None

    @workflow.run
    async def run(self, input: SopApprovalInput) -> SopApprovalState:
        """Run the stages until the approval ends, then apply the outcome to the version."""
        announced = -1
        started_at = workflow.now()
        while self._outcome is None:
            index = self._current
            stage = self._stages[index]
            if announced != index:
                announced, started_at = index, workflow.now()
                await self._notify(
                    f"s{index}:requested",
                    kind="approval_requested",
                    type="sop.approval_requested",
                    data={"stage": stage.name, "recipients": self._pending(stage)},
                )
                continue
            wake = self._next_wake(stage, started_at)
            if wake is not None and wake <= workflow.now():
                await self._remind_or_escalate(index, stage, started_at)
                continue
            timeout = None if wake is None else wake - workflow.now()
            waiting_on = index
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._outcome is not None or self._current != waiting_on,  # noqa: B023
                    timeout=timeout,
                )
        await workflow.wait_condition(workflow.all_handlers_finished)
        await workflow.execute_activity(
            ACTIVITY_FINISH_SOP_APPROVAL,
            FinishSopApprovalInput(
                version_id=input.version_id,
                review_round=input.review_round,
                outcome=self._outcome,
                trace_request_id=self._trace,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )
        return self._state()

    @workflow.signal(name=SOP_APPROVAL_OPENED_SIGNAL)
    def opened(self, signal: SopApprovalOpened) -> None:
        """The submission that started this round (it only carries the trace id)."""
        self._trace = signal.trace_request_id or self._trace

    @workflow.update(name=SOP_DECIDE_UPDATE)
    async def decide(self, decision: SopDecisionInput) -> SopDecisionResult:
        """Count one approver's decision in the current stage and record it on the audit trail."""
        index = self._current
        stage = self._stages[index]
        (stage.approvals if decision.decision == APPROVE else stage.rejections).append(
            decision.actor
        )
        stage.status = stage_outcome(
            required=stage.required,
            approvers=len(stage.approvers),
            approvals=len(stage.approvals),
            rejections=len(stage.rejections),
            reject_returns=self._input.reject_returns_to_draft,
        )
        if stage.status == APPROVED and index + 1 < len(self._stages):
            self._current = index + 1
            self._stages[self._current].status = OPEN
        elif stage.status != OPEN:
            self._outcome = OUTCOME_OF_STAGE[stage.status]
            for later in self._stages[index + 1 :]:
                later.status = SKIPPED
        self._decisions += 1
        result = SopDecisionResult(
            stage=index, stage_name=stage.name, stage_status=stage.status, outcome=self._outcome
        )
        await self._notify(
            f"decision:{self._decisions}",
            kind="decision",
            actor=decision.actor,
            comment=decision.comment,
            data={"decision": decision.decision, "stage": stage.name, "stage_status": stage.status},
            trace=decision.trace_request_id,
        )
        return result

    @decide.validator
    def validate_decision(self, decision: SopDecisionInput) -> None:
        """Refuse, before anything is written: the author, strangers, a second decision, a
        closed approval or stage, an unknown decision and a rejection without a comment."""
        if self._outcome is not None:
            raise ApplicationError("This approval has ended.", type="ApprovalClosed")
        if decision.actor == self._input.author:
            raise ApplicationError(
                "The author of a version can never approve (or reject) it.", type="SelfApproval"
            )
        stage = self._stages[self._current]
        if decision.actor not in stage.approvers:
            earlier = [
                s.name for s in self._stages[: self._current] if decision.actor in s.approvers
            ]
            if earlier:
                raise ApplicationError(f"Stage {earlier[-1]!r} has ended.", type="StageClosed")
            later = [
                s.name for s in self._stages[self._current + 1 :] if decision.actor in s.approvers
            ]
            hint = f" (they decide in the later stage {later[0]!r})" if later else ""
            raise ApplicationError(
                f"{decision.actor} is not an approver of the current stage {stage.name!r}{hint}.",
                type="NotAnApprover",
            )
        if decision.actor in stage.approvals or decision.actor in stage.rejections:
            raise ApplicationError(
                f"{decision.actor} has already decided in stage {stage.name!r}.",
                type="AlreadyDecided",
            )
        if stage.status != OPEN:
            raise ApplicationError(f"Stage {stage.name!r} has ended.", type="StageClosed")
        if decision.decision not in (APPROVE, REJECT):
            raise ApplicationError(
                f"Unknown decision {decision.decision!r}.", type="InvalidDecision"
            )
        if decision.decision == REJECT and not (decision.comment and decision.comment.strip()):
            raise ApplicationError("A rejection needs a comment.", type="CommentRequired")

    @workflow.query(name=SOP_APPROVAL_STATE_QUERY)
    def state(self) -> SopApprovalState:
        """The stages, decisions so far and the outcome, if any."""
        return self._state()

    # --- internals ---------------------------------------------------------------------------

    def _state(self) -> SopApprovalState:
        return SopApprovalState(
            version_id=self._input.version_id,
            review_round=self._input.review_round,
            current_stage=self._current,
            stages=self._stages,
            outcome=self._outcome,
        )

    @staticmethod
    def _pending(stage: ApprovalStageState) -> list[str]:
        decided = set(stage.approvals) | set(stage.rejections)
        return [a for a in stage.approvers if a not in decided]

    def _next_wake(self, stage: ApprovalStageState, started_at: datetime) -> datetime | None:
        candidates = []
        if stage.reminders_sent < MAX_REMINDERS:
            candidates.append(
                started_at
                + timedelta(seconds=self._input.reminder_interval_seconds)
                * (stage.reminders_sent + 1)
            )
        if not stage.escalated:
            candidates.append(started_at + timedelta(seconds=self._input.escalate_after_seconds))
        return min(candidates) if candidates else None

    async def _remind_or_escalate(
        self, index: int, stage: ApprovalStageState, started_at: datetime
    ) -> None:
        now = workflow.now()
        escalate_at = started_at + timedelta(seconds=self._input.escalate_after_seconds)
        if not stage.escalated and now >= escalate_at:
            stage.escalated = True
            await self._notify(
                f"s{index}:escalated",
                kind="approval_escalated",
                type="sop.reminder",
                data={
                    "stage": stage.name,
                    "escalation": True,
                    "recipients": [self._input.owner],
                    "pending_approvers": self._pending(stage),
                },
            )
            return
        number = stage.reminders_sent
        stage.reminders_sent += 1
        await self._notify(
            f"s{index}:reminder:{number}",
            kind="approval_reminder",
            type="sop.reminder",
            data={"stage": stage.name, "recipients": self._pending(stage)},
        )

    async def _notify(
        self,
        suffix: str,
        *,
        kind: str,
        type: str | None = None,
        actor: str = "approval-workflow",
        comment: str | None = None,
        data: dict[str, Any] | None = None,
        trace: str | None = None,
    ) -> None:
        input = self._input
        await notify(
            SopNotifyInput(
                event_id=f"sop-version-{input.version_id}:r{input.review_round}:{suffix}",
                sop_id=input.sop_id,
                kind=kind,
                team=input.team,
                actor=actor,
                occurred_at=workflow.now(),
                type=type,
                version_number=input.version_number,
                comment=comment,
                data={"sop_key": input.sop_key, "review_round": input.review_round, **(data or {})},
                trace_request_id=trace or self._trace,
            )
        )
