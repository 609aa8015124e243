"""`EscalationWorkflow`: one per escalation (`escalation-<id>`), fed by the escalation outbox.

The escalation service signal-with-starts it with a snapshot of the escalation's facts after every
change (`escalation_facts`; the newest version wins). From those facts it:

- reminds each action item's owner `reminder_lead_seconds` before the item is due;
- climbs the overdue ladder once the item is overdue: owner at the due instant, the owner's
  manager one `ladder_delay_seconds` later (skipped when none is named), the program manager one
  delay after that, then `ladder_repeats` further program-manager reminders one delay apart. Each
  level is notified at most once per overdue episode; moving the due date starts a new episode;
- stays quiet outside the owner's calendar hours: a notice falling outside them is sent at the
  next open instant of the owner's calendar (services.common.business_time);
- judges closure: the `approve_closure` update's validator refuses (nothing written to history)
  while an item is open or a Sev-2 / COE escalation has no RCA, with the reason. An accepted update
  records the approval; the escalation service then closes the escalation, and the closed snapshot
  ends this workflow.

Notifications go through the `publish_escalation_event` activity to the gateway's
`POST /internal/events`, with deterministic event ids
(`escalation-<id>:item-<item id>:reminder:<episode>`,
`escalation-<id>:item-<item id>:ladder:<level>:<episode>`, `...:ladder:program_manager:<episode>:
repeat-<n>`): a retried activity or a replayed workflow never notifies twice, and what was sent is
workflow state, so a worker restart sends nothing again. History stays bounded: it continues as
new when Temporal suggests it, carrying the chases.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from services.common.business_time import Calendar, CalendarError, add
    from services.escalation.action_items.domain import CHASED_STATUSES, RESOLVED_STATUSES
    from services.escalation.domain import DEFAULT_CALENDAR_SPEC, closure_blockers
    from workflows.contracts import (
        ESCALATION_APPROVE_CLOSURE_UPDATE,
        ESCALATION_FACTS_SIGNAL,
        ESCALATION_STATE_QUERY,
        ESCALATION_WORKFLOW,
        ActionItemFacts,
        ApproveClosureInput,
        ClosureApproval,
        EscalationCarry,
        EscalationFacts,
        EscalationFollowUp,
        EscalationWorkflowInput,
        EscalationWorkflowState,
        ItemChase,
        PublishEscalationEventInput,
        escalation_workflow_id,
    )
    from workflows.search_attributes import REQUEST_STATUS, REQUEST_TEAM
    from workflows.service_api import ServiceApi

ACTIVITY_PUBLISH_ESCALATION_EVENT = "publish_escalation_event"
REMINDER_EVENT = "escalation.reminder"
OVERDUE_EVENT = "escalation.overdue"
CLOSED_STATUS = "closed"
PENDING_CLOSURE_STATUS = "pending_closure"
# The validator's error type while the workflow has not yet seen the version the service saw (the
# service retries briefly on it; services/escalation/service.py NOT_CAUGHT_UP).
NOT_CAUGHT_UP = "NotCaughtUp"
CLOSURE_REFUSED = "ClosureRefused"
OWNER, OWNER_MANAGER, PROGRAM_MANAGER = "owner", "owner_manager", "program_manager"

ACTIVITY_TIMEOUT = timedelta(seconds=10)
# Events are published in the background (the ladder never waits on the gateway); the gateway
# ignores a repeated event id, so retrying is always safe.
PUBLISH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=20,
)
# How long a closed escalation waits for events still being published before it completes.
CLOSE_GRACE = timedelta(seconds=10)
SENT_WINDOW = 500
ONE_MICROSECOND = timedelta(microseconds=1)


class EscalationActivities:
    """The escalation workflow's activities: calls to the gateway through the worker's ServiceApi."""

    def __init__(self, api: ServiceApi) -> None:
        self.api = api

    @activity.defn(name=ACTIVITY_PUBLISH_ESCALATION_EVENT)
    async def publish_escalation_event(self, input: PublishEscalationEventInput) -> None:
        """Hand one event to the gateway's notifications (`POST /internal/events`; a repeated
        event id is a no-op there, so a retried activity never notifies twice)."""
        await self.api.call(
            "gateway",
            "POST",
            "/internal/events",
            json={
                "event_id": input.event_id,
                "type": input.type,
                "team": input.team,
                "occurred_at": input.occurred_at.isoformat(),
                "subject": {"kind": "escalation", "id": str(input.escalation_id)},
                "data": input.data,
            },
            request_id=input.trace_request_id,
        )

    def all(self) -> list[Callable[..., Awaitable[Any]]]:
        """Every activity of this class, for the worker."""
        return [self.publish_escalation_event]


# --- Pure planning (no I/O, deterministic: used inside the workflow and unit-tested alone).


@dataclass(frozen=True, slots=True)
class Notice:
    """One reminder or ladder notification of an item, at the instant it may be sent."""

    at: datetime
    order: int
    kind: str  # "reminder" | "ladder" | "repeat"
    level: str
    recipient: str | None
    repeat: int
    event_id: str


def calendar_of(item: ActionItemFacts) -> Calendar:
    """The owner's calendar; a calendar that no longer parses falls back to the default."""
    try:
        return Calendar.from_spec(item.calendar or DEFAULT_CALENDAR_SPEC)
    except CalendarError:
        return Calendar.from_spec(DEFAULT_CALENDAR_SPEC)


def next_open(calendar: Calendar, at: datetime) -> datetime:
    """`at` if the calendar is open then, else the next instant it opens (quiet hours)."""
    if calendar.always_open:
        return at
    try:
        return add(calendar, at, ONE_MICROSECOND) - ONE_MICROSECOND
    except CalendarError:  # pragma: no cover - no open hour in ten years: don't stay silent
        return at


def ladder_levels(
    item: ActionItemFacts, program_manager: str | None
) -> list[tuple[str, str | None]]:
    """(level, recipient) in climbing order; a level without a recipient is skipped, except the
    program manager's (the team's subscribers get it when no program manager is named)."""
    levels: list[tuple[str, str | None]] = [(OWNER, item.owner)]
    if item.owner_manager:
        levels.append((OWNER_MANAGER, item.owner_manager))
    levels.append((PROGRAM_MANAGER, program_manager))
    return levels


def pending_notices(
    *,
    escalation_id: int,
    item: ActionItemFacts,
    chase: ItemChase,
    program_manager: str | None,
    follow_up: EscalationFollowUp,
    now: datetime,
) -> list[Notice]:
    """Every notice of this item not yet sent in its current episode, with its send instant."""
    if item.status not in CHASED_STATUSES:
        return []
    calendar = calendar_of(item)
    prefix = f"{escalation_workflow_id(escalation_id)}:item-{item.item_id}"
    due = item.due_at
    delay = timedelta(seconds=follow_up.ladder_delay_seconds)
    notices: list[Notice] = []
    if not chase.reminded and follow_up.reminder_lead_seconds > 0 and now < due:
        at = next_open(calendar, due - timedelta(seconds=follow_up.reminder_lead_seconds))
        # A reminder that quiet hours would push past the due instant is dropped: the overdue
        # notice is the next thing the owner hears.
        if at < due:
            notices.append(
                Notice(
                    at, 0, "reminder", OWNER, item.owner, 0, f"{prefix}:reminder:{chase.episode}"
                )
            )
    levels = ladder_levels(item, program_manager)
    for index, (level, recipient) in enumerate(levels):
        if level in chase.levels_sent:
            continue
        notices.append(
            Notice(
                next_open(calendar, due + delay * index),
                1 + index,
                "ladder",
                level,
                recipient,
                0,
                f"{prefix}:ladder:{level}:{chase.episode}",
            )
        )
    top, top_recipient = levels[-1]
    for repeat in range(chase.repeats_sent + 1, follow_up.ladder_repeats + 1):
        notices.append(
            Notice(
                next_open(calendar, due + delay * (len(levels) - 1 + repeat)),
                1 + len(levels) + repeat,
                "repeat",
                top,
                top_recipient,
                repeat,
                f"{prefix}:ladder:{top}:{chase.episode}:repeat-{repeat}",
            )
        )
    return notices


def closure_refusal(
    facts: EscalationFacts | None, expected_version: int
) -> ApplicationError | None:
    """Why the closure update must be refused on these facts (None: it may be accepted)."""
    if facts is None or facts.version < expected_version:
        return ApplicationError(
            f"the workflow has not yet seen version {expected_version} of the escalation",
            type=NOT_CAUGHT_UP,
        )
    if facts.status != PENDING_CLOSURE_STATUS:
        return ApplicationError(
            f"the escalation is {facts.status}, not pending_closure", type=CLOSURE_REFUSED
        )
    reasons = closure_blockers(
        source=facts.source,
        rca_present=facts.rca_present,
        items=[(item.item_id, item.status) for item in facts.items],
    )
    if reasons:
        return ApplicationError("; ".join(reasons), type=CLOSURE_REFUSED)
    return None


@workflow.defn(name=ESCALATION_WORKFLOW)
class EscalationWorkflow:
    """Chases an escalation's action items and judges its closure, until it closes."""

    @workflow.init
    def __init__(self, input: EscalationWorkflowInput) -> None:
        # Built before any signal is handled: signal-with-start delivers the first snapshot in the
        # same activation as the start.
        carry = input.carry or EscalationCarry()
        self._input = input
        self._facts: EscalationFacts | None = carry.facts
        self._chases: dict[int, ItemChase] = {c.item_id: c for c in carry.chases}
        self._sent: list[str] = list(carry.sent_event_ids[-SENT_WINDOW:])
        self._approval = carry.approval
        self._changed = False
        self._publishing: set[asyncio.Task[None]] = set()
        self._unpublished: dict[str, PublishEscalationEventInput] = {
            e.event_id: e for e in carry.unpublished
        }

    @workflow.run
    async def run(self, input: EscalationWorkflowInput) -> EscalationWorkflowState:
        """Follow up until the escalation is closed (continuing as new when history grows)."""
        for event in list(self._unpublished.values()):
            self._publish(event)
        await workflow.wait_condition(lambda: self._facts is not None)
        self._upsert_search_attributes()
        while not self._closed():
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    EscalationWorkflowInput(
                        escalation_id=input.escalation_id,
                        team=input.team,
                        carry=EscalationCarry(
                            facts=self._facts,
                            chases=list(self._chases.values()),
                            sent_event_ids=list(self._sent),
                            approval=self._approval,
                            unpublished=list(self._unpublished.values()),
                        ),
                    )
                )
            now = workflow.now()
            due, next_at = self._plan(now)
            for item, notice in due:
                self._send(item, notice, now)
            if due:
                continue
            self._changed = False
            timeout = (next_at - now) if next_at is not None else None
            with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                await workflow.wait_condition(
                    lambda: self._changed or workflow.info().is_continue_as_new_suggested(),
                    timeout=timeout,
                )
        await workflow.wait_condition(workflow.all_handlers_finished)
        with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
            await workflow.wait_condition(lambda: not self._publishing, timeout=CLOSE_GRACE)
        workflow.logger.info("escalation closed", extra={"escalation_id": input.escalation_id})
        return self._state()

    @workflow.signal(name=ESCALATION_FACTS_SIGNAL)
    def escalation_facts(self, facts: EscalationFacts) -> None:
        """Take a newer snapshot; a repeated or older one is ignored. A moved due date starts a
        new overdue episode for that item."""
        if self._facts is not None and facts.version <= self._facts.version:
            return
        status_changed = self._facts is None or self._facts.status != facts.status
        self._facts = facts
        for item in facts.items:
            chase = self._chases.get(item.item_id)
            if chase is None:
                self._chases[item.item_id] = ItemChase(item_id=item.item_id, due_at=item.due_at)
            elif chase.due_at != item.due_at:
                self._chases[item.item_id] = ItemChase(
                    item_id=item.item_id, due_at=item.due_at, episode=chase.episode + 1
                )
        self._changed = True
        if status_changed:
            self._upsert_search_attributes()

    @workflow.update(name=ESCALATION_APPROVE_CLOSURE_UPDATE)
    async def approve_closure(self, input: ApproveClosureInput) -> ClosureApproval:
        """Record the program manager's approval (the validator has checked the rules)."""
        assert self._facts is not None  # the validator refuses before the first snapshot
        self._approval = ClosureApproval(
            approved_by=input.approver,
            approved_at=workflow.now(),
            version=self._facts.version,
            note=input.note,
        )
        return self._approval

    @approve_closure.validator
    def validate_approve_closure(self, input: ApproveClosureInput) -> None:
        """Refuse while an action item is open or a Sev-2 / COE escalation has no RCA."""
        refusal = closure_refusal(self._facts, input.expected_version)
        if refusal is not None:
            raise refusal

    @workflow.query(name=ESCALATION_STATE_QUERY)
    def state(self) -> EscalationWorkflowState:
        """What the workflow knows and has sent."""
        return self._state()

    # --- internals -------------------------------------------------------------------------

    def _closed(self) -> bool:
        return self._facts is not None and self._facts.status == CLOSED_STATUS

    def _plan(self, now: datetime) -> tuple[list[tuple[ActionItemFacts, Notice]], datetime | None]:
        """The notices due now (in order) and the instant of the next one."""
        facts = self._facts
        assert facts is not None
        due: list[tuple[ActionItemFacts, Notice]] = []
        next_at: datetime | None = None
        for item in facts.items:
            chase = self._chases[item.item_id]
            # Calendars load public holidays lazily (`holidays` reads locale settings while it
            # loads a country): deterministic, but refused by the sandbox. Only this synchronous,
            # pure computation runs unrestricted.
            with workflow.unsafe.sandbox_unrestricted():
                notices = pending_notices(
                    escalation_id=facts.escalation_id,
                    item=item,
                    chase=chase,
                    program_manager=facts.program_manager,
                    follow_up=facts.follow_up,
                    now=now,
                )
            for notice in notices:
                if notice.at <= now:
                    due.append((item, notice))
                elif next_at is None or notice.at < next_at:
                    next_at = notice.at
        due.sort(key=lambda pair: (pair[1].at, pair[0].item_id, pair[1].order))
        return due, next_at

    def _send(self, item: ActionItemFacts, notice: Notice, now: datetime) -> None:
        """Mark the notice sent in this episode, then publish it in the background."""
        facts = self._facts
        assert facts is not None
        chase = self._chases[item.item_id]
        if notice.kind == "reminder":
            chase.reminded = True
        elif notice.kind == "ladder":
            chase.levels_sent.append(notice.level)
            # Once overdue, a reminder that never went is moot.
            chase.reminded = True
        else:
            chase.repeats_sent = notice.repeat
        self._sent.append(notice.event_id)
        del self._sent[:-SENT_WINDOW]
        overdue = notice.kind != "reminder"
        self._publish(
            PublishEscalationEventInput(
                event_id=notice.event_id,
                type=OVERDUE_EVENT if overdue else REMINDER_EVENT,
                team=facts.team,
                occurred_at=now,
                escalation_id=facts.escalation_id,
                data={
                    "escalation_id": facts.escalation_id,
                    "escalation_title": facts.title,
                    "severity": facts.severity,
                    "action_item_id": item.item_id,
                    "action_item_title": item.title,
                    "owner": item.owner,
                    "level": notice.level,
                    "recipient": notice.recipient,
                    "due_at": item.due_at.isoformat(),
                    "episode": chase.episode,
                    "repeat": notice.repeat,
                    "overdue_seconds": max(0.0, (now - item.due_at).total_seconds()),
                },
                trace_request_id=facts.trace_request_id,
            )
        )

    def _publish(self, event: PublishEscalationEventInput) -> None:
        """Publish in the background: a slow or down gateway never holds the ladder."""

        async def send() -> None:
            try:
                await workflow.execute_activity(
                    ACTIVITY_PUBLISH_ESCALATION_EVENT,
                    event,
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    retry_policy=PUBLISH_RETRY,
                )
            except ActivityError as exc:
                workflow.logger.error(
                    "escalation event not published",
                    extra={"event_id": event.event_id, "error": str(exc.cause or exc)},
                )
            self._unpublished.pop(event.event_id, None)

        self._unpublished[event.event_id] = event
        task = asyncio.create_task(send())
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    def _state(self) -> EscalationWorkflowState:
        facts = self._facts
        open_items: list[int] = []
        if facts is not None:
            open_items = [i.item_id for i in facts.items if i.status not in RESOLVED_STATUSES]
        return EscalationWorkflowState(
            escalation_id=self._input.escalation_id,
            version=facts.version if facts else 0,
            status=facts.status if facts else None,
            open_items=open_items,
            rca_present=facts.rca_present if facts else False,
            chases=sorted(self._chases.values(), key=lambda c: c.item_id),
            sent_event_ids=list(self._sent),
            approval=self._approval,
        )

    def _upsert_search_attributes(self) -> None:
        if self._facts is None:
            return
        workflow.upsert_search_attributes(
            [REQUEST_TEAM.value_set(self._facts.team), REQUEST_STATUS.value_set(self._facts.status)]
        )
