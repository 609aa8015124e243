"""The request workflow records each stopped clock's business time and stop instant (what the
intake stats aggregate), keeps the total across a reopen, and clears it while a clock runs."""

from __future__ import annotations

import asyncio

from temporalio.client import Client

from tests.workflows.test_sla_clocks import (
    FakeServices,
    event,
    eventually,
    policy,
    running_worker,
    start,
    wait_for,
)
from tests.workflows.test_sla_clocks import client as client
from tests.workflows.test_sla_clocks import fake as fake
from tests.workflows.test_sla_clocks import task_queue as task_queue


async def test_stopped_clocks_record_their_business_time(
    client: Client,
    fake: FakeServices,
    task_queue: str,
) -> None:
    fake.policies["P2"] = policy(first_response="PT1H", resolution="PT1H", thresholds=[])
    async with running_worker(client, task_queue, fake):
        run = await start(client, task_queue)
        await eventually(run.sla, lambda r: r.policy_id is not None)
        assert fake.records[-1].first_response_business_seconds is None
        await asyncio.sleep(1)
        triage = event(run.request_id, "triaged", version=2, from_status="new", action="triage")
        await run.send(triage)
        await wait_for(lambda: fake.records[-1].first_response_stopped_at is not None)
        first = fake.records[-1]
        assert first.first_response_stopped_at == triage.occurred_at
        expected = (triage.occurred_at - run.created_at).total_seconds()  # 24x7: wall = business
        assert first.first_response_business_seconds == expected
        assert first.resolution_business_seconds is None

        await asyncio.sleep(1)
        resolved = event(
            run.request_id, "resolved", version=3, from_status="triaged", action="resolve"
        )
        await run.send(resolved)
        await wait_for(lambda: fake.records[-1].resolution_stopped_at is not None)
        worked = (resolved.occurred_at - run.created_at).total_seconds()
        assert fake.records[-1].resolution_business_seconds == worked
        # Reopened: the clock runs again (nothing stopped to record) ...
        await asyncio.sleep(0.5)
        reopened = event(
            run.request_id, "in_progress", version=4, from_status="resolved", action="reopen"
        )
        await run.send(reopened)
        await wait_for(lambda: fake.records[-1].resolution_stopped_at is None)
        # ... and resolved again it records the total, the time while resolved excluded.
        await asyncio.sleep(1)
        again = event(
            run.request_id, "resolved", version=5, from_status="in_progress", action="resolve"
        )
        await run.send(again)
        await wait_for(lambda: fake.records[-1].resolution_stopped_at is not None)
        last = fake.records[-1]
        assert last.resolution_stopped_at == again.occurred_at
        total = worked + (again.occurred_at - reopened.occurred_at).total_seconds()
        assert last.resolution_business_seconds is not None
        assert abs(last.resolution_business_seconds - total) < 1e-3
        assert last.first_response_business_seconds == expected  # unchanged
        await run.handle.terminate("test done")
