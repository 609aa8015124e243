"""EscalationWorkflow on the real dev server: reminders, the overdue ladder (in order, once each,
not twice across a worker restart nor across continue-as-new), episodes when the due date moves,
quiet hours (the item's calendar or the owner's fetched one), stale facts.

The gateway calls are captured by test activities registered under the real names
`publish_escalation_event` and `fetch_owner_calendar`, so every notification the workflow sends and
every calendar it fetches is counted (the real gateway would also drop a repeated event id;
counting here proves the workflow never repeats one). The real activities against the real gateway
are exercised by tests/service/test_escalation_owner_calendars.py.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from services.common.temporal import connect_temporal
from workflows.contracts import (
    ESCALATION_FACTS_SIGNAL,
    ESCALATION_WORKFLOW,
    ActionItemFacts,
    EscalationFacts,
    EscalationFollowUp,
    EscalationWorkflowInput,
    EscalationWorkflowState,
    FetchOwnerCalendarInput,
    PublishEscalationEventInput,
    escalation_workflow_id,
)
from workflows.escalation import (
    ACTIVITY_FETCH_OWNER_CALENDAR,
    ACTIVITY_PUBLISH_ESCALATION_EVENT,
    EscalationWorkflow,
)
from workflows.sandbox import workflow_runner

T = TypeVar("T")
ALWAYS_OPEN = {"timezone": "UTC", "always_open": True}


async def eventually(
    probe: Callable[[], Awaitable[T]], check: Callable[[T], bool], *, within: float = 30
) -> T:
    """Poll `probe` until `check` holds (timers and activities are asynchronous; CPU is shared)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await probe()
        if check(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition never held; last value {value!r}")
        await asyncio.sleep(0.1)


@dataclass
class Published:
    """Every call of the captured activity, with its arrival time (monotonic)."""

    events: list[tuple[float, PublishEscalationEventInput]] = field(default_factory=list)

    @activity.defn(name=ACTIVITY_PUBLISH_ESCALATION_EVENT)
    async def publish_escalation_event(self, input: PublishEscalationEventInput) -> None:
        self.events.append((time.monotonic(), input))

    def ids(self) -> list[str]:
        return [e.event_id for _, e in self.events]

    async def ids_async(self) -> list[str]:
        return self.ids()


@dataclass
class OwnerCalendars:
    """The gateway's calendars as the workflow fetches them, with every fetch counted."""

    specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    @activity.defn(name=ACTIVITY_FETCH_OWNER_CALENDAR)
    async def fetch_owner_calendar(self, input: FetchOwnerCalendarInput) -> dict[str, Any] | None:
        self.calls.append(input.calendar_id)
        return self.specs.get(input.calendar_id)


@pytest.fixture
async def client(temporal_address: str) -> Client:
    return await connect_temporal(temporal_address, "default")


@dataclass
class Harness:
    client: Client
    task_queue: str
    published: Published
    calendars: OwnerCalendars = field(default_factory=OwnerCalendars)
    escalation_id: int = field(default_factory=lambda: random.randint(10**9, 2 * 10**9))
    version: int = 0

    def worker(self) -> Worker:
        return Worker(
            self.client,
            task_queue=self.task_queue,
            workflows=[EscalationWorkflow],
            activities=[
                self.published.publish_escalation_event,
                self.calendars.fetch_owner_calendar,
            ],
            graceful_shutdown_timeout=timedelta(seconds=2),
            workflow_runner=workflow_runner(),
        )

    def facts(
        self,
        items: list[ActionItemFacts],
        *,
        follow_up: EscalationFollowUp,
        status: str = "actions_open",
    ) -> EscalationFacts:
        self.version += 1
        return EscalationFacts(
            event_id=str(uuid.uuid4()),
            escalation_id=self.escalation_id,
            version=self.version,
            status=status,
            source="sev2_ticket",
            severity="sev2",
            team="buyer-risk",
            title="Gift-card wave",
            owner="analyst-1",
            program_manager="pm-1",
            rca_present=False,
            items=items,
            follow_up=follow_up,
            occurred_at=datetime.now(UTC),
        )

    async def send(
        self, facts: EscalationFacts
    ) -> WorkflowHandle[EscalationWorkflow, EscalationWorkflowState]:
        """Signal-with-start, exactly as the escalation outbox does."""
        handle: WorkflowHandle[
            EscalationWorkflow, EscalationWorkflowState
        ] = await self.client.start_workflow(
            ESCALATION_WORKFLOW,
            EscalationWorkflowInput(escalation_id=self.escalation_id, team="buyer-risk"),
            id=escalation_workflow_id(self.escalation_id),
            task_queue=self.task_queue,
            start_signal=ESCALATION_FACTS_SIGNAL,
            start_signal_args=[facts],
            result_type=EscalationWorkflowState,
        )
        return handle

    def prefix(self, item_id: int) -> str:
        return f"escalation-{self.escalation_id}:item-{item_id}"


@pytest.fixture
async def harness(client: Client) -> AsyncIterator[Harness]:
    return Harness(client=client, task_queue=f"esc-{uuid.uuid4().hex[:10]}", published=Published())


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[None]:
    async with worker:
        yield


def item(item_id: int, due_in: float, **kw: object) -> ActionItemFacts:
    values: dict[str, object] = {
        "item_id": item_id,
        "title": f"item {item_id}",
        "owner": "owner-1",
        "owner_manager": "manager-1",
        "due_at": datetime.now(UTC) + timedelta(seconds=due_in),
        "status": "open",
        "calendar": ALWAYS_OPEN,
        **kw,
    }
    return ActionItemFacts(**values)  # type: ignore[arg-type]


async def test_ladder_climbs_in_order_once_each_across_a_worker_restart(harness: Harness) -> None:
    follow_up = EscalationFollowUp(
        reminder_lead_seconds=2, ladder_delay_seconds=3, ladder_repeats=1
    )
    due_item = item(1, due_in=4)
    p = harness.prefix(1)
    expected = [
        f"{p}:reminder:1",
        f"{p}:ladder:owner:1",
        f"{p}:ladder:owner_manager:1",
        f"{p}:ladder:program_manager:1",
        f"{p}:ladder:program_manager:1:repeat-1",
    ]
    async with running(harness.worker()):
        handle = await harness.send(harness.facts([due_item], follow_up=follow_up))
        await eventually(harness.published.ids_async, lambda ids: len(ids) >= 2)
    # The worker is gone while the manager's level falls due; a new worker replays the history.
    await asyncio.sleep(3.5)
    assert harness.published.ids() == expected[:2]
    async with running(harness.worker()):
        await eventually(harness.published.ids_async, lambda ids: len(ids) >= 5, within=40)
        await asyncio.sleep(1.5)  # nothing more comes (a replay would resend)
        state = await handle.query(EscalationWorkflow.state)

    assert harness.published.ids() == expected
    events = [e for _, e in harness.published.events]
    assert [e.type for e in events] == ["escalation.reminder"] + ["escalation.overdue"] * 4
    assert [e.data["recipient"] for e in events] == [
        "owner-1",
        "owner-1",
        "manager-1",
        "pm-1",
        "pm-1",
    ]
    due = due_item.due_at
    # Each level no earlier than its time: due, due + delay, due + 2 * delay, due + 3 * delay.
    for index, event in enumerate(events[1:]):
        assert event.occurred_at >= due + timedelta(seconds=3 * index)
    assert events[0].occurred_at >= due - timedelta(seconds=2)
    assert events[0].occurred_at < due
    chase = state.chases[0]
    assert chase.levels_sent == ["owner", "owner_manager", "program_manager"]
    assert chase.repeats_sent == 1
    assert chase.episode == 1


async def test_moving_the_due_date_starts_a_new_episode_and_resolved_items_stop(
    harness: Harness,
) -> None:
    follow_up = EscalationFollowUp(reminder_lead_seconds=0, ladder_delay_seconds=60)
    p1, p2 = harness.prefix(1), harness.prefix(2)
    async with running(harness.worker()):
        first, second = item(1, 0.5, owner_manager=None), item(2, 0.5)
        handle = await harness.send(harness.facts([first, second], follow_up=follow_up))
        await eventually(
            harness.published.ids_async,
            lambda ids: {f"{p1}:ladder:owner:1", f"{p2}:ladder:owner:1"} <= set(ids),
        )
        # Item 1's due date moves: a new episode, the ladder starts again from the owner. Item 2
        # is done: nothing more for it.
        stale = harness.facts([item(1, 0.2), second], follow_up=follow_up)
        moved = replace(first, due_at=first.due_at + timedelta(seconds=1))
        await harness.send(
            harness.facts([moved, replace(second, status="done")], follow_up=follow_up)
        )
        await eventually(harness.published.ids_async, lambda ids: f"{p1}:ladder:owner:2" in ids)
        # An older snapshot (version 2 < 3) arriving late is ignored.
        await handle.signal(ESCALATION_FACTS_SIGNAL, stale)
        await asyncio.sleep(1.5)
        state = await handle.query(EscalationWorkflow.state)
    assert sorted(harness.published.ids()) == sorted(
        [f"{p1}:ladder:owner:1", f"{p2}:ladder:owner:1", f"{p1}:ladder:owner:2"]
    )
    assert state.version == 3
    assert [c.episode for c in state.chases] == [2, 1]
    assert state.open_items == [1]


async def test_quiet_outside_the_owner_calendar(harness: Harness) -> None:
    today = datetime.now(UTC).date()
    # An owner on leave: the calendar (with India's public holidays, looked up inside the
    # workflow) is closed today and for the next three days.
    closed = {
        "timezone": "Asia/Kolkata",
        "hours": {
            d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        },
        "holidays": {"country": "IN", "subdivision": None},
        "closed_dates": [(today + timedelta(days=n)).isoformat() for n in range(-1, 4)],
    }
    follow_up = EscalationFollowUp(reminder_lead_seconds=0.5, ladder_delay_seconds=0.5)
    async with running(harness.worker()):
        handle = await harness.send(
            harness.facts([item(1, 0.5, calendar=closed), item(2, 0.5)], follow_up=follow_up)
        )
        # The always-open owner hears everything; the owner on leave hears nothing yet.
        await eventually(
            harness.published.ids_async,
            lambda ids: f"{harness.prefix(2)}:ladder:program_manager:1" in ids,
        )
        await asyncio.sleep(1.0)
        state = await handle.query(EscalationWorkflow.state)
    assert not any(i.startswith(harness.prefix(1) + ":") for i in harness.published.ids())
    assert state.chases[0].levels_sent == []


async def test_continue_as_new_keeps_what_was_sent_and_the_fetched_calendars(
    harness: Harness,
) -> None:
    """A tiny history limit forces several continue-as-new: the ladder still sends each notice
    once, in order, and the owner's calendar is fetched once (the cache is carried over)."""
    today = datetime.now(UTC).date()
    harness.calendars.specs["office"] = ALWAYS_OPEN
    harness.calendars.specs["on-leave"] = {
        "timezone": "UTC",
        "hours": {
            d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        },
        "holidays": None,
        "closed_dates": [(today + timedelta(days=n)).isoformat() for n in range(-1, 4)],
    }
    follow_up = EscalationFollowUp(
        reminder_lead_seconds=3, ladder_delay_seconds=1, ladder_repeats=2, history_limit=20
    )
    chased = item(1, due_in=6, calendar={}, calendar_id="office")
    away = item(2, due_in=6, calendar={}, calendar_id="on-leave")
    p = harness.prefix(1)
    expected = [
        f"{p}:reminder:1",
        f"{p}:ladder:owner:1",
        f"{p}:ladder:owner_manager:1",
        f"{p}:ladder:program_manager:1",
        f"{p}:ladder:program_manager:1:repeat-1",
        f"{p}:ladder:program_manager:1:repeat-2",
    ]
    async with running(harness.worker()):
        started = await harness.send(harness.facts([chased, away], follow_up=follow_up))
        await eventually(harness.published.ids_async, lambda ids: len(ids) >= 6, within=40)
        await asyncio.sleep(1.5)  # nothing more comes (a new run would resend if state were lost)
        latest = harness.client.get_workflow_handle(escalation_workflow_id(harness.escalation_id))
        state = await latest.query(EscalationWorkflow.state)
        description = await latest.describe()

    assert harness.published.ids() == expected
    assert state.runs >= 2
    assert description.run_id != started.first_execution_run_id
    chase = state.chases[0]
    assert chase.levels_sent == ["owner", "owner_manager", "program_manager"]
    assert chase.repeats_sent == 2
    assert state.chases[1].levels_sent == []
    # Each owner calendar was fetched once, in the first run; later runs used the carried cache.
    assert sorted(harness.calendars.calls) == ["office", "on-leave"]
    assert {c.calendar_id for c in state.calendars} == {"office", "on-leave"}
