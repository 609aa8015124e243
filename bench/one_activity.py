"""The yardstick of bench/workflow_throughput.py: a workflow that runs one no-op activity.

`python -m bench.one_activity <temporal address> <task queue>` runs a worker for it in its own
process, with the same sandbox runner as `riskdesk worker`, until SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

WORKFLOW_NAME = "BenchOneActivityWorkflow"


@activity.defn(name="bench_noop")
async def noop(value: int) -> int:
    """Return the value: the cheapest activity there is."""
    return value


@workflow.defn(name=WORKFLOW_NAME)
class OneActivityWorkflow:
    """Run the no-op activity once and return its result."""

    @workflow.run
    async def run(self, value: int) -> int:
        """One activity, then done."""
        result: int = await workflow.execute_activity(
            noop, value, start_to_close_timeout=timedelta(seconds=30)
        )
        return result


async def serve(address: str, task_queue: str) -> None:
    """Run a worker for the one-activity workflow until SIGTERM/SIGINT."""
    from workflows.sandbox import workflow_runner

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    client = await Client.connect(address)
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[OneActivityWorkflow],
        activities=[noop],
        workflow_runner=workflow_runner(),
    ):
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], sys.argv[2]))
    # As `riskdesk worker` does: skip interpreter teardown, where the SDK's threads can abort.
    os._exit(0)
