"""No false SLA breach when a request's signals arrive late: the catch-up from intake.

The real intake (in-process, real outbox, each backend), the Temporal dev server and a worker
running the real intake-side activities (`record_sla`, `auto_close_request`,
`fetch_request_events`); the gateway side (`resolve_sla_policy`, `publish_sla_event`) is stood in
for under the real names. The outbox dispatcher is stopped to hold a triage's signal back while
the first-response deadline passes, as a Temporal outage or a dispatcher backlog would.

Intake being unreachable (the breach held, then raised) is minutes of workflow time: those tests
run on the time-skipping server, with an intake stand-in that refuses calls.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from temporalio import activity
from temporalio.api.enums.v1 import EventType, IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from services.common.identity import Role
from services.common.settings import Settings
from services.common.temporal import connect_temporal
from tests.service.test_intake_api import eventually
from tests.service.test_intake_sla import SlaIntake, running_intake
from tests.workflows.test_sla_clocks import LATE, FakeServices, event, policy, wait_for
from tests.workflows.test_sla_time_skipping import env as env
from workflows.catch_up_contracts import FetchedRequestEvents, FetchRequestEventsInput
from workflows.contracts import (
    REQUEST_EVENT_SIGNAL,
    PublishSlaEventInput,
    RequestEventSignal,
    RequestLifecycleInput,
    RequestLifecycleState,
    SlaReport,
)
from workflows.request_lifecycle import CATCH_UP_HOLD, RequestLifecycleWorkflow, SlaActivities
from workflows.sandbox import workflow_runner
from workflows.search_attributes import ALL_KEYWORDS
from workflows.service_api import ServiceApi

FIRST_RESPONSE = timedelta(seconds=3)


@asynccontextmanager
async def worker_for(intake: SlaIntake, settings: Settings) -> AsyncIterator[Worker]:
    """A worker whose intake-side activities reach this intake in-process."""
    transport = httpx.ASGITransport(app=intake.app)
    async with httpx.AsyncClient(transport=transport) as http:
        real = SlaActivities(ServiceApi(http=http, settings=settings))
        temporal = await connect_temporal(settings.temporal_address, "default")
        worker = Worker(
            temporal,
            task_queue=settings.task_queue,
            workflows=[RequestLifecycleWorkflow],
            workflow_runner=workflow_runner(),
            activities=[
                intake.fake.resolve_sla_policy,
                intake.fake.publish_sla_event,
                real.record_sla,
                real.auto_close_request,
                real.fetch_request_events,
            ],
        )
        async with worker:
            yield worker


def fake_gateway(*, thresholds: list[int]) -> FakeServices:
    return FakeServices(
        policies={"P2": policy(first_response="PT3S", resolution="PT1H", thresholds=thresholds)}
    )


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


def breach_of(request_id: int) -> str:
    return f"request-{request_id}:first_response:breached:0"


def handle_of(
    temporal: Client, request_id: int
) -> WorkflowHandle[RequestLifecycleWorkflow, RequestLifecycleState]:
    return temporal.get_workflow_handle_for(RequestLifecycleWorkflow.run, f"request-{request_id}")


async def signalled(temporal: Client, request_id: int) -> list[str]:
    """Event ids of the `request_event` signals in the workflow's history, in order."""
    ids: list[str] = []
    async for entry in handle_of(temporal, request_id).fetch_history_events():
        if entry.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            attributes = entry.workflow_execution_signaled_event_attributes
            if attributes.signal_name == REQUEST_EVENT_SIGNAL:
                payload = pydantic_data_converter.payload_converter.from_payloads(
                    attributes.input.payloads
                )[0]
                ids.append(str(payload["event_id"]))
    return ids


async def clocks(intake: SlaIntake, request_id: int, headers: dict[str, str]) -> dict[str, Any]:
    response = await intake.http.get(f"/api/v1/requests/{request_id}/sla", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return {clock["name"]: clock for clock in body["clocks"]} | {"policy_id": body["policy_id"]}


async def with_policy(intake: SlaIntake, request_id: int, headers: dict[str, str]) -> None:
    """Wait until the request's workflow runs its clocks (its first signal has arrived)."""
    await eventually(lambda: clocks(intake, request_id, headers), lambda c: c["policy_id"])


async def triage(intake: SlaIntake, request_id: int, headers: dict[str, str]) -> dict[str, Any]:
    """Triage the request; returns the triage event of its audit trail."""
    moved = await intake.http.post(
        f"/api/v1/requests/{request_id}/transitions", json={"action": "triage"}, headers=headers
    )
    assert moved.status_code == 200, moved.text
    trail = await intake.http.get(f"/api/v1/requests/{request_id}/events", headers=headers)
    event: dict[str, Any] = trail.json()["items"][-1]
    assert event["action"] == "triage"
    return event


async def test_a_triage_in_time_whose_signal_is_late_is_no_breach(
    settings: Settings, identity_headers: Callable[..., dict[str, str]], unique_team: str
) -> None:
    fake = fake_gateway(thresholds=[])
    async with (
        running_intake(settings, identity_headers, fake, worker=False) as intake,
        worker_for(intake, settings),
    ):
        partner = intake.as_(team=unique_team, role=Role.PARTNER)
        analyst = intake.as_(team="risk-mining", role=Role.ANALYST, subject="key-analyst")
        worked = await intake.file(partner, priority="P2")
        idle = await intake.file(partner, priority="P2")
        await with_policy(intake, worked["id"], partner)
        await with_policy(intake, idle["id"], partner)
        dispatcher = intake.app.state.runtime.dispatcher
        await dispatcher.stop()
        # Committed in intake before the deadline; its signal waits in the outbox.
        triaged = await triage(intake, worked["id"], analyst)
        deadline = instant(worked["created_at"]) + FIRST_RESPONSE
        assert instant(triaged["occurred_at"]) < deadline

        idle_due = instant(idle["created_at"]) + FIRST_RESPONSE
        await wait_for(lambda: breach_of(idle["id"]) in fake.alarm_ids())
        await asyncio.sleep(max((deadline - datetime.now(UTC)).total_seconds(), 0) + 1.5)
        # The idle request breached once, on time; the worked one did not breach at all.
        assert fake.alarm_ids() == [breach_of(idle["id"])]
        assert idle_due <= fake.arrival(breach_of(idle["id"])) <= idle_due + LATE
        (breach,) = fake.of_type("sla.breached")
        assert breach.data["breached_at"] == idle_due.isoformat()

        temporal = await connect_temporal(settings.temporal_address, "default")
        # The triage came from intake, not from a signal: the only one so far is the filing.
        assert len(await signalled(temporal, worked["id"])) == 1
        state = await handle_of(temporal, worked["id"]).query(RequestLifecycleWorkflow.state)
        assert (state.status, state.version, state.events_seen) == ("triaged", 2, 2)
        first = (await clocks(intake, worked["id"], partner))["first_response"]
        assert first["state"] == "stopped"
        assert instant(first["stopped_at"]) == instant(triaged["occurred_at"])
        assert first["breached_at"] is None
        # Applied exactly as the signal would be: its status change is published once.
        changes = fake.of_type("request.status_changed")
        assert [c.event_id for c in changes] == [triaged["id"]]
        recorded = await intake.read(worked["id"], partner)
        assert recorded["breached_at"] is None

        # The outbox resumes: the late signal is a repeat, and ignored.
        dispatcher.start()
        await eventually(lambda: signalled(temporal, worked["id"]), lambda ids: len(ids) == 2)
        state = await eventually(
            lambda: handle_of(temporal, worked["id"]).query(RequestLifecycleWorkflow.state),
            lambda s: s.last_event_id == triaged["id"],
        )
        assert (state.status, state.version, state.events_seen) == ("triaged", 2, 2)
        await asyncio.sleep(0.5)
        assert [c.event_id for c in fake.of_type("request.status_changed")] == [triaged["id"]]
        assert fake.alarm_ids() == [breach_of(idle["id"])]

        # What the catch-up wrote to history replays deterministically on this code.
        history = await handle_of(temporal, worked["id"]).fetch_history()
        replayed = await Replayer(
            workflows=[RequestLifecycleWorkflow],
            data_converter=pydantic_data_converter,
            workflow_runner=workflow_runner(),
        ).replay_workflow(history, raise_on_replay_failure=False)
        assert replayed.replay_failure is None, replayed.replay_failure
        for request in (worked, idle):
            await handle_of(temporal, request["id"]).terminate("test done")


async def test_a_triage_after_the_deadline_still_breaches_and_a_caught_up_close_ends_one_run(
    settings: Settings, identity_headers: Callable[..., dict[str, str]], unique_team: str
) -> None:
    # The worker is down across the deadline, and the triage and the rejection made after it wait
    # in the outbox: when the worker returns, the catch-up applies both, in time order with the
    # alarms: the deadline passed before the triage, so the breach stands.
    fake = fake_gateway(thresholds=[50])
    async with running_intake(settings, identity_headers, fake, worker=False) as intake:
        partner = intake.as_(team=unique_team, role=Role.PARTNER)
        analyst = intake.as_(team="risk-mining", role=Role.ANALYST, subject="key-analyst")
        request = await intake.file(partner, priority="P2")
        rid = request["id"]
        async with worker_for(intake, settings):
            await with_policy(intake, rid, partner)
        dispatcher = intake.app.state.runtime.dispatcher
        await dispatcher.stop()
        deadline = instant(request["created_at"]) + FIRST_RESPONSE
        await asyncio.sleep(max((deadline - datetime.now(UTC)).total_seconds(), 0) + 0.3)
        triaged = await triage(intake, rid, analyst)
        assert instant(triaged["occurred_at"]) > deadline
        rejected = await intake.http.post(
            f"/api/v1/requests/{rid}/transitions",
            json={"action": "reject", "reason": "not fraud"},
            headers=analyst,
        )
        assert rejected.status_code == 200, rejected.text
        trail = await intake.http.get(f"/api/v1/requests/{rid}/events", headers=analyst)
        rejection = trail.json()["items"][-1]
        assert rejection["action"] == "reject"
        temporal = await connect_temporal(settings.temporal_address, "default")
        handle = handle_of(temporal, rid)
        first_run = (await handle.describe()).run_id
        async with worker_for(intake, settings):
            await wait_for(lambda: breach_of(rid) in fake.alarm_ids())
            first = (
                await eventually(
                    lambda: clocks(intake, rid, partner),
                    lambda c: c["first_response"]["state"] == "stopped",
                )
            )["first_response"]
            state = await handle.query(RequestLifecycleWorkflow.state)
            assert (state.status, state.version) == ("closed", 3)
            # Closed from the catch-up, the run waits for its late signals instead of ending,
            # so they land here rather than start a new run.
            assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
            dispatcher.start()
            result = await asyncio.wait_for(handle.result(), timeout=30)
            assert (result.status, result.events_seen) == ("closed", 3)
            assert (await handle.describe()).run_id == first_run
        assert len(await signalled(temporal, rid)) == 3
        # The warning, the breach (at the deadline), then the triage, each once and in order.
        prefix = f"request-{rid}:first_response"
        assert fake.alarm_ids() == [f"{prefix}:warning:50:0", breach_of(rid)]
        (breach,) = fake.of_type("sla.breached")
        assert breach.data["breached_at"] == deadline.isoformat()
        assert instant(first["stopped_at"]) == instant(triaged["occurred_at"])
        assert instant(first["breached_at"]) == deadline
        changes = [c.event_id for c in fake.of_type("request.status_changed")]
        assert changes == [triaged["id"], rejection["id"]]
        recorded = await intake.read(rid, partner)
        assert instant(recorded["breached_at"]) == deadline


@dataclass
class FlakyIntake(FakeServices):
    """The gateway stand-in, and an intake stand-in that refuses the first `refusals` catch-up
    calls; when the breach was handed over, in the (skipped) server time."""

    refusals: int = 0
    committed: list[RequestEventSignal] = field(default_factory=list)
    breach_handed_over_at: list[datetime] = field(default_factory=list)

    @activity.defn(name="fetch_request_events")
    async def fetch_request_events(self, input: FetchRequestEventsInput) -> FetchedRequestEvents:
        self.catch_ups.append(input)
        if len(self.catch_ups) <= self.refusals:
            raise ApplicationError("intake is down")
        return FetchedRequestEvents([e for e in self.committed if e.version > input.after_version])

    @activity.defn(name="publish_sla_event")
    async def publish_sla_event(self, input: PublishSlaEventInput) -> None:
        if input.type == "sla.breached":
            self.breach_handed_over_at.append(activity.info().current_attempt_scheduled_time)
        await super().publish_sla_event(input)


async def run_on_skipped_time(
    env: WorkflowEnvironment, fake: FlakyIntake, *, triage_after: timedelta | None
) -> tuple[datetime, RequestEventSignal | None, SlaReport]:
    """A request on the time-skipping server whose first response is due in an hour; optionally
    triaged in time in intake (its signal never comes). Returns (filed at, triage, report)."""
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in ALL_KEYWORDS
            },
        )
    )
    client = Client(
        env.client.service_client,
        namespace=env.client.namespace,
        data_converter=pydantic_data_converter,
    )
    task_queue = f"hold-{uuid.uuid4().hex[:8]}"
    created = await env.get_current_time()
    request_id = 4343
    triaged = None
    if triage_after is not None:
        triaged = event(
            request_id,
            "triaged",
            version=2,
            from_status="new",
            action="triage",
            at=created + triage_after,
        )
        fake.committed.append(triaged)
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[RequestLifecycleWorkflow],
        workflow_runner=workflow_runner(),
        activities=fake.activities(),
    ):
        handle = await client.start_workflow(
            RequestLifecycleWorkflow.run,
            RequestLifecycleInput(
                request_id=request_id,
                team="buyer-risk",
                request_type="deep_dive",
                priority="P2",
                status="new",
                created_at=created,
            ),
            id=f"request-hold-{uuid.uuid4().hex}",
            task_queue=task_queue,
            start_signal=REQUEST_EVENT_SIGNAL,
            start_signal_args=[event(request_id, "new", version=1, kind="created", at=created)],
        )
        await env.sleep(timedelta(hours=2))
        report: SlaReport = await handle.query(RequestLifecycleWorkflow.sla)
        await handle.terminate("test done")
    return created, triaged, report


def hour_long_first_response(refusals: int) -> FlakyIntake:
    return FlakyIntake(
        policies={"P2": policy(first_response="PT1H", resolution="PT8H", thresholds=[])},
        refusals=refusals,
    )


async def test_while_intake_is_down_the_breach_is_held_then_raised_once(
    env: WorkflowEnvironment,
) -> None:
    fake = hour_long_first_response(refusals=1000)
    created, _, report = await run_on_skipped_time(env, fake, triage_after=None)
    due = created + timedelta(hours=1)
    breach_id = "request-4343:first_response:breached:0"
    assert fake.alarm_ids() == [breach_id]
    (breach,) = fake.of_type("sla.breached")
    assert breach.data["breached_at"] == due.isoformat()
    # Held for CATCH_UP_HOLD past the first failed catch-up (itself ~3.5 s of retries), retried
    # at the usual back-off in between: late rather than lost.
    (handed_over,) = fake.breach_handed_over_at
    assert due + CATCH_UP_HOLD <= handed_over <= due + CATCH_UP_HOLD + timedelta(seconds=30)
    assert 4 * 3 < len(fake.catch_ups) <= 4 * 5
    first = next(c for c in report.clocks if c.name == "first_response")
    assert (first.state, first.breached_at) == ("breached", due)


async def test_intake_back_within_the_hold_turns_a_false_breach_away(
    env: WorkflowEnvironment,
) -> None:
    # The first catch-up (four attempts) fails; the next, 30 s later, finds the triage.
    fake = hour_long_first_response(refusals=4)
    _, triaged, report = await run_on_skipped_time(env, fake, triage_after=timedelta(minutes=20))
    assert triaged is not None
    assert fake.alarm_ids() == []
    assert len(fake.catch_ups) == 5
    first = next(c for c in report.clocks if c.name == "first_response")
    assert (first.state, first.stopped_at, first.breached_at) == (
        "stopped",
        triaged.occurred_at,
        None,
    )
    assert [e.event_id for e in fake.of_type("request.status_changed")] == [triaged.event_id]
