"""RequestLifecycleWorkflow alone on the real dev server: dedup, status, search attributes, end."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import TypeVar

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import TypedSearchAttributes

from riskdesk.temporal_server import running_dev_server
from services.common.settings import Settings
from services.common.temporal import connect_temporal
from workflows.contracts import (
    REQUEST_EVENT_SIGNAL,
    REQUEST_LIFECYCLE_WORKFLOW,
    RequestEventSignal,
    RequestLifecycleInput,
    RequestLifecycleState,
)
from workflows.request_lifecycle import RequestLifecycleWorkflow
from workflows.search_attributes import REQUEST_PRIORITY, REQUEST_STATUS, REQUEST_TEAM
from workflows.worker import build_worker

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], check: Callable[[T], bool]) -> T:
    """Poll `probe` until `check` holds (signals and visibility are asynchronous)."""
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        value = await probe()
        if check(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition never held; last value {value!r}")
        await asyncio.sleep(0.1)


def event(
    request_id: int,
    to_status: str,
    *,
    version: int,
    event_id: str | None = None,
    action: str | None = None,
    priority: str = "P2",
) -> RequestEventSignal:
    return RequestEventSignal(
        event_id=event_id or str(uuid.uuid4()),
        request_id=request_id,
        kind="created" if action is None else "transitioned",
        action=action,
        from_status=None,
        to_status=to_status,
        priority=priority,
        actor="key-test",
        occurred_at=datetime.now(UTC),
        trace_request_id="trace-1",
        version=version,
    )


@pytest.fixture
async def client(temporal_address: str) -> Client:
    return await connect_temporal(temporal_address, "default")


@pytest.fixture
async def worker_settings(client: Client, temporal_address: str) -> AsyncIterator[Settings]:
    """A running worker (build_worker) on a fresh task queue."""
    settings = Settings(
        environment="test",
        temporal_address=temporal_address,
        task_queue=f"wf-{uuid.uuid4().hex[:10]}",
    )
    async with build_worker(client, settings):
        yield settings


async def start(
    client: Client, settings: Settings, request_id: int, team: str, first: RequestEventSignal
) -> WorkflowHandle[RequestLifecycleWorkflow, RequestLifecycleState]:
    """Signal-with-start, as the outbox dispatcher does it."""
    return await client.start_workflow(
        RequestLifecycleWorkflow.run,
        RequestLifecycleInput(
            request_id=request_id, team=team, request_type="deep_dive", priority="P2", status="new"
        ),
        id=f"request-test-{uuid.uuid4().hex}",
        task_queue=settings.task_queue,
        start_signal=REQUEST_EVENT_SIGNAL,
        start_signal_args=[first],
    )


async def test_tracks_status_dedups_and_completes_on_close(
    client: Client, worker_settings: Settings, unique_team: str
) -> None:
    created = event(1, "new", version=1)
    handle = await start(client, worker_settings, 1, unique_team, created)

    async def state() -> RequestLifecycleState:
        return await handle.query(RequestLifecycleWorkflow.state)

    first = await eventually(state, lambda s: s.events_seen == 1)
    assert (first.status, first.last_event_id, first.version) == ("new", created.event_id, 1)

    triage = event(1, "triaged", version=2, action="triage", priority="P1")
    await handle.signal(RequestLifecycleWorkflow.request_event, triage)
    await eventually(state, lambda s: s.status == "triaged" and s.priority == "P1")

    # The same event again (an outbox redelivery) changes nothing.
    await handle.signal(RequestLifecycleWorkflow.request_event, triage)
    await handle.signal(RequestLifecycleWorkflow.request_event, created)
    # A stale event (older version, new id) is counted but does not move the status back.
    await handle.signal(RequestLifecycleWorkflow.request_event, event(1, "new", version=1))
    after = await eventually(state, lambda s: s.events_seen == 3)
    assert (after.status, after.version) == ("triaged", 2)

    described = await eventually(
        handle.describe,
        lambda d: d.typed_search_attributes.get(REQUEST_STATUS) == "triaged",
    )
    attributes: TypedSearchAttributes = described.typed_search_attributes
    assert attributes.get(REQUEST_TEAM) == unique_team
    assert attributes.get(REQUEST_PRIORITY) == "P1"
    found = await eventually(
        lambda: _list_ids(client, f'RiskdeskTeam = "{unique_team}" AND RiskdeskStatus = "triaged"'),
        lambda ids: handle.id in ids,
    )
    assert found == [handle.id]

    await handle.signal(
        RequestLifecycleWorkflow.request_event, event(1, "closed", version=3, action="reject")
    )
    result = await asyncio.wait_for(handle.result(), timeout=15)
    assert result.status == "closed"
    assert result.events_seen == 4
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED


async def test_signal_by_name_with_json_args_as_the_outbox_sends_them(
    client: Client, worker_settings: Settings, unique_team: str
) -> None:
    # The outbox stores JSON and starts the workflow by type name; the converter must rebuild
    # the dataclasses (including the datetime) from plain dicts.
    created = event(9, "new", version=1)
    handle: WorkflowHandle[object, object] = await client.start_workflow(
        REQUEST_LIFECYCLE_WORKFLOW,
        args=[
            {
                "request_id": 9,
                "team": unique_team,
                "request_type": "other",
                "priority": "P3",
                "status": "new",
            }
        ],
        id=f"request-test-{uuid.uuid4().hex}",
        task_queue=worker_settings.task_queue,
        start_signal=REQUEST_EVENT_SIGNAL,
        start_signal_args=[
            {**created.__dict__, "occurred_at": created.occurred_at.isoformat(), "extra": 1}
        ],
    )
    state = await eventually(
        lambda: handle.query("state", result_type=RequestLifecycleState),
        lambda s: s.events_seen == 1,
    )
    assert (state.request_id, state.status) == (9, "new")
    await handle.terminate("test done")


async def _list_ids(client: Client, query: str) -> list[str]:
    return [w.id async for w in client.list_workflows(query)]


@pytest.fixture(scope="module")
def short_history_temporal() -> Iterator[str]:
    """A dev server that suggests continue-as-new after a few events, to exercise the carry-over."""
    extra = ["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=30"]
    with running_dev_server(extra_args=extra) as address:
        yield address


async def test_continues_as_new_keeping_dedup_and_counts(
    short_history_temporal: str, unique_team: str
) -> None:
    client = await connect_temporal(short_history_temporal, "default")
    settings = Settings(
        environment="test",
        temporal_address=short_history_temporal,
        task_queue=f"wf-{uuid.uuid4().hex[:10]}",
    )
    async with build_worker(client, settings):
        created = event(5, "new", version=1)
        handle = await start(client, settings, 5, unique_team, created)
        first_run = (await handle.describe()).run_id
        statuses = ["triaged", "in_progress", "waiting_on_requester", "in_progress"] * 5
        sent = [created]
        for version, status in enumerate(statuses, start=2):
            signal = event(5, status, version=version, action="x")
            sent.append(signal)
            await handle.signal(RequestLifecycleWorkflow.request_event, signal)
            # One workflow task per signal, so history grows as a long-lived request's would.
            await eventually(
                lambda: handle.query(RequestLifecycleWorkflow.state),
                lambda s, v=version: s.version == v,  # type: ignore[misc]
            )
        latest = client.get_workflow_handle_for(RequestLifecycleWorkflow.run, handle.id)
        # The run continues as new once its loop is free (it may be waiting on an SLA activity).
        await eventually(latest.describe, lambda d: d.run_id != first_run)
        # Events from before the continuation are still recognised as repeats.
        for old in sent[:3]:
            await latest.signal(RequestLifecycleWorkflow.request_event, old)
        state = await eventually(
            lambda: latest.query(RequestLifecycleWorkflow.state),
            lambda s: s.version == len(statuses) + 1,
        )
        assert state.events_seen == len(sent)
        assert state.status == statuses[-1]
        await latest.signal(
            RequestLifecycleWorkflow.request_event,
            event(5, "closed", version=len(statuses) + 2, action="reject"),
        )
        result = await asyncio.wait_for(latest.result(), timeout=15)
        assert (result.status, result.events_seen) == ("closed", len(sent) + 1)
