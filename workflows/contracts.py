"""Dataclasses that cross the service <-> workflow boundary (inputs, signals, query results).

Services build them and put them in outbox rows (serialised as JSON); workflows receive them
through the pydantic data converter. Every field added later must have a default, so rows already
waiting in an outbox, and histories already recorded, still decode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from workflows.sla_clock import Clock

REQUEST_LIFECYCLE_WORKFLOW = "RequestLifecycleWorkflow"
REQUEST_EVENT_SIGNAL = "request_event"
REQUEST_STATE_QUERY = "state"
REQUEST_SLA_QUERY = "sla"
# The event kind that stops the first-response clock besides triage: intake sends it for the first
# staff public comment (comments arrive with issue 4).
FIRST_RESPONSE_EVENT_KIND = "first_response"


def request_workflow_id(request_id: int) -> str:
    """The workflow id of a request's lifecycle (`request-<id>`)."""
    return f"request-{request_id}"


@dataclass
class RequestLifecycleCarry:
    """State a lifecycle run hands to its successor on continue-as-new."""

    seen_event_ids: list[str] = field(default_factory=list)
    events_seen: int = 0
    last_event_id: str | None = None
    version: int = 0
    sla: SlaCarry | None = None
    # Events a catch-up read from intake whose own signals have not arrived yet.
    awaited_event_ids: list[str] = field(default_factory=list)


@dataclass
class RequestLifecycleInput:
    """Start argument of `RequestLifecycleWorkflow`: the request when the event happened."""

    request_id: int
    team: str
    request_type: str
    priority: str
    status: str
    carry: RequestLifecycleCarry | None = None
    # When the request was filed: the first-response and resolution clocks start there.
    created_at: datetime | None = None


@dataclass
class RequestEventSignal:
    """One change of a request, delivered at least once; `event_id` identifies repeats."""

    event_id: str
    request_id: int
    kind: str
    action: str | None
    from_status: str | None
    to_status: str
    priority: str
    actor: str
    occurred_at: datetime
    trace_request_id: str | None = None
    # The request's version after this change: lets the workflow ignore an event older than one it
    # has already applied, even once its id has left the bounded dedup window.
    version: int = 0


@dataclass
class RequestLifecycleState:
    """What the `state` query (and the workflow's result) reports."""

    request_id: int
    status: str
    priority: str
    events_seen: int
    last_event_id: str | None
    version: int


# --- SLA clocks of RequestLifecycleWorkflow (policy from the gateway, record on the request).


@dataclass
class SlaPolicy:
    """A resolved SLA policy, as `POST /internal/sla/resolve` on the gateway returns it."""

    policy_id: str
    policy_name: str
    first_response_target: str
    resolution_target: str
    calendar_id: str
    calendar: dict[str, Any]
    warning_thresholds: list[int] = field(default_factory=lambda: [50, 75, 90])
    pause_statuses: list[str] = field(default_factory=lambda: ["waiting_on_requester"])
    auto_close_after: str | None = None


@dataclass
class ResolveSlaPolicyInput:
    """Input of the `resolve_sla_policy` activity."""

    request_id: int
    request_type: str
    priority: str
    trace_request_id: str | None = None


@dataclass
class PublishSlaEventInput:
    """Input of the `publish_sla_event` activity: one event for `POST /internal/events`."""

    event_id: str
    type: str
    team: str
    occurred_at: datetime
    request_id: int
    data: dict[str, Any] = field(default_factory=dict)
    trace_request_id: str | None = None


@dataclass
class RecordSlaInput:
    """Input of the `record_sla` activity (`PUT /internal/requests/{id}/sla` on intake)."""

    request_id: int
    sla_due_at: datetime | None = None
    breached_at: datetime | None = None
    first_response_due_at: datetime | None = None
    resolution_due_at: datetime | None = None
    trace_request_id: str | None = None
    # Each clock's business seconds worked and stop instant, once stopped (for the stats).
    first_response_business_seconds: float | None = None
    first_response_stopped_at: datetime | None = None
    resolution_business_seconds: float | None = None
    resolution_stopped_at: datetime | None = None


@dataclass
class AutoCloseRequestInput:
    """Input of the `auto_close_request` activity (close a resolved request as `system`)."""

    request_id: int
    trace_request_id: str | None = None


@dataclass
class SlaClockReport:
    """One clock as the `sla` query reports it, computed at the query's instant."""

    name: str
    state: str
    target: str | None = None
    target_seconds: float | None = None
    elapsed: str | None = None
    elapsed_seconds: float | None = None
    remaining: str | None = None
    remaining_seconds: float | None = None
    due_at: datetime | None = None
    breached_at: datetime | None = None
    warnings_sent: list[int] = field(default_factory=list)
    paused_since: datetime | None = None
    stopped_at: datetime | None = None
    generation: int = 0


@dataclass
class SlaReport:
    """What the `sla` query returns: the policy in force and each clock (`pending` before one)."""

    request_id: int
    computed_at: datetime
    policy_id: str | None = None
    policy_name: str | None = None
    calendar_id: str | None = None
    clocks: list[SlaClockReport] = field(default_factory=list)


@dataclass
class SlaCarry:
    """The SLA state a lifecycle run hands to its successor on continue-as-new."""

    policy: SlaPolicy | None = None
    policy_priority: str | None = None
    clocks: list[Clock] = field(default_factory=list)
    first_breached_at: datetime | None = None
    pending_events: list[RequestEventSignal] = field(default_factory=list)
    deferred_events: list[RequestEventSignal] = field(default_factory=list)
    # Events still being published when the run continued as new: the successor sends them again
    # (their ids are deterministic, so the gateway ignores one that did arrive).
    unpublished_events: list[PublishSlaEventInput] = field(default_factory=list)
    clock_time: datetime | None = None
    resolved_at: datetime | None = None
    auto_close_requested_for: datetime | None = None


# --- Notifications: one SubscriptionDeliveryWorkflow per subscription, fed by the gateway outbox.

SUBSCRIPTION_DELIVERY_WORKFLOW = "SubscriptionDeliveryWorkflow"
DELIVER_SIGNAL = "deliver"


def subscription_workflow_id(subscription_id: int) -> str:
    """The workflow id of a subscription's deliveries (`subscription-<id>`)."""
    return f"subscription-{subscription_id}"


@dataclass
class DeliveryRetryPolicy:
    """How a delivery is retried before it is dead (the gateway fills it from its settings)."""

    initial_interval_seconds: float = 5.0
    backoff_coefficient: float = 2.0
    max_interval_seconds: float = 600.0
    max_attempts: int = 30
    give_up_seconds: float = 86_400.0
    attempt_timeout_seconds: float = 15.0
    idle_seconds: float = 600.0


@dataclass
class DeliverSignal:
    """Send delivery `delivery_id`; `generation` is bumped by each replay of a dead delivery."""

    delivery_id: int
    generation: int = 0


@dataclass
class SubscriptionDeliveryInput:
    """Start argument of `SubscriptionDeliveryWorkflow` (and of its continue-as-new runs)."""

    subscription_id: int
    policy: DeliveryRetryPolicy = field(default_factory=DeliveryRetryPolicy)
    queue: list[DeliverSignal] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)


@dataclass
class DeliverNotificationInput:
    """Input of the `deliver_notification` activity."""

    delivery_id: int
    generation: int = 0


@dataclass
class MarkDeliveryDeadInput:
    """Input of the `mark_delivery_dead` activity."""

    delivery_id: int
    generation: int = 0
    error: str = ""


# --- Escalations (issue 5): EscalationWorkflow, fed with fact snapshots by the escalation outbox.

ESCALATION_WORKFLOW = "EscalationWorkflow"
ESCALATION_FACTS_SIGNAL = "escalation_facts"
ESCALATION_STATE_QUERY = "state"
ESCALATION_APPROVE_CLOSURE_UPDATE = "approve_closure"


def escalation_workflow_id(escalation_id: int) -> str:
    """The workflow id of an escalation (`escalation-<id>`)."""
    return f"escalation-{escalation_id}"


@dataclass
class EscalationFollowUp:
    """Reminder and overdue-ladder timing (from the escalation service's settings)."""

    reminder_lead_seconds: float = 86_400.0
    ladder_delay_seconds: float = 86_400.0
    ladder_repeats: int = 0
    # How long a fetched owner calendar is trusted before the workflow fetches it again.
    calendar_refresh_seconds: float = 3_600.0
    # Continue as new once history holds this many events (0: only when Temporal suggests it).
    history_limit: int = 0


@dataclass
class ActionItemFacts:
    """What the workflow needs to chase one action item."""

    item_id: int
    title: str
    owner: str
    owner_manager: str | None
    due_at: datetime
    status: str
    # The item's own calendar spec (given on the item), or empty: then the owner's calendar from
    # the directory (`calendar_id`, a gateway calendar the workflow fetches), else the default.
    calendar: dict[str, Any] = field(default_factory=dict)
    calendar_id: str | None = None


@dataclass
class EscalationFacts:
    """A snapshot of an escalation after a change (signal `escalation_facts`); the newest
    `version` wins, so a repeated or late snapshot is ignored."""

    event_id: str
    escalation_id: int
    version: int
    status: str
    source: str
    severity: str
    team: str
    title: str
    owner: str
    program_manager: str | None
    rca_present: bool
    items: list[ActionItemFacts] = field(default_factory=list)
    follow_up: EscalationFollowUp = field(default_factory=EscalationFollowUp)
    occurred_at: datetime | None = None
    trace_request_id: str | None = None


@dataclass
class ItemChase:
    """Follow-up state of one action item: its overdue episode and what was already sent."""

    item_id: int
    due_at: datetime
    episode: int = 1
    reminded: bool = False
    levels_sent: list[str] = field(default_factory=list)
    repeats_sent: int = 0


@dataclass
class ClosureApproval:
    """The program manager's approval to close, as the `approve_closure` update records it."""

    approved_by: str
    approved_at: datetime
    version: int
    note: str | None = None


@dataclass
class ApproveClosureInput:
    """Argument of the `approve_closure` update; `expected_version` is the escalation version the
    service saw, so a workflow that has not caught up refuses instead of judging stale facts."""

    approver: str
    expected_version: int
    note: str | None = None


@dataclass
class PublishEscalationEventInput:
    """Input of the `publish_escalation_event` activity: one event for `POST /internal/events`."""

    event_id: str
    type: str
    team: str
    occurred_at: datetime
    escalation_id: int
    data: dict[str, Any] = field(default_factory=dict)
    trace_request_id: str | None = None


@dataclass
class FetchOwnerCalendarInput:
    """Input of the `fetch_owner_calendar` activity: one gateway calendar by id."""

    calendar_id: str
    trace_request_id: str | None = None


@dataclass
class OwnerCalendar:
    """A gateway calendar as EscalationWorkflow cached it; `spec` is None when the gateway does
    not know the id or could not be reached (`failed`): quiet hours then follow the default."""

    calendar_id: str
    fetched_at: datetime
    spec: dict[str, Any] | None = None
    failed: bool = False


@dataclass
class EscalationCarry:
    """State an escalation run hands to its successor on continue-as-new."""

    facts: EscalationFacts | None = None
    chases: list[ItemChase] = field(default_factory=list)
    sent_event_ids: list[str] = field(default_factory=list)
    approval: ClosureApproval | None = None
    # Events handed to the gateway whose activity had not finished: published again (same ids).
    unpublished: list[PublishEscalationEventInput] = field(default_factory=list)
    calendars: list[OwnerCalendar] = field(default_factory=list)
    runs: int = 1


@dataclass
class EscalationWorkflowInput:
    """Start argument of `EscalationWorkflow`."""

    escalation_id: int
    team: str
    carry: EscalationCarry | None = None


@dataclass
class EscalationWorkflowState:
    """What the `state` query (and the result) of `EscalationWorkflow` reports."""

    escalation_id: int
    version: int
    status: str | None
    open_items: list[int] = field(default_factory=list)
    rca_present: bool = False
    chases: list[ItemChase] = field(default_factory=list)
    sent_event_ids: list[str] = field(default_factory=list)
    approval: ClosureApproval | None = None
    calendars: list[OwnerCalendar] = field(default_factory=list)
    # 1 + how many times the workflow continued as new.
    runs: int = 1


# --- Rule deprecation: one RuleDeprecationWorkflow per rule (`rule-deprecation-<id>`), fed by the
# sop outbox; decisions arrive as a Temporal update with a validator.

RULE_DEPRECATION_WORKFLOW = "RuleDeprecationWorkflow"
RULE_DEPRECATION_SIGNAL = "deprecation_proposed"
RULE_DEPRECATION_DECIDE_UPDATE = "decide"
# The decide validator's error type while the workflow is a task behind the service's record
# of the monitoring check; the service retries the decision briefly on it.
RULE_DEPRECATION_NOT_CAUGHT_UP = "NotCaughtUp"
RULE_DEPRECATION_STATE_QUERY = "state"


def rule_deprecation_workflow_id(rule_id: str) -> str:
    """The workflow id of a rule's deprecation (`rule-deprecation-<id>`)."""
    return f"rule-deprecation-{rule_id}"


@dataclass
class RuleDeprecationInput:
    """Start argument of `RuleDeprecationWorkflow` (also the proposal signal's payload)."""

    rule_id: str
    deprecation_id: int
    team: str
    reason: str
    proposed_by: str
    monitoring_seconds: int
    trace_request_id: str | None = None


@dataclass
class RuleDeprecationDecision:
    """The `decide` update: an approver's answer; the validator checks role and stage."""

    deprecation_id: int
    decision: str
    actor: str
    role: str
    comment: str | None = None


@dataclass
class RuleDeprecationState:
    """What the `state` query (and the `decide` update, and the result) report."""

    rule_id: str
    deprecation_id: int
    stage: str
    outcome: str | None = None
    decided_by: str | None = None
    evidence: dict[str, Any] | None = None


@dataclass
class RuleDeprecationStepInput:
    """Input of the monitoring and check activities."""

    rule_id: str
    deprecation_id: int
    trace_request_id: str | None = None


@dataclass
class RuleMonitoringWindow:
    """Result of `begin_rule_monitoring`."""

    started_at: datetime
    ends_at: datetime


@dataclass
class RuleMonitoringCheck:
    """Result of `check_rule_monitoring`: `clean` means no impact seen during monitoring."""

    clean: bool
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class RecordRuleOutcomeInput:
    """Input of `record_rule_outcome`: deprecated or retained, by whom, why."""

    rule_id: str
    deprecation_id: int
    outcome: str
    decided_by: str
    comment: str | None = None
    trace_request_id: str | None = None


@dataclass
class PublishRuleEventInput:
    """Input of `publish_rule_event`: one `rule.*` event for the gateway's notifications."""

    event_id: str
    type: str
    team: str
    occurred_at: datetime
    rule_id: str
    data: dict[str, Any] = field(default_factory=dict)
    trace_request_id: str | None = None


# --- SOPs: SopApprovalWorkflow, SopRolloutWorkflow and the review sweep (services/sop/sops).

SOP_APPROVAL_WORKFLOW = "SopApprovalWorkflow"
SOP_ROLLOUT_WORKFLOW = "SopRolloutWorkflow"
SOP_REVIEW_SWEEP_WORKFLOW = "SopReviewSweepWorkflow"
SOP_APPROVAL_OPENED_SIGNAL = "approval_opened"
SOP_DECIDE_UPDATE = "decide"
SOP_APPROVAL_STATE_QUERY = "approval_state"
SOP_ROLLOUT_SIGNAL = "rollout_event"
SOP_ROLLOUT_STATE_QUERY = "rollout_state"


def sop_approval_workflow_id(version_id: int, review_round: int) -> str:
    """The approval workflow of one review round of an SOP version."""
    return f"sop-version-{version_id}-approval-{review_round}"


def sop_rollout_workflow_id(rollout_id: int) -> str:
    """The workflow of one SOP rollout (`sop-rollout-<id>`)."""
    return f"sop-rollout-{rollout_id}"


@dataclass
class ApprovalStageSpec:
    """One stage of an approval policy: parallel approvers, `required` approvals end it."""

    name: str
    approvers: list[str]
    required: int


@dataclass
class SopApprovalInput:
    """Start argument of `SopApprovalWorkflow` (one review round of one version)."""

    version_id: int
    sop_id: int
    sop_key: str
    version_number: int
    review_round: int
    author: str
    owner: str
    team: str
    stages: list[ApprovalStageSpec]
    reject_returns_to_draft: bool = True
    reminder_interval_seconds: float = 86_400.0
    escalate_after_seconds: float = 3 * 86_400.0


@dataclass
class SopApprovalOpened:
    """The signal that accompanies the start (the outbox delivers signal-with-start)."""

    event_id: str
    trace_request_id: str | None = None


@dataclass
class SopDecisionInput:
    """Argument of the `decide` update: `decision` is `approve` or `reject`."""

    actor: str
    decision: str
    comment: str | None = None
    trace_request_id: str | None = None


@dataclass
class ApprovalStageState:
    """A stage as the workflow sees it."""

    name: str
    approvers: list[str]
    required: int
    approvals: list[str] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)
    status: str = "waiting"
    reminders_sent: int = 0
    escalated: bool = False


@dataclass
class SopApprovalState:
    """What the `approval_state` query (and the workflow's result) reports."""

    version_id: int
    review_round: int
    current_stage: int
    stages: list[ApprovalStageState]
    outcome: str | None = None


@dataclass
class SopDecisionResult:
    """The result of an accepted decision: the stage it counted in and where things stand."""

    stage: int
    stage_name: str
    stage_status: str
    outcome: str | None = None


@dataclass
class SopNotifyInput:
    """Input of `notify_sop`: an SOP audit event, also published to the gateway when `type` is set.

    `event_id` is deterministic, so a retried activity or a replayed workflow records and notifies
    once (both endpoints ignore a repeated id).
    """

    event_id: str
    sop_id: int
    kind: str
    team: str
    actor: str
    occurred_at: datetime
    type: str | None = None
    version_number: int | None = None
    rollout_id: int | None = None
    org_id: str | None = None
    comment: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    trace_request_id: str | None = None


@dataclass
class FinishSopApprovalInput:
    """Input of `finish_sop_approval`: `outcome` is approved, rejected or returned_to_draft."""

    version_id: int
    review_round: int
    outcome: str
    trace_request_id: str | None = None


@dataclass
class RolloutOrgTarget:
    """One org of a rollout as the workflow is given it."""

    org_id: str
    lead_subject: str
    wave: int
    starts_at: datetime
    due_at: datetime
    acknowledged: bool = False
    reminders_sent: int = 0
    escalated: bool = False


@dataclass
class SopRolloutInput:
    """Start argument of `SopRolloutWorkflow`, rebuilt from the database for every signal."""

    rollout_id: int
    sop_id: int
    sop_key: str
    version_number: int
    team: str
    owner: str
    orgs: list[RolloutOrgTarget]
    reminder_interval_seconds: float = 86_400.0
    cancelled: bool = False


@dataclass
class SopRolloutSignal:
    """A change of a rollout: `created`, `acknowledged` (with `org_id`) or `cancelled`."""

    event_id: str
    kind: str
    org_id: str | None = None
    trace_request_id: str | None = None


@dataclass
class SopRolloutState:
    """What the `rollout_state` query (and the workflow's result) reports."""

    rollout_id: int
    status: str
    orgs: list[RolloutOrgTarget]


@dataclass
class SopReviewSweepInput:
    """Input of `SopReviewSweepWorkflow`: owners are reminded this many days before a review."""

    remind_before_days: int = 30
    trace_request_id: str | None = None


@dataclass
class DueSopReview:
    """An SOP whose periodic review is due soon (or overdue), as the sop service lists it."""

    sop_id: int
    key: str
    title: str
    team: str
    owner: str
    next_review_at: datetime
    overdue: bool


# --- Aging alerts: the daily sweep (`AgingSweepWorkflow`, run by the `aging-daily-sweep` schedule).

AGING_SWEEP_WORKFLOW = "AgingSweepWorkflow"


@dataclass
class AgingSweepInput:
    """Input of `AgingSweepWorkflow` (the schedule starts it with the defaults).

    The business days counted are those of the calendar of the SLA policy matching
    `calendar_request_type` and `calendar_priority` (the catch-all's, with the seeds).
    """

    stale_business_days: int | None = None
    calendar_request_type: str = "other"
    calendar_priority: str = "P3"
    trace_request_id: str | None = None


@dataclass
class AgingOwner:
    """One owner with stale requests: an assignee within a team, or the team (unassigned)."""

    team: str
    assignee: str | None
    stale_count: int


@dataclass
class AgingSweepPlan:
    """What the `plan_aging_sweep` activity found: who gets a digest, seen at `as_of`."""

    as_of: datetime
    as_of_date: str
    calendar: dict[str, Any]
    stale_business_days: int
    owners: list[AgingOwner] = field(default_factory=list)


@dataclass
class PublishAgingDigestInput:
    """Input of the `publish_aging_digest` activity: one owner's digest of one sweep."""

    owner: AgingOwner
    as_of: datetime
    as_of_date: str
    calendar: dict[str, Any]
    stale_business_days: int
    trace_request_id: str | None = None
