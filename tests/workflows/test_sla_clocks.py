"""SLA clocks of RequestLifecycleWorkflow on the real dev server, with targets of seconds.

The gateway and intake calls are replaced by activities registered under the real names
(`resolve_sla_policy`, `publish_sla_event`, `record_sla`, `auto_close_request`) that serve
test policies and capture what the workflow sends, with the wall-clock time it arrived.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from riskdesk.temporal_server import dev_server_command, free_port, wait_for_port
from services.common.temporal import connect_temporal
from workflows.catch_up_contracts import FetchedRequestEvents, FetchRequestEventsInput
from workflows.contracts import (
    REQUEST_EVENT_SIGNAL,
    AutoCloseRequestInput,
    PublishSlaEventInput,
    RecordSlaInput,
    RequestEventSignal,
    RequestLifecycleInput,
    RequestLifecycleState,
    ResolveSlaPolicyInput,
    SlaPolicy,
    SlaReport,
)
from workflows.request_lifecycle import RequestLifecycleWorkflow
from workflows.sandbox import workflow_runner

T = TypeVar("T")
ALWAYS = {"timezone": "UTC", "always_open": True}
# Scheduling slack on a shared 2-core machine: an alarm may arrive this late, never early.
LATE = timedelta(seconds=2.5)


def policy(
    *,
    first_response: str = "PT1H",
    resolution: str = "PT6S",
    thresholds: list[int] | None = None,
    calendar: dict[str, Any] | None = None,
    auto_close_after: str | None = None,
    policy_id: str = "test",
) -> SlaPolicy:
    return SlaPolicy(
        policy_id=policy_id,
        policy_name=f"policy {policy_id}",
        first_response_target=first_response,
        resolution_target=resolution,
        calendar_id="24x7" if calendar is None else "custom",
        calendar=calendar or ALWAYS,
        warning_thresholds=[50] if thresholds is None else thresholds,
        pause_statuses=["waiting_on_requester"],
        auto_close_after=auto_close_after,
    )


@dataclass
class Captured:
    """Something the workflow sent, and when it arrived."""

    value: Any
    arrived_at: datetime


@dataclass
class FakeServices:
    """Stands in for the gateway and intake: policies by priority; captures calls."""

    policies: dict[str, SlaPolicy] = field(default_factory=dict)
    resolved: list[ResolveSlaPolicyInput] = field(default_factory=list)
    events: list[Captured] = field(default_factory=list)
    records: list[RecordSlaInput] = field(default_factory=list)
    closes: list[Captured] = field(default_factory=list)
    catch_ups: list[FetchRequestEventsInput] = field(default_factory=list)

    @activity.defn(name="resolve_sla_policy")
    async def resolve_sla_policy(self, input: ResolveSlaPolicyInput) -> SlaPolicy:
        self.resolved.append(input)
        return self.policies[input.priority]

    @activity.defn(name="publish_sla_event")
    async def publish_sla_event(self, input: PublishSlaEventInput) -> None:
        self.events.append(Captured(input, datetime.now(UTC)))

    @activity.defn(name="record_sla")
    async def record_sla(self, input: RecordSlaInput) -> None:
        self.records.append(input)

    @activity.defn(name="auto_close_request")
    async def auto_close_request(self, input: AutoCloseRequestInput) -> int:
        self.closes.append(Captured(input, datetime.now(UTC)))
        return 200

    @activity.defn(name="fetch_request_events")
    async def fetch_request_events(self, input: FetchRequestEventsInput) -> FetchedRequestEvents:
        # The catch-up before a breach: these tests signal every event themselves, so the stand-in
        # intake holds none the workflow has not seen.
        self.catch_ups.append(input)
        return FetchedRequestEvents([])

    def activities(self) -> list[Callable[..., Awaitable[Any]]]:
        return [
            self.resolve_sla_policy,
            self.publish_sla_event,
            self.record_sla,
            self.auto_close_request,
            self.fetch_request_events,
        ]

    def of_type(self, kind: str) -> list[PublishSlaEventInput]:
        return [c.value for c in self.events if c.value.type == kind]

    def alarm_ids(self) -> list[str]:
        return [c.value.event_id for c in self.events if c.value.type.startswith("sla.")]

    def arrival(self, event_id: str) -> datetime:
        return next(c.arrived_at for c in self.events if c.value.event_id == event_id)


async def eventually(
    probe: Callable[[], Awaitable[T]], check: Callable[[T], bool], *, within: float = 20
) -> T:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await probe()
        if check(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition never held; last value {value!r}")
        await asyncio.sleep(0.05)


async def wait_for(check: Callable[[], bool], *, within: float = 20) -> None:
    async def probe() -> bool:
        return check()

    await eventually(probe, bool, within=within)


def event(
    request_id: int,
    to_status: str,
    *,
    version: int,
    from_status: str | None = None,
    action: str | None = None,
    kind: str = "transitioned",
    priority: str = "P2",
    at: datetime | None = None,
) -> RequestEventSignal:
    return RequestEventSignal(
        event_id=str(uuid.uuid4()),
        request_id=request_id,
        kind=kind,
        action=action,
        from_status=from_status,
        to_status=to_status,
        priority=priority,
        actor="key-analyst",
        occurred_at=at or datetime.now(UTC),
        version=version,
    )


@pytest.fixture
async def client(temporal_address: str) -> Client:
    return await connect_temporal(temporal_address, "default")


@pytest.fixture
def fake() -> FakeServices:
    return FakeServices(policies={"P2": policy()})


@asynccontextmanager
async def running_worker(
    client: Client, task_queue: str, fake: FakeServices
) -> AsyncIterator[Worker]:
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[RequestLifecycleWorkflow],
        workflow_runner=workflow_runner(),
        activities=fake.activities(),
    )
    async with worker:
        yield worker


@dataclass
class Started:
    handle: WorkflowHandle[RequestLifecycleWorkflow, RequestLifecycleState]
    request_id: int
    created_at: datetime
    task_queue: str

    async def send(self, signal: RequestEventSignal) -> None:
        await self.handle.signal(RequestLifecycleWorkflow.request_event, signal)

    async def sla(self) -> SlaReport:
        return await self.handle.query(RequestLifecycleWorkflow.sla)

    def clock(self, report: SlaReport, name: str) -> Any:
        return next(c for c in report.clocks if c.name == name)


async def start(
    client: Client, task_queue: str, *, priority: str = "P2", team: str = "buyer-risk"
) -> Started:
    request_id = random.randint(10**6, 2 * 10**9)
    created_at = datetime.now(UTC)
    handle = await client.start_workflow(
        RequestLifecycleWorkflow.run,
        RequestLifecycleInput(
            request_id=request_id,
            team=team,
            request_type="deep_dive",
            priority=priority,
            status="new",
            created_at=created_at,
        ),
        id=f"request-sla-{uuid.uuid4().hex}",
        task_queue=task_queue,
        start_signal=REQUEST_EVENT_SIGNAL,
        start_signal_args=[
            event(request_id, "new", version=1, kind="created", priority=priority, at=created_at)
        ],
    )
    return Started(handle, request_id, created_at, task_queue)


@pytest.fixture
def task_queue() -> str:
    return f"sla-{uuid.uuid4().hex[:10]}"


def assert_on_time(fake: FakeServices, event_id: str, due: datetime) -> None:
    arrived = fake.arrival(event_id)
    assert due <= arrived <= due + LATE, (event_id, due, arrived)


async def test_warning_then_breach_fire_once_at_the_right_times(
    client: Client, fake: FakeServices, task_queue: str
) -> None:
    fake.policies["P2"] = policy(resolution="PT6S", thresholds=[50], first_response="PT1H")
    async with running_worker(client, task_queue, fake):
        run = await start(client, task_queue)
        prefix = f"request-{run.request_id}:resolution"
        report = await eventually(run.sla, lambda r: r.policy_id == "test")
        resolution = run.clock(report, "resolution")
        assert resolution.state == "running"
        assert resolution.target == "PT6S"
        assert resolution.due_at == run.created_at + timedelta(seconds=6)

        # Triage stops the first-response clock and is published as a status change.
        triage = event(run.request_id, "triaged", version=2, from_status="new", action="triage")
        await run.send(triage)
        report = await eventually(
            run.sla, lambda r: run.clock(r, "first_response").state == "stopped"
        )
        assert run.clock(report, "first_response").stopped_at == triage.occurred_at

        await wait_for(lambda: f"{prefix}:breached:0" in fake.alarm_ids())
        await asyncio.sleep(1)  # anything extra would show by now
        assert fake.alarm_ids() == [f"{prefix}:warning:50:0", f"{prefix}:breached:0"]
        assert_on_time(fake, f"{prefix}:warning:50:0", run.created_at + timedelta(seconds=3))
        assert_on_time(fake, f"{prefix}:breached:0", run.created_at + timedelta(seconds=6))
        (warning,) = fake.of_type("sla.warning")
        assert warning.team == "buyer-risk"
        assert warning.data == {
            "request_id": run.request_id,
            "clock": "resolution",
            "threshold": 50,
            "due_at": (run.created_at + timedelta(seconds=6)).isoformat(),
            "elapsed_seconds": 3.0,
            "target_seconds": 6.0,
        }
        (breach,) = fake.of_type("sla.breached")
        assert breach.data["breached_at"] == (run.created_at + timedelta(seconds=6)).isoformat()
        (changed,) = fake.of_type("request.status_changed")
        assert changed.event_id == triage.event_id
        assert changed.data == {
            "request_id": run.request_id,
            "from_status": "new",
            "to_status": "triaged",
            "action": "triage",
            "actor": "key-analyst",
        }

        report = await run.sla()
        resolution = run.clock(report, "resolution")
        assert resolution.state == "breached"
        assert resolution.remaining_seconds == 0
        assert resolution.elapsed_seconds >= 6
        assert resolution.warnings_sent == [50]
        # The request's record: the breach, and the earliest running deadline.
        await wait_for(lambda: fake.records[-1].breached_at is not None)
        last = fake.records[-1]
        assert last.breached_at == run.created_at + timedelta(seconds=6)
        assert last.sla_due_at == run.created_at + timedelta(seconds=6)
        assert last.first_response_due_at == run.created_at + timedelta(hours=1)

        await run.send(
            event(run.request_id, "closed", version=3, from_status="triaged", action="reject")
        )
        state = await asyncio.wait_for(run.handle.result(), timeout=15)
        assert state.status == "closed"
        assert fake.records[-1].sla_due_at is None  # nothing runs on a closed request


async def test_a_pause_moves_the_deadline(
    client: Client, fake: FakeServices, task_queue: str
) -> None:
    fake.policies["P2"] = policy(resolution="PT6S", thresholds=[])
    async with running_worker(client, task_queue, fake):
        run = await start(client, task_queue)
        await eventually(run.sla, lambda r: r.policy_id is not None)
        await asyncio.sleep(1)
        paused = event(
            run.request_id,
            "waiting_on_requester",
            version=2,
            from_status="in_progress",
            action="request_info",
        )
        await run.send(paused)
        report = await eventually(run.sla, lambda r: run.clock(r, "resolution").state == "paused")
        assert run.clock(report, "resolution").due_at is None
        await asyncio.sleep(3)
        resumed = event(
            run.request_id,
            "in_progress",
            version=3,
            from_status="waiting_on_requester",
            action="provide_info",
        )
        await run.send(resumed)
        due = run.created_at + timedelta(seconds=6) + (resumed.occurred_at - paused.occurred_at)
        report = await eventually(run.sla, lambda r: run.clock(r, "resolution").state == "running")
        assert run.clock(report, "resolution").due_at == due
        breach_id = f"request-{run.request_id}:resolution:breached:0"
        await wait_for(lambda: breach_id in fake.alarm_ids())
        assert_on_time(fake, breach_id, due)
        assert fake.of_type("sla.breached")[0].data["breached_at"] == due.isoformat()
        await run.handle.terminate("test done")


async def test_a_priority_change_retargets_keeping_elapsed_time(
    client: Client, fake: FakeServices, task_queue: str
) -> None:
    fake.policies["P2"] = policy(resolution="PT30S", thresholds=[50], policy_id="p2")
    fake.policies["P1"] = policy(resolution="PT8S", thresholds=[25, 50], policy_id="p1")
    async with running_worker(client, task_queue, fake):
        run = await start(client, task_queue)
        await eventually(run.sla, lambda r: r.policy_id == "p2")
        await asyncio.sleep(3)
        bumped = event(run.request_id, "new", version=2, kind="updated", priority="P1")
        await run.send(bumped)
        report = await eventually(run.sla, lambda r: r.policy_id == "p1")
        resolution = run.clock(report, "resolution")
        assert (resolution.target, resolution.generation) == ("PT8S", 1)
        # Elapsed time is kept: 8 s from the filing, not from the change.
        assert resolution.due_at == run.created_at + timedelta(seconds=8)
        # ~3 s worked of 8: the 25 % line (2 s) was crossed before, so it counts as sent.
        assert resolution.warnings_sent == [25]
        assert [r.priority for r in fake.resolved] == ["P2", "P1"]
        prefix = f"request-{run.request_id}:resolution"
        await wait_for(lambda: f"{prefix}:breached:1" in fake.alarm_ids())
        assert fake.alarm_ids() == [f"{prefix}:warning:50:1", f"{prefix}:breached:1"]
        assert_on_time(fake, f"{prefix}:warning:50:1", run.created_at + timedelta(seconds=4))
        assert_on_time(fake, f"{prefix}:breached:1", run.created_at + timedelta(seconds=8))
        await run.handle.terminate("test done")


async def test_reopen_continues_the_resolution_clock(
    client: Client, fake: FakeServices, task_queue: str
) -> None:
    fake.policies["P2"] = policy(resolution="PT6S", thresholds=[])
    async with running_worker(client, task_queue, fake):
        run = await start(client, task_queue)
        await eventually(run.sla, lambda r: r.policy_id is not None)
        await asyncio.sleep(2)
        resolved = event(
            run.request_id, "resolved", version=2, from_status="in_progress", action="resolve"
        )
        await run.send(resolved)
        report = await eventually(run.sla, lambda r: run.clock(r, "resolution").state == "stopped")
        worked = run.clock(report, "resolution").elapsed_seconds
        assert 1.5 < worked < 3
        # Stopped past its old deadline: no breach for a resolved request.
        await asyncio.sleep(5)
        assert fake.alarm_ids() == []
        report = await run.sla()
        assert run.clock(report, "resolution").elapsed_seconds == worked
        reopened = event(
            run.request_id, "in_progress", version=3, from_status="resolved", action="reopen"
        )
        await run.send(reopened)
        due = run.created_at + timedelta(seconds=6) + (reopened.occurred_at - resolved.occurred_at)
        report = await eventually(run.sla, lambda r: run.clock(r, "resolution").state == "running")
        assert run.clock(report, "resolution").due_at == due
        breach_id = f"request-{run.request_id}:resolution:breached:0"
        await wait_for(lambda: breach_id in fake.alarm_ids())
        assert_on_time(fake, breach_id, due)
        await run.handle.terminate("test done")


async def test_auto_close_after_the_window_unless_reopened(
    client: Client, fake: FakeServices, task_queue: str
) -> None:
    fake.policies["P2"] = policy(resolution="PT1H", auto_close_after="PT2S")
    async with running_worker(client, task_queue, fake):
        run = await start(client, task_queue)
        await eventually(run.sla, lambda r: r.policy_id is not None)
        first = event(
            run.request_id, "resolved", version=2, from_status="in_progress", action="resolve"
        )
        await run.send(first)
        await asyncio.sleep(0.7)
        await run.send(
            event(run.request_id, "in_progress", version=3, from_status="resolved", action="reopen")
        )
        await asyncio.sleep(2.5)
        assert fake.closes == []  # reopened within the window
        second = event(
            run.request_id, "resolved", version=4, from_status="in_progress", action="resolve"
        )
        await run.send(second)
        await wait_for(lambda: len(fake.closes) == 1)
        closed_at = fake.closes[0].arrived_at
        assert second.occurred_at + timedelta(seconds=2) <= closed_at
        assert closed_at <= second.occurred_at + timedelta(seconds=2) + LATE
        assert fake.closes[0].value.request_id == run.request_id
        # The close comes back as the request's own event, and ends the workflow.
        await run.send(
            event(run.request_id, "closed", version=5, from_status="resolved", action="close")
        )
        await asyncio.wait_for(run.handle.result(), timeout=15)
        assert len(fake.closes) == 1


async def test_a_worker_restart_between_warning_and_breach_yields_one_of_each(
    client: Client, fake: FakeServices, task_queue: str
) -> None:
    fake.policies["P2"] = policy(resolution="PT6S", thresholds=[50])
    async with running_worker(client, task_queue, fake):
        run = await start(client, task_queue)
        prefix = f"request-{run.request_id}:resolution"
        await wait_for(lambda: f"{prefix}:warning:50:0" in fake.alarm_ids())
    # The first worker is gone; the breach is due in ~3 s and a new worker must raise it once.
    await asyncio.sleep(1)
    async with running_worker(client, task_queue, fake):
        await wait_for(lambda: f"{prefix}:breached:0" in fake.alarm_ids())
        await asyncio.sleep(1)
        assert fake.alarm_ids() == [f"{prefix}:warning:50:0", f"{prefix}:breached:0"]
        report = await run.sla()
        assert run.clock(report, "resolution").warnings_sent == [50]
        await run.handle.terminate("test done")


@pytest.fixture(scope="module")
def short_history_temporal() -> Iterator[str]:
    """A dev server that suggests continue-as-new after a few events."""
    port = free_port()
    command = [
        *dev_server_command(host="127.0.0.1", port=port, ui_port=None, db_file=None),
        "--dynamic-config-value",
        "limit.historyCount.suggestContinueAsNew=40",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port, timeout=60, process=process)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def test_continue_as_new_carries_the_clocks(
    short_history_temporal: str, fake: FakeServices, task_queue: str
) -> None:
    client = None
    for _ in range(300):
        try:
            client = await connect_temporal(short_history_temporal, "default")
            break
        except RuntimeError:
            await asyncio.sleep(0.2)
    assert client is not None
    fake.policies["P2"] = policy(resolution="PT10S", thresholds=[30])
    async with running_worker(client, task_queue, fake):
        run = await start(client, task_queue)
        first_run = (await run.handle.describe()).run_id
        prefix = f"request-{run.request_id}:resolution"
        await wait_for(lambda: f"{prefix}:warning:30:0" in fake.alarm_ids())
        # Events that leave the clocks alone, one workflow task each, until history is long.
        for version in range(2, 22):
            await run.send(event(run.request_id, "new", version=version, kind="probe"))
            await eventually(
                lambda: run.handle.query(RequestLifecycleWorkflow.state),
                lambda s, v=version: s.version == v,  # type: ignore[misc]
            )
        latest = client.get_workflow_handle_for(RequestLifecycleWorkflow.run, run.handle.id)
        await eventually(latest.describe, lambda d: d.run_id != first_run)
        report = await latest.query(RequestLifecycleWorkflow.sla)
        resolution = next(c for c in report.clocks if c.name == "resolution")
        assert resolution.warnings_sent == [30]
        assert resolution.due_at == run.created_at + timedelta(seconds=10)
        await wait_for(lambda: f"{prefix}:breached:0" in fake.alarm_ids())
        await asyncio.sleep(1)
        assert fake.alarm_ids() == [f"{prefix}:warning:30:0", f"{prefix}:breached:0"]
        assert_on_time(fake, f"{prefix}:breached:0", run.created_at + timedelta(seconds=10))
        await latest.terminate("test done")


async def test_a_run_without_events_starts_its_clocks_from_the_current_status(
    client: Client, fake: FakeServices, task_queue: str
) -> None:
    # What a run continued from one that had no clocks (before the upgrade) looks like.
    async with running_worker(client, task_queue, fake):
        handle = await client.start_workflow(
            RequestLifecycleWorkflow.run,
            RequestLifecycleInput(
                request_id=random.randint(10**6, 2 * 10**9),
                team="buyer-risk",
                request_type="deep_dive",
                priority="P2",
                status="waiting_on_requester",
            ),
            id=f"request-sla-{uuid.uuid4().hex}",
            task_queue=task_queue,
        )
        report = await eventually(
            lambda: handle.query(RequestLifecycleWorkflow.sla), lambda r: r.policy_id is not None
        )
        states = {clock.name: clock.state for clock in report.clocks}
        assert states == {"first_response": "stopped", "resolution": "paused"}
        await handle.terminate("test done")
