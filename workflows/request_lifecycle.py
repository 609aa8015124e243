"""`RequestLifecycleWorkflow`: one per request, fed by the intake outbox, ends when it closes.

The intake service signal-with-starts it (workflow id `request-<id>`) for every change of the
request. It tracks the status, ignores repeated events (the outbox delivers at least once), keeps
the search attributes current so `temporal workflow list --query` finds requests by team, status
and priority, and returns once the request is closed.

It also runs the request's two SLA clocks (`workflows.sla_clock`): the policy comes from the
gateway (`resolve_sla_policy`); the workflow sleeps until the earliest warning/breach or the next
event, raises each warning and breach once (`publish_sla_event`, deterministic event ids), keeps
the request's SLA columns current (`record_sla`), publishes `request.status_changed` for every
transition, and closes a resolved request when the policy's auto-close window passes
(`auto_close_request`). Before a breach it catches up on the request's events that intake holds
but no signal brought yet (`fetch_request_events`): a late signal cannot fake a breach. A failing
activity is retried a bounded number of times and logged: it never stops the clocks. History
stays bounded: it continues as new when Temporal suggests it, carrying the clocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import TypeAdapter, ValidationError

    from services.common.business_time import (
        CalendarError,
        format_duration,
        parse_business_duration,
    )
    from workflows.catch_up_contracts import (
        ACTIVITY_FETCH_REQUEST_EVENTS,
        FetchedRequestEvents,
        FetchRequestEventsInput,
    )
    from workflows.contracts import (
        FIRST_RESPONSE_EVENT_KIND,
        REQUEST_EVENT_SIGNAL,
        REQUEST_LIFECYCLE_WORKFLOW,
        REQUEST_SLA_QUERY,
        REQUEST_STATE_QUERY,
        AutoCloseRequestInput,
        PublishSlaEventInput,
        RecordSlaInput,
        RequestEventSignal,
        RequestLifecycleCarry,
        RequestLifecycleInput,
        RequestLifecycleState,
        ResolveSlaPolicyInput,
        SlaCarry,
        SlaClockReport,
        SlaPolicy,
        SlaReport,
    )
    from workflows.metrics import SLA_BREACHES
    from workflows.search_attributes import REQUEST_PRIORITY, REQUEST_STATUS, REQUEST_TEAM
    from workflows.service_api import ServiceApi
    from workflows.sla_clock import BREACH, FIRST_RESPONSE, RESOLUTION, Alarm, Clock

T = TypeVar("T")
P = ParamSpec("P")

TERMINAL_STATUS = "closed"
RESOLVED_STATUS = "resolved"
TRIAGE_ACTION = "triage"
TRANSITIONED_KIND = "transitioned"
# Event ids remembered for dedup. Redeliveries come soon after the original (an outbox retry), so a
# bounded window suffices; the version check catches anything older.
DEDUP_WINDOW = 1000
# `workflow.patched` id of the SLA slice: histories recorded before it replay the old loop.
SLA_PATCH = "sla-clocks-v1"
# ...and of recording each stopped clock's business time (the stats read it): histories recorded
# before it replay the record calls without those fields, so they schedule nothing new.
STATS_PATCH = "sla-stopped-durations-v1"
# ...and of catching up from intake before a breach (histories recorded before it raised breaches
# without asking intake; they replay that way).
CATCH_UP_PATCH = "sla-breach-catch-up-v1"

ACTIVITY_TIMEOUT = timedelta(seconds=10)
# Calls the loop waits for (policy, record, auto-close) retry briefly, so a service that is down
# never holds the clocks; the workflow itself tries them again later (RETRY_LATER_*).
CALL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=4),
    maximum_attempts=3,
)
# Events are published in the background (the loop does not wait), so they retry for longer.
PUBLISH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
)
# The catch-up before a breach retries briefly; if intake stays unreachable the due alarms are
# held and the catch-up tried again later, for at most CATCH_UP_HOLD, then the breach is raised
# anyway (late rather than lost). Each attempt gets the usual timeout: after an outage the worker
# and intake are busiest exactly when every breach timer fires (5 s let some attempts time out).
CATCH_UP_HOLD = timedelta(minutes=5)
CATCH_UP_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=2),
    maximum_attempts=4,
)
# How long a closing request waits for events still being published before it completes.
CLOSE_GRACE = timedelta(seconds=5)
# How long a request closed by a caught-up event waits for that event's own (late) signal: the
# outbox would otherwise signal-with-start a new run for it once this one completed.
LATE_SIGNAL_GRACE = timedelta(minutes=15)
# After a call gave up, the workflow tries again later (doubling, up to the cap).
RETRY_LATER_FIRST = timedelta(seconds=30)
RETRY_LATER_MAX = timedelta(minutes=30)

ACTIVITY_RESOLVE_SLA_POLICY = "resolve_sla_policy"
ACTIVITY_PUBLISH_SLA_EVENT = "publish_sla_event"
ACTIVITY_RECORD_SLA = "record_sla"
ACTIVITY_AUTO_CLOSE_REQUEST = "auto_close_request"
# Pages of intake's catch-up route read at most (a request rarely has more than a page pending).
CATCH_UP_MAX_PAGES = 10
CATCH_UP_PAGE = 200


def _unrestricted(method: Callable[P, T]) -> Callable[P, T]:
    """Run a synchronous clock computation outside the sandbox's restrictions.

    Business calendars build their public holidays lazily (`holidays`, which reads locale and
    time settings while it loads a country); that is deterministic, but the sandbox would refuse
    it. Only synchronous code is wrapped, so no other workflow code runs unrestricted.
    """

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with workflow.unsafe.sandbox_unrestricted():
            return method(*args, **kwargs)

    return wrapper


class SlaActivities:
    """The lifecycle's activities: calls to the gateway and intake through the worker's ServiceApi."""

    def __init__(self, api: ServiceApi) -> None:
        self.api = api

    @activity.defn(name=ACTIVITY_RESOLVE_SLA_POLICY)
    async def resolve_sla_policy(self, input: ResolveSlaPolicyInput) -> SlaPolicy:
        """The SLA policy of a request type and priority (gateway `POST /internal/sla/resolve`)."""
        response = await self.api.call(
            "gateway",
            "POST",
            "/internal/sla/resolve",
            json={"request_type": input.request_type, "priority": input.priority},
            request_id=input.trace_request_id,
        )
        try:
            return TypeAdapter(SlaPolicy).validate_python(response.json())
        except (ValueError, ValidationError) as exc:
            raise ApplicationError(
                f"the gateway returned an unusable policy: {exc}", non_retryable=True
            ) from exc

    @activity.defn(name=ACTIVITY_PUBLISH_SLA_EVENT)
    async def publish_sla_event(self, input: PublishSlaEventInput) -> None:
        """Hand one event to the gateway's notifications (`POST /internal/events`; a repeat is a
        no-op there, so a retried activity never notifies twice)."""
        response = await self.api.call(
            "gateway",
            "POST",
            "/internal/events",
            json=event_body(input),
            request_id=input.trace_request_id,
        )
        # 202 is the first acceptance, 200 a repeat: counting 202s counts each breach once.
        if input.type == "sla.breached" and response.status_code == 202:
            SLA_BREACHES.inc()

    @activity.defn(name=ACTIVITY_RECORD_SLA)
    async def record_sla(self, input: RecordSlaInput) -> None:
        """Write the request's SLA columns (intake `PUT /internal/requests/{id}/sla`)."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        await self.api.call(
            "intake",
            "PUT",
            f"/internal/requests/{input.request_id}/sla",
            json={
                "sla_due_at": iso(input.sla_due_at),
                "breached_at": iso(input.breached_at),
                "first_response_due_at": iso(input.first_response_due_at),
                "resolution_due_at": iso(input.resolution_due_at),
                "first_response_business_seconds": input.first_response_business_seconds,
                "first_response_stopped_at": iso(input.first_response_stopped_at),
                "resolution_business_seconds": input.resolution_business_seconds,
                "resolution_stopped_at": iso(input.resolution_stopped_at),
            },
            request_id=input.trace_request_id,
        )

    @activity.defn(name=ACTIVITY_AUTO_CLOSE_REQUEST)
    async def auto_close_request(self, input: AutoCloseRequestInput) -> int:
        """Close a resolved request as `system`; 409 (already closed, or reopened) is accepted:
        the request's own events tell the workflow what happened."""
        response = await self.api.call(
            "intake",
            "POST",
            f"/api/v1/requests/{input.request_id}/transitions",
            json={"action": "close"},
            request_id=input.trace_request_id,
            ok_statuses=frozenset({409}),
        )
        return response.status_code

    @activity.defn(name=ACTIVITY_FETCH_REQUEST_EVENTS)
    async def fetch_request_events(self, input: FetchRequestEventsInput) -> FetchedRequestEvents:
        """The request's events after `after_version` that occurred by `until`, oldest first
        (intake `GET /internal/requests/{id}/lifecycle-events`, read page by page)."""
        fetched: list[RequestEventSignal] = []
        after = input.after_version
        for _ in range(CATCH_UP_MAX_PAGES):
            response = await self.api.call(
                "intake",
                "GET",
                f"/internal/requests/{input.request_id}/lifecycle-events",
                params={"after_version": after, "limit": CATCH_UP_PAGE},
                request_id=input.trace_request_id,
            )
            try:
                page = response.json()
                items = TypeAdapter(list[RequestEventSignal]).validate_python(page["items"])
                more = bool(page["has_more"])
            except (ValueError, KeyError, TypeError, ValidationError) as exc:
                raise ApplicationError(
                    f"intake returned unusable events: {exc}", non_retryable=True
                ) from exc
            for item in items:
                # Versions and commit times rise together: the rest happened later still.
                if item.occurred_at > input.until:
                    return FetchedRequestEvents(fetched)
                fetched.append(item)
            if not more or not items:
                break
            after = items[-1].version
        return FetchedRequestEvents(fetched)

    def all(self) -> list[Callable[..., Awaitable[Any]]]:
        """Every activity of this class, for the worker."""
        return [
            self.resolve_sla_policy,
            self.publish_sla_event,
            self.record_sla,
            self.auto_close_request,
            self.fetch_request_events,
        ]


@workflow.defn(name=REQUEST_LIFECYCLE_WORKFLOW)
class RequestLifecycleWorkflow:
    """Follows one request from filing to closing, with its SLA clocks."""

    @workflow.init
    def __init__(self, input: RequestLifecycleInput) -> None:
        # Built from the input before any signal is handled: signal-with-start delivers the first
        # event in the same activation as the start.
        carry = input.carry or RequestLifecycleCarry()
        self._input = input
        self._status = input.status
        self._priority = input.priority
        self._seen: list[str] = list(carry.seen_event_ids[-DEDUP_WINDOW:])
        self._seen_set = set(self._seen)
        self._events_seen = carry.events_seen
        self._last_event_id = carry.last_event_id
        self._version = carry.version
        self._awaited: set[str] = set(carry.awaited_event_ids)
        # When a catch-up first failed while alarms are held (not carried: a successor that
        # still cannot reach intake starts its own, equally bounded, hold).
        self._held_since: datetime | None = None
        sla = carry.sla or SlaCarry()
        self._policy = sla.policy
        self._policy_priority = sla.policy_priority
        self._clocks: dict[str, Clock] = {clock.name: clock for clock in sla.clocks}
        self._first_breached_at = sla.first_breached_at
        self._pending: list[RequestEventSignal] = list(sla.pending_events)
        self._deferred: list[RequestEventSignal] = list(sla.deferred_events)
        self._clock_time = sla.clock_time
        self._resolved_at = sla.resolved_at
        self._auto_close_requested_for = sla.auto_close_requested_for
        self._trace: str | None = None
        self._recorded: RecordSlaInput | None = None
        # Per call kind: when to try again after it gave up, and the next back-off.
        self._retry_at: dict[str, datetime] = {}
        self._backoff: dict[str, timedelta] = {}
        self._publishing: set[asyncio.Task[None]] = set()
        self._publish_queue: list[PublishSlaEventInput] = []
        self._publisher: asyncio.Task[None] | None = None
        self._unpublished: dict[str, PublishSlaEventInput] = {
            event.event_id: event for event in sla.unpublished_events
        }

    @workflow.run
    async def run(self, input: RequestLifecycleInput) -> RequestLifecycleState:
        """Run the SLA clocks until the request closes (continuing as new when history grows)."""
        self._upsert_search_attributes()
        if not workflow.patched(SLA_PATCH):
            return await self._run_without_sla(input)
        for event in list(self._unpublished.values()):
            await self._publish(event)
        while True:
            await self._apply_pending()
            if self._status == TERMINAL_STATUS and not self._pending:
                break
            await self._ensure_policy()
            await self._raise_due_alarms()
            await self._record()
            await self._auto_close_if_due()
            # A catch-up may have applied the closing event: its late signal is only a repeat.
            if self._pending or self._status == TERMINAL_STATUS:
                continue
            if workflow.info().is_continue_as_new_suggested():
                # Events still publishing are carried over and sent again by the successor.
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not self._pending:
                    workflow.continue_as_new(self._successor_input(input))
            wake = self._next_wakeup()
            timeout = None if wake is None else max(wake - workflow.now(), timedelta(0))
            if timeout is not None and timeout <= timedelta(0):
                continue
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: bool(self._pending) or workflow.info().is_continue_as_new_suggested(),
                    timeout=timeout,
                )
        await self._record()
        if self._awaited:
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: not self._awaited, timeout=LATE_SIGNAL_GRACE)
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: not self._publishing, timeout=CLOSE_GRACE)
        workflow.logger.info("request closed", extra={"request_id": input.request_id})
        return self._state()

    async def _run_without_sla(self, input: RequestLifecycleInput) -> RequestLifecycleState:
        # The loop of runs started before SLA clocks existed (kept so their histories replay).
        await workflow.wait_condition(
            lambda: (
                self._status == TERMINAL_STATUS or workflow.info().is_continue_as_new_suggested()
            )
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._status != TERMINAL_STATUS:
            # The successor runs the clocks from its start, from the request's status then: the
            # events of this run are not replayed on them (their times predate any policy).
            self._pending.clear()
            workflow.continue_as_new(self._successor_input(input))
        return self._state()

    @workflow.signal(name=REQUEST_EVENT_SIGNAL)
    def request_event(self, event: RequestEventSignal) -> None:
        """Apply one change of the request; a repeated or stale event is ignored."""
        if event.event_id in self._seen_set:
            self._awaited.discard(event.event_id)
            return
        self._remember(event.event_id)
        self._events_seen += 1
        self._last_event_id = event.event_id
        if event.version and event.version <= self._version:
            return
        self._version = max(self._version, event.version)
        changed = (event.to_status, event.priority) != (self._status, self._priority)
        self._status = event.to_status
        self._priority = event.priority
        if event.trace_request_id:
            self._trace = event.trace_request_id
        # The clocks and notifications are driven from the run loop (they need activities).
        self._pending.append(event)
        if changed:
            self._upsert_search_attributes()

    @workflow.query(name=REQUEST_STATE_QUERY)
    def state(self) -> RequestLifecycleState:
        """The request as the workflow knows it."""
        return self._state()

    @workflow.query(name=REQUEST_SLA_QUERY)
    @_unrestricted
    def sla(self) -> SlaReport:
        """Each SLA clock computed now: state, target, elapsed, remaining, due, breach, warnings."""
        now = workflow.now()
        policy = self._policy
        clocks = [
            self._report(self._clocks[name], now)
            if name in self._clocks
            else SlaClockReport(name=name, state="pending")
            for name in (FIRST_RESPONSE, RESOLUTION)
        ]
        return SlaReport(
            request_id=self._input.request_id,
            computed_at=now,
            policy_id=policy.policy_id if policy else None,
            policy_name=policy.policy_name if policy else None,
            calendar_id=policy.calendar_id if policy else None,
            clocks=clocks,
        )

    # --- events ------------------------------------------------------------------------------

    async def _apply_pending(self) -> None:
        while self._pending:
            await self._apply_event(self._pending.pop(0))

    async def _apply_event(self, event: RequestEventSignal) -> None:
        """Apply one event: publish its status change, then move the clocks."""
        if event.kind == TRANSITIONED_KIND and event.from_status != event.to_status:
            await self._publish(
                PublishSlaEventInput(
                    event_id=event.event_id,
                    type="request.status_changed",
                    team=self._input.team,
                    occurred_at=event.occurred_at,
                    request_id=self._input.request_id,
                    data={
                        "request_id": self._input.request_id,
                        "from_status": event.from_status,
                        "to_status": event.to_status,
                        "action": event.action,
                        "actor": event.actor,
                    },
                    trace_request_id=event.trace_request_id,
                )
            )
        if self._clocks:
            await self._apply_to_clocks(event)
        elif self._policy is None:
            # No policy yet (the gateway did not answer): replay on the clocks once it does.
            self._deferred.append(event)

    async def _apply_to_clocks(self, event: RequestEventSignal) -> None:
        at = self._clock_instant(event.occurred_at)
        if event.priority != self._policy_priority:
            await self._retarget(event.priority, at)
        self._apply_status(event, at)

    @_unrestricted
    def _apply_status(self, event: RequestEventSignal, at: datetime) -> None:
        first, resolution = self._clocks[FIRST_RESPONSE], self._clocks[RESOLUTION]
        if event.action == TRIAGE_ACTION or event.kind == FIRST_RESPONSE_EVENT_KIND:
            first.stop(at)
        to_status = event.to_status
        if to_status in (TERMINAL_STATUS, RESOLVED_STATUS):
            first.stop(at)
            resolution.stop(at)
        else:
            if event.from_status == RESOLVED_STATUS:
                resolution.resume_after_reopen(at)
            pausing = self._policy is not None and to_status in self._policy.pause_statuses
            for clock in (first, resolution):
                if pausing:
                    clock.pause(at)
                else:
                    clock.resume(at)
        if to_status == RESOLVED_STATUS:
            self._resolved_at = self._resolved_at or at
        else:
            self._resolved_at = None

    def _clock_instant(self, occurred_at: datetime) -> datetime:
        # The event's own time (the outbox may deliver it a little later), never before an instant
        # already applied and never in the workflow's future.
        at = min(occurred_at, workflow.now())
        if self._clock_time is not None and at < self._clock_time:
            at = self._clock_time
        self._clock_time = at
        return at

    # --- policy ------------------------------------------------------------------------------

    async def _ensure_policy(self) -> None:
        if self._policy is None:
            priority = self._deferred[0].priority if self._deferred else self._priority
            policy = await self._resolve(priority)
            if policy is None:
                return
            start = self._input.created_at or (
                self._deferred[0].occurred_at if self._deferred else workflow.now()
            )
            start = min(start, workflow.now())
            try:
                self._clocks = self._new_clocks(policy, start)
            except (CalendarError, ValueError) as exc:
                workflow.logger.error("unusable SLA policy", extra={"error": str(exc)})
                self._schedule_retry("resolve")
                return
            self._policy, self._policy_priority = policy, priority
            self._clock_time = start
            deferred, self._deferred = self._deferred, []
            if not deferred and self._status != "new":
                # No event to replay (a run continued from one without clocks): start from the
                # request's current status.
                self._apply_status(
                    RequestEventSignal(
                        event_id="",
                        request_id=self._input.request_id,
                        kind=FIRST_RESPONSE_EVENT_KIND,
                        action=None,
                        from_status=self._status,
                        to_status=self._status,
                        priority=priority,
                        actor="system",
                        occurred_at=start,
                    ),
                    start,
                )
            for event in deferred:
                await self._apply_to_clocks(event)
        elif self._policy_priority != self._priority:
            # A re-target that failed earlier: try again, from now.
            await self._retarget(self._priority, self._clock_instant(workflow.now()))
        else:
            self._retry_at.pop("resolve", None)

    async def _resolve(self, priority: str) -> SlaPolicy | None:
        if not self._due("resolve"):
            return None
        ok, policy = await self._call(
            ACTIVITY_RESOLVE_SLA_POLICY,
            ResolveSlaPolicyInput(
                request_id=self._input.request_id,
                request_type=self._input.request_type,
                priority=priority,
                trace_request_id=self._trace,
            ),
            kind="resolve",
            result_type=SlaPolicy,
        )
        return policy if ok else None

    async def _retarget(self, priority: str, at: datetime) -> None:
        policy = await self._resolve(priority)
        if policy is not None:
            self._retarget_clocks(policy, priority, at)

    @_unrestricted
    def _retarget_clocks(self, policy: SlaPolicy, priority: str, at: datetime) -> None:
        try:
            targets = _targets(policy)
            for clock in self._clocks.values():
                # The calendar is validated before a clock changes, so none or all re-target.
                clock.retarget(
                    target=targets[clock.name],
                    calendar=policy.calendar,
                    thresholds=policy.warning_thresholds,
                    at=at,
                )
        except (CalendarError, ValueError) as exc:
            workflow.logger.error("unusable SLA policy", extra={"error": str(exc)})
            self._schedule_retry("resolve")
            return
        self._policy, self._policy_priority = policy, priority
        # A paused clock stays paused only if the new policy pauses in this status too.
        for clock in self._clocks.values():
            if self._status in policy.pause_statuses:
                clock.pause(at)
            else:
                clock.resume(at)

    @staticmethod
    @_unrestricted
    def _new_clocks(policy: SlaPolicy, start: datetime) -> dict[str, Clock]:
        targets = _targets(policy)
        return {
            name: Clock.start(
                name=name,
                target=targets[name],
                calendar=policy.calendar,
                thresholds=policy.warning_thresholds,
                at=start,
            )
            for name in (FIRST_RESPONSE, RESOLUTION)
        }

    # --- alarms, record, auto-close ---------------------------------------------------------

    async def _raise_due_alarms(self) -> None:
        # Checked first so runs recorded before the catch-up replay without its marker.
        if self._breach_due() and workflow.patched(CATCH_UP_PATCH):
            if not await self._catch_up():
                return  # held until intake answers (or the hold ends)
        else:
            self._end_hold()
        for event in self._take_due_alarms():
            await self._publish(event)

    @_unrestricted
    def _breach_due(self) -> bool:
        now = workflow.now()
        return any(
            alarm.kind == BREACH
            for clock in self._clocks.values()
            for alarm in clock.due_alarms(now)
        )

    async def _catch_up(self) -> bool:
        """Before a breach: apply the request's events intake holds but no signal brought yet.

        The outbox delivers signals late when Temporal or the dispatcher lags, and a breach timer
        firing first would report a request triaged in time as breached. So the events after the
        last version applied that occurred by now are read from intake (the source of truth) and
        handled exactly as their signals would be (the real signal, arriving later, is a repeat
        and ignored). Events and due alarms are then taken in time order: an alarm falls before
        an event only if its instant is strictly earlier, so a stop at the deadline is on time,
        and a triage after the deadline still leaves its breach. Warnings due in the same batch
        get the same treatment; warnings alone do not pay for a call.

        If intake cannot answer within a short retry, the due alarms are held and the catch-up
        tried again later (the usual retry-later back-off), for at most CATCH_UP_HOLD; then the
        breach is raised without it: late rather than lost. Holding rather than raising at once
        because intake down usually means its outbox is down too, so signals are the most likely
        to be missing exactly then. Returns False while the alarms are held.
        """
        if not self._due("catch_up"):
            return False
        now = workflow.now()
        ok, fetched = await self._call(
            ACTIVITY_FETCH_REQUEST_EVENTS,
            FetchRequestEventsInput(
                request_id=self._input.request_id,
                after_version=self._version,
                until=now,
                trace_request_id=self._trace,
            ),
            kind=None,
            result_type=FetchedRequestEvents,
            retry=CATCH_UP_RETRY,
        )
        if not ok or fetched is None:
            self._held_since = self._held_since or now
            if now < self._held_since + CATCH_UP_HOLD:
                self._schedule_retry("catch_up")
                self._retry_at["catch_up"] = min(
                    self._retry_at["catch_up"], self._held_since + CATCH_UP_HOLD
                )
                workflow.logger.warning(
                    "SLA catch-up failed: holding the due alarms",
                    extra={"request_id": self._input.request_id},
                )
                return False
            workflow.logger.error(
                "SLA catch-up failed past its hold: raising the due alarms without it",
                extra={"request_id": self._input.request_id},
            )
            self._end_hold()
            return True
        self._end_hold()
        for event in fetched.events:
            if event.occurred_at <= now and event.event_id not in self._seen_set:
                self.request_event(event)
                # Its own signal is still on the way (and will be ignored as a repeat).
                self._awaited.add(event.event_id)
        while self._pending:
            event = self._pending[0]
            for alarm_event in self._take_due_alarms(before=self._next_clock_instant(event)):
                await self._publish(alarm_event)
            self._pending.pop(0)
            await self._apply_event(event)
        return True

    def _end_hold(self) -> None:
        self._held_since = None
        self._retry_at.pop("catch_up", None)
        self._backoff.pop("catch_up", None)

    def _next_clock_instant(self, event: RequestEventSignal) -> datetime:
        # What `_clock_instant` will give the event, without moving the clock time yet.
        at = min(event.occurred_at, workflow.now())
        return max(at, self._clock_time) if self._clock_time is not None else at

    @_unrestricted
    def _take_due_alarms(self, *, before: datetime | None = None) -> list[PublishSlaEventInput]:
        """Mark every alarm due now (or strictly before `before`) as raised; the events to
        publish for them, in order."""
        now = workflow.now()
        events = []
        for clock in self._clocks.values():
            for alarm in clock.due_alarms(now):
                if before is not None and alarm.at >= before:
                    break
                clock.mark_raised(alarm)
                if alarm.kind == BREACH:
                    self._first_breached_at = self._first_breached_at or alarm.at
                events.append(self._alarm_event(clock, alarm))
        return events

    def _alarm_event(self, clock: Clock, alarm: Alarm) -> PublishSlaEventInput:
        request_id = self._input.request_id
        due = clock.due_at()
        prefix = f"request-{request_id}:{clock.name}"
        if alarm.kind == BREACH:
            return PublishSlaEventInput(
                event_id=f"{prefix}:breached:{clock.generation}",
                type="sla.breached",
                team=self._input.team,
                occurred_at=alarm.at,
                request_id=request_id,
                data={
                    "request_id": request_id,
                    "clock": clock.name,
                    "due_at": _iso(due),
                    "breached_at": _iso(clock.breached_at or alarm.at),
                },
                trace_request_id=self._trace,
            )
        return PublishSlaEventInput(
            event_id=f"{prefix}:warning:{alarm.threshold}:{clock.generation}",
            type="sla.warning",
            team=self._input.team,
            occurred_at=alarm.at,
            request_id=request_id,
            data={
                "request_id": request_id,
                "clock": clock.name,
                "threshold": alarm.threshold,
                "due_at": _iso(due),
                "elapsed_seconds": clock.elapsed(alarm.at).total_seconds(),
                "target_seconds": clock.target.total_seconds(),
            },
            trace_request_id=self._trace,
        )

    async def _record(self) -> None:
        if not self._clocks or not self._due("record"):
            return
        record = self._record_input(with_durations=workflow.patched(STATS_PATCH))
        if record == self._recorded:
            self._retry_at.pop("record", None)
            return
        ok, _ = await self._call(ACTIVITY_RECORD_SLA, record, kind="record")
        if ok:
            self._recorded = record

    @_unrestricted
    def _record_input(self, *, with_durations: bool = True) -> RecordSlaInput:
        dues = [clock.due_at() for clock in self._clocks.values() if clock.running]
        record = RecordSlaInput(
            request_id=self._input.request_id,
            sla_due_at=min((due for due in dues if due is not None), default=None),
            breached_at=self._first_breached_at,
            first_response_due_at=self._clocks[FIRST_RESPONSE].due_at(),
            resolution_due_at=self._clocks[RESOLUTION].due_at(),
            trace_request_id=self._trace,
        )
        if with_durations:
            first, resolution = self._clocks[FIRST_RESPONSE], self._clocks[RESOLUTION]
            # A stopped clock's worked time is frozen at its stop: the duration the stats want.
            if first.stopped_at is not None:
                record.first_response_stopped_at = first.stopped_at
                record.first_response_business_seconds = first.elapsed(
                    first.stopped_at
                ).total_seconds()
            if resolution.stopped_at is not None:
                record.resolution_stopped_at = resolution.stopped_at
                record.resolution_business_seconds = resolution.elapsed(
                    resolution.stopped_at
                ).total_seconds()
        return record

    async def _auto_close_if_due(self) -> None:
        deadline = self._auto_close_deadline()
        if deadline is None or workflow.now() < deadline or not self._due("auto_close"):
            return
        ok, _ = await self._call(
            ACTIVITY_AUTO_CLOSE_REQUEST,
            AutoCloseRequestInput(request_id=self._input.request_id, trace_request_id=self._trace),
            kind="auto_close",
        )
        if ok:
            self._auto_close_requested_for = self._resolved_at

    def _auto_close_deadline(self) -> datetime | None:
        policy = self._policy
        if (
            self._status != RESOLVED_STATUS
            or policy is None
            or not policy.auto_close_after
            or self._resolved_at is None
            or self._auto_close_requested_for == self._resolved_at
        ):
            return None
        try:
            window = parse_business_duration(policy.auto_close_after)
        except CalendarError:
            return None
        # Wall-clock time, not business time: "closed after 72 hours without a reopen".
        return self._resolved_at + window

    @_unrestricted
    def _next_wakeup(self) -> datetime | None:
        # Only retries still needed count: a stale one would wake the loop for nothing, forever.
        candidates: list[datetime] = []
        if "record" in self._retry_at:
            candidates.append(self._retry_at["record"])
        if "resolve" in self._retry_at and (
            self._policy is None or self._policy_priority != self._priority
        ):
            candidates.append(self._retry_at["resolve"])
        # Alarms held for a catch-up wake the loop at the catch-up's next try, not at once.
        holding = "catch_up" in self._retry_at
        if holding:
            candidates.append(self._retry_at["catch_up"])
        now = workflow.now()
        for clock in self._clocks.values():
            alarm = clock.next_alarm()
            if alarm is not None and not (holding and alarm.at <= now):
                candidates.append(alarm.at)
        deadline = self._auto_close_deadline()
        if deadline is not None:
            candidates.append(max(deadline, self._retry_at.get("auto_close", deadline)))
        return min(candidates, default=None)

    # --- activity calls ------------------------------------------------------------------

    async def _publish(self, event: PublishSlaEventInput) -> None:
        """Publish in the background, in order: a slow or down gateway never holds the clocks.

        One sender drains a queue, so events reach the gateway (and so each subscriber) in the
        order the workflow raised them, even when several alarms fall due at once after an outage.
        """
        self._unpublished[event.event_id] = event
        self._publish_queue.append(event)
        if self._publisher is None or self._publisher.done():
            task = asyncio.create_task(self._drain_publish_queue())
            self._publisher = task
            self._publishing.add(task)
            task.add_done_callback(self._publishing.discard)

    async def _drain_publish_queue(self) -> None:
        while self._publish_queue:
            event = self._publish_queue.pop(0)
            ok, _ = await self._call(
                ACTIVITY_PUBLISH_SLA_EVENT, event, kind=None, retry=PUBLISH_RETRY
            )
            self._unpublished.pop(event.event_id, None)
            if not ok:
                workflow.logger.error("event not published", extra={"event_id": event.event_id})

    async def _call(
        self,
        name: str,
        arg: Any,
        *,
        kind: str | None,
        result_type: type[T] | None = None,
        retry: RetryPolicy = CALL_RETRY,
    ) -> tuple[bool, T | None]:
        try:
            result = await workflow.execute_activity(
                name,
                arg,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=retry,
                result_type=result_type,
            )
        except ActivityError as exc:
            workflow.logger.warning(
                "activity gave up", extra={"activity": name, "error": str(exc.cause or exc)}
            )
            if kind is not None:
                self._schedule_retry(kind)
            return False, None
        if kind is None:
            return True, result
        self._retry_at.pop(kind, None)
        self._backoff.pop(kind, None)
        return True, result

    def _schedule_retry(self, kind: str) -> None:
        backoff = self._backoff.get(kind, RETRY_LATER_FIRST)
        self._retry_at[kind] = workflow.now() + backoff
        self._backoff[kind] = min(backoff * 2, RETRY_LATER_MAX)

    def _due(self, kind: str) -> bool:
        retry_at = self._retry_at.get(kind)
        return retry_at is None or workflow.now() >= retry_at

    # --- state -------------------------------------------------------------------------------

    def _successor_input(self, input: RequestLifecycleInput) -> RequestLifecycleInput:
        return RequestLifecycleInput(
            request_id=input.request_id,
            team=input.team,
            request_type=input.request_type,
            priority=self._priority,
            status=self._status,
            created_at=input.created_at,
            carry=RequestLifecycleCarry(
                seen_event_ids=list(self._seen),
                events_seen=self._events_seen,
                last_event_id=self._last_event_id,
                version=self._version,
                awaited_event_ids=sorted(self._awaited),
                sla=SlaCarry(
                    policy=self._policy,
                    policy_priority=self._policy_priority,
                    clocks=list(self._clocks.values()),
                    first_breached_at=self._first_breached_at,
                    pending_events=list(self._pending),
                    deferred_events=list(self._deferred),
                    unpublished_events=list(self._unpublished.values()),
                    clock_time=self._clock_time,
                    resolved_at=self._resolved_at,
                    auto_close_requested_for=self._auto_close_requested_for,
                ),
            ),
        )

    def _state(self) -> RequestLifecycleState:
        return RequestLifecycleState(
            request_id=self._input.request_id,
            status=self._status,
            priority=self._priority,
            events_seen=self._events_seen,
            last_event_id=self._last_event_id,
            version=self._version,
        )

    @staticmethod
    def _report(clock: Clock, now: datetime) -> SlaClockReport:
        worked = clock.elapsed(now)
        remaining = max(clock.target - worked, timedelta(0))
        return SlaClockReport(
            name=clock.name,
            state=clock.state().value,
            target=format_duration(clock.target),
            target_seconds=clock.target.total_seconds(),
            elapsed=format_duration(worked),
            elapsed_seconds=worked.total_seconds(),
            remaining=format_duration(remaining),
            remaining_seconds=remaining.total_seconds(),
            due_at=clock.due_at(),
            breached_at=clock.breached_at,
            warnings_sent=list(clock.warnings_sent),
            paused_since=clock.paused_since,
            stopped_at=clock.stopped_at,
            generation=clock.generation,
        )

    def _remember(self, event_id: str) -> None:
        self._seen.append(event_id)
        self._seen_set.add(event_id)
        if len(self._seen) > DEDUP_WINDOW:
            self._seen_set.discard(self._seen.pop(0))

    def _upsert_search_attributes(self) -> None:
        workflow.upsert_search_attributes(
            [
                REQUEST_TEAM.value_set(self._input.team),
                REQUEST_STATUS.value_set(self._status),
                REQUEST_PRIORITY.value_set(self._priority),
            ]
        )


def event_body(event: PublishSlaEventInput) -> dict[str, Any]:
    """The JSON body of `POST /internal/events` on the gateway for one event."""
    return {
        "event_id": event.event_id,
        "type": event.type,
        "team": event.team,
        "occurred_at": event.occurred_at.isoformat(),
        "subject": {"kind": "request", "id": str(event.request_id)},
        "data": event.data,
    }


def _targets(policy: SlaPolicy) -> dict[str, timedelta]:
    return {
        FIRST_RESPONSE: parse_business_duration(policy.first_response_target),
        RESOLUTION: parse_business_duration(policy.resolution_target),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
