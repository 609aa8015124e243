"""`RuleDeprecationWorkflow`: one per rule (`rule-deprecation-<id>`), started by the sop outbox
when a deprecation is proposed.

    begin_rule_monitoring -> sleep(monitoring period) -> check_rule_monitoring
        -> fired during monitoring: record "retained" with the evidence
        -> clean: wait for the `decide` update (program_manager / approver / admin)
             approve -> "deprecated" (with its replaced-by / merged-into link), reject -> "retained"

Every step is an activity calling the sop service's internal endpoints (idempotent there, so a
retried activity or a replayed history changes nothing twice). `rule.*` events go to the gateway's
notifications in the background with deterministic ids; a gateway that is down never holds the
deprecation. The `decide` update's validator refuses a decision from the wrong role or at the wrong
stage without writing anything to history; the update returns once the outcome is recorded.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import TypeAdapter, ValidationError

    from workflows.contracts import (
        RULE_DEPRECATION_DECIDE_UPDATE,
        RULE_DEPRECATION_NOT_CAUGHT_UP,
        RULE_DEPRECATION_SIGNAL,
        RULE_DEPRECATION_STATE_QUERY,
        RULE_DEPRECATION_WORKFLOW,
        PublishRuleEventInput,
        RecordRuleOutcomeInput,
        RuleDeprecationDecision,
        RuleDeprecationInput,
        RuleDeprecationState,
        RuleDeprecationStepInput,
        RuleMonitoringCheck,
        RuleMonitoringWindow,
    )
    from workflows.service_api import ServiceApi

T = TypeVar("T")

ACTIVITY_BEGIN_RULE_MONITORING = "begin_rule_monitoring"
ACTIVITY_CHECK_RULE_MONITORING = "check_rule_monitoring"
ACTIVITY_RECORD_RULE_OUTCOME = "record_rule_outcome"
ACTIVITY_PUBLISH_RULE_EVENT = "publish_rule_event"

DECIDER_ROLES = frozenset({"program_manager", "approver", "admin"})
APPROVE, REJECT = "approve", "reject"
DEPRECATED, RETAINED = "deprecated", "retained"
SYSTEM_ACTOR = "system"

ACTIVITY_TIMEOUT = timedelta(seconds=10)
# Steps of the deprecation must happen: retry for as long as the sop service is down (a 4xx is
# non-retryable and fails the step at once).
STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
)
# Notifications are optional: a few quick attempts, then give up (logged).
PUBLISH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=3,
)
PUBLISH_GRACE = timedelta(seconds=15)


class RuleDeprecationActivities:
    """The workflow's activities: calls to the sop service and the gateway via ServiceApi."""

    def __init__(self, api: ServiceApi) -> None:
        self.api = api

    def _path(self, input: RuleDeprecationStepInput | RecordRuleOutcomeInput, step: str) -> str:
        return f"/internal/rules/{input.rule_id}/deprecations/{input.deprecation_id}/{step}"

    @activity.defn(name=ACTIVITY_BEGIN_RULE_MONITORING)
    async def begin_rule_monitoring(self, input: RuleDeprecationStepInput) -> RuleMonitoringWindow:
        """Put the rule in `monitoring` and return the window (sop internal endpoint)."""
        response = await self.api.call(
            "sop", "POST", self._path(input, "monitoring"), request_id=input.trace_request_id
        )
        return _parse(RuleMonitoringWindow, response.json())

    @activity.defn(name=ACTIVITY_CHECK_RULE_MONITORING)
    async def check_rule_monitoring(self, input: RuleDeprecationStepInput) -> RuleMonitoringCheck:
        """Check the metrics posted during monitoring against the criteria (stored once)."""
        response = await self.api.call(
            "sop", "POST", self._path(input, "check"), request_id=input.trace_request_id
        )
        return _parse(RuleMonitoringCheck, response.json())

    @activity.defn(name=ACTIVITY_RECORD_RULE_OUTCOME)
    async def record_rule_outcome(self, input: RecordRuleOutcomeInput) -> None:
        """Record deprecated / retained on the rule (a repeat of the same outcome is a no-op)."""
        await self.api.call(
            "sop",
            "POST",
            self._path(input, "outcome"),
            json={
                "outcome": input.outcome,
                "decided_by": input.decided_by,
                "comment": input.comment,
            },
            request_id=input.trace_request_id,
        )

    @activity.defn(name=ACTIVITY_PUBLISH_RULE_EVENT)
    async def publish_rule_event(self, input: PublishRuleEventInput) -> None:
        """Hand a `rule.*` event to the gateway (`POST /internal/events`; repeats are no-ops)."""
        await self.api.call(
            "gateway",
            "POST",
            "/internal/events",
            json={
                "event_id": input.event_id,
                "type": input.type,
                "team": input.team,
                "occurred_at": input.occurred_at.isoformat(),
                "subject": {"kind": "rule", "id": input.rule_id},
                "data": input.data,
            },
            request_id=input.trace_request_id,
        )

    def all(self) -> list[Any]:
        """Every activity of this class, for the worker."""
        return [
            self.begin_rule_monitoring,
            self.check_rule_monitoring,
            self.record_rule_outcome,
            self.publish_rule_event,
        ]


def _parse(kind: type[T], payload: Any) -> T:
    try:
        return TypeAdapter(kind).validate_python(payload)
    except (ValueError, ValidationError) as exc:
        raise ApplicationError(
            f"the sop service returned an unusable body: {exc}", non_retryable=True
        ) from exc


@workflow.defn(name=RULE_DEPRECATION_WORKFLOW)
class RuleDeprecationWorkflow:
    """Monitors a rule proposed for deprecation, checks it, and deprecates or retains it."""

    @workflow.init
    def __init__(self, input: RuleDeprecationInput) -> None:
        self._input = input
        self._stage = "proposed"
        self._decision: RuleDeprecationDecision | None = None
        self._outcome: str | None = None
        self._decided_by: str | None = None
        self._evidence: dict[str, Any] | None = None
        # A newer proposal that arrived while this one was finishing (started as the next run).
        self._next: RuleDeprecationInput | None = None
        self._publishing: set[asyncio.Task[None]] = set()

    @workflow.signal(name=RULE_DEPRECATION_SIGNAL)
    def proposed(self, signal: RuleDeprecationInput) -> None:
        """The outbox's signal: the start argument again (ignored), or a newer proposal."""
        if signal.deprecation_id > self._input.deprecation_id and (
            self._next is None or signal.deprecation_id > self._next.deprecation_id
        ):
            self._next = signal

    @workflow.query(name=RULE_DEPRECATION_STATE_QUERY)
    def state(self) -> RuleDeprecationState:
        """Where the deprecation is."""
        return RuleDeprecationState(
            rule_id=self._input.rule_id,
            deprecation_id=self._input.deprecation_id,
            stage=self._stage,
            outcome=self._outcome,
            decided_by=self._decided_by,
            evidence=self._evidence,
        )

    @workflow.update(name=RULE_DEPRECATION_DECIDE_UPDATE)
    async def decide(self, decision: RuleDeprecationDecision) -> RuleDeprecationState:
        """Approve or reject; returns once the outcome is recorded on the rule."""
        self._decision = decision
        await workflow.wait_condition(lambda: self._outcome is not None)
        return self.state()

    @decide.validator
    def _validate_decision(self, decision: RuleDeprecationDecision) -> None:
        if decision.role not in DECIDER_ROLES:
            raise ApplicationError(
                f"The role {decision.role} may not decide a rule deprecation.", type="Forbidden"
            )
        if decision.decision not in (APPROVE, REJECT):
            raise ApplicationError(f"Unknown decision {decision.decision}.", type="Invalid")
        if decision.deprecation_id != self._input.deprecation_id:
            raise ApplicationError(
                f"Deprecation {decision.deprecation_id} is not the one running.", type="Conflict"
            )
        if self._stage == "monitoring" and self._decision is None:
            # The check activity records `awaiting_approval` in the service before this workflow
            # sees its result: the service was right, the workflow is a task behind (it retries).
            raise ApplicationError(
                "The deprecation workflow has not caught up with its monitoring check yet.",
                type=RULE_DEPRECATION_NOT_CAUGHT_UP,
            )
        if self._stage != "awaiting_approval" or self._decision is not None:
            raise ApplicationError(
                f"The deprecation is {self._stage}, not awaiting approval.", type="Conflict"
            )

    @workflow.run
    async def run(self, input: RuleDeprecationInput) -> RuleDeprecationState:
        """Monitor, check, decide, record; then start a newer proposal if one arrived."""
        step = RuleDeprecationStepInput(
            rule_id=input.rule_id,
            deprecation_id=input.deprecation_id,
            trace_request_id=input.trace_request_id,
        )
        window = await workflow.execute_activity(
            ACTIVITY_BEGIN_RULE_MONITORING,
            step,
            result_type=RuleMonitoringWindow,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=STEP_RETRY,
        )
        self._stage = "monitoring"
        self._publish(
            "rule.deprecation_proposed",
            "proposed",
            {
                "reason": input.reason,
                "proposed_by": input.proposed_by,
                "monitoring_started_at": window.started_at.isoformat(),
                "monitoring_ends_at": window.ends_at.isoformat(),
            },
        )
        # The period is measured from the service's recorded start, so a retried first step (or a
        # worker restart) does not lengthen it.
        remaining = window.ends_at - workflow.now()
        if remaining > timedelta(0):
            await workflow.sleep(remaining)
        check = await workflow.execute_activity(
            ACTIVITY_CHECK_RULE_MONITORING,
            step,
            result_type=RuleMonitoringCheck,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=STEP_RETRY,
        )
        self._evidence = check.evidence
        comment: str | None = check.reason
        if not check.clean:
            outcome, decided_by = RETAINED, SYSTEM_ACTOR
        else:
            self._stage = "awaiting_approval"
            await workflow.wait_condition(lambda: self._decision is not None)
            decision = self._decision
            assert decision is not None
            outcome = DEPRECATED if decision.decision == APPROVE else RETAINED
            decided_by, comment = decision.actor, decision.comment
        await workflow.execute_activity(
            ACTIVITY_RECORD_RULE_OUTCOME,
            RecordRuleOutcomeInput(
                rule_id=input.rule_id,
                deprecation_id=input.deprecation_id,
                outcome=outcome,
                decided_by=decided_by,
                comment=comment,
                trace_request_id=input.trace_request_id,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=STEP_RETRY,
        )
        self._stage, self._outcome, self._decided_by = outcome, outcome, decided_by
        self._publish(
            f"rule.{outcome}",
            outcome,
            {"decided_by": decided_by, "comment": comment, "evidence": check.evidence},
        )
        # Let the update handler answer, and give notifications a bounded chance to go out.
        if self._publishing:
            try:
                await workflow.wait_condition(lambda: not self._publishing, timeout=PUBLISH_GRACE)
            except TimeoutError:
                workflow.logger.warning("rule events still publishing at the end")
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._next is not None:
            workflow.continue_as_new(self._next)
        return self.state()

    def _publish(self, event_type: str, suffix: str, data: dict[str, Any]) -> None:
        input = self._input
        event = PublishRuleEventInput(
            event_id=f"rule-{input.rule_id}:deprecation-{input.deprecation_id}:{suffix}",
            type=event_type,
            team=input.team,
            occurred_at=workflow.now(),
            rule_id=input.rule_id,
            data={"rule_id": input.rule_id, "deprecation_id": input.deprecation_id, **data},
            trace_request_id=input.trace_request_id,
        )

        async def send() -> None:
            try:
                await workflow.execute_activity(
                    ACTIVITY_PUBLISH_RULE_EVENT,
                    event,
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    retry_policy=PUBLISH_RETRY,
                )
            except ActivityError as exc:
                workflow.logger.warning(
                    "rule event not published",
                    extra={"event_id": event.event_id, "error": str(exc.cause or exc)},
                )

        task = asyncio.create_task(send())
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)
