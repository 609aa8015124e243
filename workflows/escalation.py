"""`EscalationWorkflow`: one per escalation (`escalation-<id>`), fed by the escalation outbox.

The escalation service signal-with-starts it with a snapshot of the escalation's facts after every
change (`escalation_facts`; the newest version wins). From those facts it:

- reminds each action item's owner `reminder_lead_seconds` before the item is due;
- climbs the overdue ladder once the item is overdue: owner at the due instant, the owner's
  manager one `ladder_delay_seconds` later (skipped when none is named), the program manager one
  delay after that, then `ladder_repeats` further program-manager reminders one delay apart. Each
  level is notified at most once per overdue episode; moving the due date starts a new episode;
- stays quiet outside the owner's calendar hours: a notice falling outside them is sent at the
  next open instant of the owner's calendar (services.common.business_time). That calendar is the
  item's own when it has one, else the owner's gateway calendar (`calendar_id` from the person
  directory), fetched by the `fetch_owner_calendar` activity from the gateway's
  `GET /internal/calendars/{id}` and cached in workflow state (fetched again after
  `calendar_refresh_seconds`, carried across continue-as-new), else the program office default
  (also when the gateway does not know the calendar or cannot be reached);
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
new when Temporal suggests it (or past `follow_up.history_limit` events, when set), carrying the
chases, the sent event ids and the cached calendars.

The pure rules it shares with the escalation service (closure, chased statuses, the default
calendar) live in workflows/escalation_rules.py: no service module is imported here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from services.common.business_time import Calendar, CalendarError, add
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
        FetchOwnerCalendarInput,
        ItemChase,
        OwnerCalendar,
        PublishEscalationEventInput,
        escalation_workflow_id,
    )
    from workflows.escalation_rules import (
        CHASED_ITEM_STATUSES,
        DEFAULT_CALENDAR_SPEC,
        RESOLVED_ITEM_STATUSES,
        closure_blockers,
    )
    from workflows.search_attributes import REQUEST_STATUS, REQUEST_TEAM
    from workflows.service_api import ServiceApi

ACTIVITY_PUBLISH_ESCALATION_EVENT = "publish_escalation_event"
ACTIVITY_FETCH_OWNER_CALENDAR = "fetch_owner_calendar"
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
# A calendar fetch is retried briefly; past that, quiet hours follow the default until the next
# attempt, CALENDAR_RETRY later (or sooner if the refresh interval is shorter).
FETCH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=3,
)
CALENDAR_RETRY = timedelta(minutes=5)
# How long a closed escalation waits for events still being published before it completes.
CLOSE_GRACE = timedelta(seconds=10)
PATCH_CAN_DRAINS_PUBLISHING = "escalation-continue-as-new-drains-publishing"
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

    @activity.defn(name=ACTIVITY_FETCH_OWNER_CALENDAR)
    async def fetch_owner_calendar(self, input: FetchOwnerCalendarInput) -> dict[str, Any] | None:
        """The spec of a gateway calendar (`GET /internal/calendars/{id}`); None when the gateway
        does not know the id (404)."""
        response = await self.api.call(
            "gateway",
            "GET",
            f"/internal/calendars/{input.calendar_id}",
            request_id=input.trace_request_id,
            ok_statuses=frozenset({404}),
        )
        if response.status_code == 404:
            return None
        spec = response.json().get("calendar")
        return spec if isinstance(spec, dict) else None

    def all(self) -> list[Callable[..., Awaitable[Any]]]:
        """Every activity of this class, for the worker."""
        return [self.publish_escalation_event, self.fetch_owner_calendar]


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


def calendar_of(
    item: ActionItemFacts, fetched: Mapping[str, OwnerCalendar] | None = None
) -> Calendar:
    """The calendar an item is chased on: its own, else its owner's gateway calendar (as
    fetched), else the program office default; one that does not parse falls back too."""
    spec: Mapping[str, Any] = DEFAULT_CALENDAR_SPEC
    if item.calendar:
        spec = item.calendar
    elif item.calendar_id is not None and fetched is not None:
        cached = fetched.get(item.calendar_id)
        if cached is not None and cached.spec is not None:
            spec = cached.spec
    try:
        return Calendar.from_spec(spec)
    except CalendarError:
        return Calendar.from_spec(DEFAULT_CALENDAR_SPEC)


def calendars_to_fetch(
    facts: EscalationFacts,
    fetched: Mapping[str, OwnerCalendar],
    *,
    refresh: timedelta,
    now: datetime,
) -> list[str]:
    """Owner calendar ids the chased items need that are missing or due for a refresh."""
    wanted = sorted(
        {
            item.calendar_id
            for item in facts.items
            if item.calendar_id and not item.calendar and item.status in CHASED_ITEM_STATUSES
        }
    )
    due: list[str] = []
    for calendar_id in wanted:
        cached = fetched.get(calendar_id)
        if cached is None:
            due.append(calendar_id)
            continue
        wait = min(refresh, CALENDAR_RETRY) if cached.failed else refresh
        if now - cached.fetched_at >= wait:
            due.append(calendar_id)
    return due


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
    calendar: Calendar | None = None,
) -> list[Notice]:
    """Every notice of this item not yet sent in its current episode, with its send instant
    (quiet hours on `calendar`, by default the item's own or the program office's)."""
    if item.status not in CHASED_ITEM_STATUSES:
        return []
    calendar = calendar or calendar_of(item)
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
        self._calendars: dict[str, OwnerCalendar] = {c.calendar_id: c for c in carry.calendars}
        self._runs = carry.runs

    @workflow.run
    async def run(self, input: EscalationWorkflowInput) -> EscalationWorkflowState:
        """Follow up until the escalation is closed (continuing as new when history grows)."""
        for event in list(self._unpublished.values()):
            self._publish(event)
        await workflow.wait_condition(lambda: self._facts is not None)
        self._upsert_search_attributes()
        while not self._closed():
            if self._history_full():
                await workflow.wait_condition(workflow.all_handlers_finished)
                # Let notices in flight land first: what is still unpublished after the grace is
                # carried over and published again under the same ids (the gateway drops repeats).
                # Patched: runs that continued as new before this wait existed replay unchanged.
                if workflow.patched(PATCH_CAN_DRAINS_PUBLISHING):
                    with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                        await workflow.wait_condition(
                            lambda: not self._publishing, timeout=CLOSE_GRACE
                        )
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
                            calendars=list(self._calendars.values()),
                            runs=self._runs + 1,
                        ),
                    )
                )
            await self._refresh_calendars()
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
                    lambda: self._changed or self._history_full(), timeout=timeout
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

    def _history_full(self) -> bool:
        """Time to continue as new: Temporal suggests it, or the configured limit is reached."""
        info = workflow.info()
        if info.is_continue_as_new_suggested():
            return True
        limit = self._facts.follow_up.history_limit if self._facts is not None else 0
        return limit > 0 and info.get_current_history_length() >= limit

    async def _refresh_calendars(self) -> None:
        """Fetch the owner calendars the chased items need and the cache lacks (or holds too
        long). A failed fetch is cached as failed: quiet hours follow the default meanwhile."""
        facts = self._facts
        assert facts is not None
        refresh = timedelta(seconds=facts.follow_up.calendar_refresh_seconds)
        for calendar_id in calendars_to_fetch(
            facts, self._calendars, refresh=refresh, now=workflow.now()
        ):
            try:
                spec: dict[str, Any] | None = await workflow.execute_activity(
                    ACTIVITY_FETCH_OWNER_CALENDAR,
                    FetchOwnerCalendarInput(
                        calendar_id=calendar_id, trace_request_id=facts.trace_request_id
                    ),
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    retry_policy=FETCH_RETRY,
                )
            except ActivityError as exc:
                workflow.logger.warning(
                    "owner calendar not fetched",
                    extra={"calendar_id": calendar_id, "error": str(exc.cause or exc)},
                )
                self._calendars[calendar_id] = OwnerCalendar(
                    calendar_id=calendar_id, fetched_at=workflow.now(), failed=True
                )
                continue
            self._calendars[calendar_id] = OwnerCalendar(
                calendar_id=calendar_id, fetched_at=workflow.now(), spec=spec
            )

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
                    calendar=calendar_of(item, self._calendars),
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
            open_items = [i.item_id for i in facts.items if i.status not in RESOLVED_ITEM_STATUSES]
        return EscalationWorkflowState(
            escalation_id=self._input.escalation_id,
            version=facts.version if facts else 0,
            status=facts.status if facts else None,
            open_items=open_items,
            rca_present=facts.rca_present if facts else False,
            chases=sorted(self._chases.values(), key=lambda c: c.item_id),
            sent_event_ids=list(self._sent),
            approval=self._approval,
            calendars=sorted(self._calendars.values(), key=lambda c: c.calendar_id),
            runs=self._runs,
        )

    def _upsert_search_attributes(self) -> None:
        if self._facts is None:
            return
        workflow.upsert_search_attributes(
            [REQUEST_TEAM.value_set(self._facts.team), REQUEST_STATUS.value_set(self._facts.status)]
        )
