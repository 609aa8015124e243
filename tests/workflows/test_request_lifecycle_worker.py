"""`python -m workflows.worker` as a process: it serves the task queue and stops cleanly on a signal."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from datetime import UTC, datetime

import pytest

from services.common.temporal import connect_temporal
from workflows.contracts import (
    REQUEST_EVENT_SIGNAL,
    RequestEventSignal,
    RequestLifecycleInput,
)
from workflows.request_lifecycle import RequestLifecycleWorkflow


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_worker_process_runs_workflows_and_shuts_down_gracefully(
    temporal_address: str, signum: signal.Signals
) -> None:
    task_queue = f"proc-{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "RISKDESK_TEMPORAL_ADDRESS": temporal_address,
        "RISKDESK_TASK_QUEUE": task_queue,
        "RISKDESK_ENVIRONMENT": "test",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workflows.worker",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        client = await connect_temporal(temporal_address, "default")
        handle = await client.start_workflow(
            RequestLifecycleWorkflow.run,
            RequestLifecycleInput(
                request_id=1, team="t", request_type="other", priority="P3", status="new"
            ),
            id=f"request-proc-{uuid.uuid4().hex}",
            task_queue=task_queue,
            start_signal=REQUEST_EVENT_SIGNAL,
            start_signal_args=[
                RequestEventSignal(
                    event_id=str(uuid.uuid4()),
                    request_id=1,
                    kind="transitioned",
                    action="reject",
                    from_status="new",
                    to_status="closed",
                    priority="P3",
                    actor="test",
                    occurred_at=datetime.now(UTC),
                    version=2,
                )
            ],
        )
        # Only a running worker on the queue can complete it.
        result = await asyncio.wait_for(handle.result(), timeout=30)
        assert result.status == "closed"

        process.send_signal(signum)
        assert process.stderr is not None
        logged = (await asyncio.wait_for(process.stderr.read(), timeout=20)).decode()
        assert await asyncio.wait_for(process.wait(), timeout=20) == 0, logged[-3000:]
        assert '"worker_started"' in logged
        assert '"worker_stopped"' in logged
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
