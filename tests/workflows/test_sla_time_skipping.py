"""An hours-long SLA on the India business calendar, on Temporal's time-skipping test server:
the warning and the breach land on the business instants `business_time` computes, days later."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from services.common.business_time import Calendar, add
from tests.workflows.test_sla_clocks import FakeServices, event, policy
from workflows.contracts import REQUEST_EVENT_SIGNAL, RequestLifecycleInput, SlaReport
from workflows.request_lifecycle import RequestLifecycleWorkflow
from workflows.sandbox import workflow_runner
from workflows.search_attributes import ALL_KEYWORDS

INDIA = {
    "timezone": "Asia/Kolkata",
    "hours": {day: [["09:30", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": {"country": "IN", "subdivision": None},
    "closed_dates": [],
}
TEST_SERVER = Path(".venv/bin/temporal-test-server")


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    path = TEST_SERVER if TEST_SERVER.is_file() else shutil.which("temporal-test-server")  # noqa: ASYNC240
    if path is None:
        pytest.skip("temporal-test-server is not installed")
    environment = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(path))
    try:
        yield environment
    finally:
        await environment.shutdown()


async def test_an_hours_long_policy_on_the_india_calendar(env: WorkflowEnvironment) -> None:
    # The test server knows no custom search attributes until they are registered.
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
    fake = FakeServices(
        policies={"P2": policy(first_response="PT4H", resolution="PT16H", calendar=INDIA)}
    )
    task_queue = f"skip-{uuid.uuid4().hex[:8]}"
    created = await env.get_current_time()
    request_id = 4242
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
            id=f"request-skip-{uuid.uuid4().hex}",
            task_queue=task_queue,
            start_signal=REQUEST_EVENT_SIGNAL,
            start_signal_args=[event(request_id, "new", version=1, kind="created", at=created)],
        )
        # Four calendar weeks is more than 16 business hours plus any Indian holiday run.
        await env.sleep(timedelta(days=28))
        report: SlaReport = await handle.query(RequestLifecycleWorkflow.sla)
        calendar = Calendar.from_spec(INDIA)
        for name, hours in (("first_response", 4), ("resolution", 16)):
            due = add(calendar, created, timedelta(hours=hours))
            warning_at = add(calendar, created, timedelta(hours=hours / 2))
            prefix = f"request-{request_id}:{name}"
            ids = [e.value.event_id for e in fake.events if e.value.event_id.startswith(prefix)]
            assert ids == [f"{prefix}:warning:50:0", f"{prefix}:breached:0"]
            warning, breach = (e.value for e in fake.events if e.value.event_id in ids)
            assert warning.occurred_at == warning_at
            assert breach.occurred_at == due
            assert breach.data["breached_at"] == due.isoformat()
            clock = next(c for c in report.clocks if c.name == name)
            assert (clock.state, clock.due_at, clock.breached_at) == ("breached", due, due)
            # The deadline is a business instant: inside India's 09:30-18:00, on a working day.
            local = due.astimezone(calendar.zone)
            assert calendar.is_open_on(local.date())
            assert (9, 30) < (local.hour, local.minute) <= (18, 0)
        # 16 business hours is two full India days, so it is never met the same day.
        assert report.clocks[1].due_at is not None
        assert report.clocks[1].due_at - created > timedelta(hours=16)
        await handle.terminate("test done")
