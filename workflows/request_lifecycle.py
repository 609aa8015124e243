"""`RequestLifecycleWorkflow`: one per request, fed by the intake outbox, ends when it closes.

The intake service signal-with-starts it (workflow id `request-<id>`) for every change of the
request. It tracks the status, ignores repeated events (the outbox delivers at least once), keeps
the search attributes current so `temporal workflow list --query` finds requests by team, status
and priority, and returns once the request is closed. Later slices hang SLA clocks off it.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import (
        REQUEST_EVENT_SIGNAL,
        REQUEST_LIFECYCLE_WORKFLOW,
        REQUEST_STATE_QUERY,
        RequestEventSignal,
        RequestLifecycleCarry,
        RequestLifecycleInput,
        RequestLifecycleState,
    )
    from workflows.search_attributes import REQUEST_PRIORITY, REQUEST_STATUS, REQUEST_TEAM

TERMINAL_STATUS = "closed"
# Event ids remembered for dedup. Redeliveries come soon after the original (an outbox retry), so a
# bounded window suffices; the version check catches anything older.
DEDUP_WINDOW = 1000


@workflow.defn(name=REQUEST_LIFECYCLE_WORKFLOW)
class RequestLifecycleWorkflow:
    """Follows one request from filing to closing."""

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

    @workflow.run
    async def run(self, input: RequestLifecycleInput) -> RequestLifecycleState:
        """Wait for the request to close (continuing as new when history grows long)."""
        self._upsert_search_attributes()
        await workflow.wait_condition(
            lambda: (
                self._status == TERMINAL_STATUS or workflow.info().is_continue_as_new_suggested()
            )
        )
        # Let signal handlers already started finish, so no accepted event is dropped.
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._status != TERMINAL_STATUS:
            workflow.continue_as_new(
                RequestLifecycleInput(
                    request_id=input.request_id,
                    team=input.team,
                    request_type=input.request_type,
                    priority=self._priority,
                    status=self._status,
                    carry=RequestLifecycleCarry(
                        seen_event_ids=list(self._seen),
                        events_seen=self._events_seen,
                        last_event_id=self._last_event_id,
                        version=self._version,
                    ),
                )
            )
        workflow.logger.info("request closed", extra={"request_id": input.request_id})
        return self._state()

    @workflow.signal(name=REQUEST_EVENT_SIGNAL)
    def request_event(self, event: RequestEventSignal) -> None:
        """Apply one change of the request; a repeated or stale event is ignored."""
        if event.event_id in self._seen_set:
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
        if changed:
            self._upsert_search_attributes()

    @workflow.query(name=REQUEST_STATE_QUERY)
    def state(self) -> RequestLifecycleState:
        """The request as the workflow knows it."""
        return self._state()

    def _state(self) -> RequestLifecycleState:
        return RequestLifecycleState(
            request_id=self._input.request_id,
            status=self._status,
            priority=self._priority,
            events_seen=self._events_seen,
            last_event_id=self._last_event_id,
            version=self._version,
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
