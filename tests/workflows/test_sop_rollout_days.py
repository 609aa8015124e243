"""SopRolloutWorkflow on day-scale clocks, on the time-skipping test server: daily notices until
each org acknowledges, one escalation at the due time for the late org, nothing after it. The
activities are the real ones, calling the sop service and the gateway under uvicorn."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from services.common.identity import Role
from services.common.settings import Settings
from tests.service.sop_stack import SopStack, running_sop_stack
from workflows.contracts import RolloutOrgTarget, SopRolloutInput, SopRolloutSignal
from workflows.service_api import ServiceApi, make_http_client
from workflows.sop_approval import SopActivities
from workflows.sop_rollout import SopRolloutWorkflow

TEST_SERVER = Path(".venv/bin/temporal-test-server")
DAY = timedelta(days=1)


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


@pytest.fixture
async def stack(make_settings: Callable[..., Settings]) -> AsyncIterator[SopStack]:
    async with running_sop_stack(make_settings) as running:
        yield running


async def test_daily_notices_then_one_escalation_for_the_late_org(
    env: WorkflowEnvironment, stack: SopStack
) -> None:
    created = await stack.http.post(
        "/api/v1/sops",
        json={
            "key": "SOP-DAY-001",
            "title": "Chargeback rings",
            "owning_team": "risk-mining",
            "owner": "pm-owner",
            "approval_policy": {"stages": [{"name": "s", "approvers": ["r1"]}]},
            "content": "# Rings\n",
        },
        headers=stack.as_("analyst-1", role=Role.ANALYST),
    )
    assert created.status_code == 201, created.text
    sop_id = created.json()["id"]
    client = Client(
        env.client.service_client,
        namespace=env.client.namespace,
        data_converter=pydantic_data_converter,
    )
    start = await env.get_current_time()
    rollout_id = 900_000_000 + uuid.uuid4().int % 10**8

    def org(org_id: str, wave: int, starts: timedelta, due: timedelta) -> RolloutOrgTarget:
        return RolloutOrgTarget(
            org_id=org_id,
            lead_subject=f"lead-{org_id}",
            wave=wave,
            starts_at=start + starts,
            due_at=start + due,
        )

    http = make_http_client(stack.settings)
    task_queue = f"days-{uuid.uuid4().hex[:8]}"
    try:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[SopRolloutWorkflow],
            activities=SopActivities(ServiceApi(http=http, settings=stack.settings)).all(),
        ):
            handle = await client.start_workflow(
                SopRolloutWorkflow.run,
                SopRolloutInput(
                    rollout_id=rollout_id,
                    sop_id=sop_id,
                    sop_key="SOP-DAY-001",
                    version_number=1,
                    team="risk-mining",
                    owner="pm-owner",
                    orgs=[
                        org("india", 1, timedelta(0), 7 * DAY),
                        org("san-jose", 1, timedelta(0), 7 * DAY),
                        org("costa-rica", 2, 2 * DAY, 5 * DAY),
                    ],
                    reminder_interval_seconds=DAY.total_seconds(),
                ),
                id=f"sop-rollout-{rollout_id}",
                task_queue=task_queue,
            )
            await env.sleep(DAY + timedelta(hours=12))
            for org_id in ("india", "san-jose"):
                await handle.signal(
                    SopRolloutWorkflow.rollout_event,
                    SopRolloutSignal(event_id=f"ack-{org_id}", kind="acknowledged", org_id=org_id),
                )
            # A repeated acknowledgement (the outbox delivers at least once) is harmless.
            await handle.signal(
                SopRolloutWorkflow.rollout_event,
                SopRolloutSignal(event_id="ack-india", kind="acknowledged", org_id="india"),
            )
            await env.sleep(8 * DAY)
            state = await handle.query(SopRolloutWorkflow.state)
            by_org = {o.org_id: o for o in state.orgs}
            assert state.status == "in_progress"
            # India and San José: notices on day 0 and day 1, then they acknowledged.
            assert (by_org["india"].reminders_sent, by_org["india"].escalated) == (2, False)
            # Costa Rica (days 2..5): notices on days 2, 3 and 4, escalated once on day 5.
            assert (by_org["costa-rica"].reminders_sent, by_org["costa-rica"].escalated) == (
                3,
                True,
            )
            await handle.signal(
                SopRolloutWorkflow.rollout_event,
                SopRolloutSignal(event_id="ack-cr", kind="acknowledged", org_id="costa-rica"),
            )
            result = await handle.result()
            assert result.status == "completed"
    finally:
        await http.aclose()

    events = await stack.published(f"sop-rollout-{rollout_id}:costa-rica:")
    overdue = [e for e in events if e.type == "sop.rollout_overdue"]
    notices = sorted((e for e in events if e.type == "sop.reminder"), key=lambda e: e.occurred_at)
    assert len(overdue) == 1
    assert overdue[0].data["recipients"] == ["pm-owner", "lead-costa-rica"]
    # Business instants are workflow time: a day apart, the escalation at the due time.
    offsets = [round((e.occurred_at - start) / DAY, 1) for e in notices]
    assert offsets == [2.0, 3.0, 4.0]
    assert round((overdue[0].occurred_at - start) / DAY, 1) == 5.0
    trail = [e["kind"] for e in await stack.events(sop_id)]
    assert trail.count("rollout_reminder") == 2 + 2 + 3
    assert trail.count("rollout_escalated") == 1
