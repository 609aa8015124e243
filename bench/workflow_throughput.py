"""Workflow throughput: real request lifecycles against a one-activity workflow, same dev server.

Both are measured as a backlog drain, so the engine and the worker are measured rather than the
HTTP filing: the work is queued while no worker polls, then one worker process starts and the
rate is (completions - 1) / (last close - first close), from Temporal's visibility.

- one-activity: `3 x workflows` runs of bench/one_activity.py's workflow (one no-op activity),
  started by the bench client; its worker is `python -m bench.one_activity`.
- request lifecycle: `workflows` requests filed through the gateway and worked to `closed`
  (triage, start, resolve, close: five events, so five signals each, delivered by intake's outbox)
  while `riskdesk worker` is stopped; then it starts. Each `RequestLifecycleWorkflow` also runs
  its real activities (resolving the SLA policy at the gateway, recording the SLA on intake).

Parts: PostgreSQL (scratch database), a Temporal dev server in memory, gateway and intake
(`riskdesk serve`), one worker.

    python -m bench workflow_throughput
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from bench import machine
from bench.one_activity import WORKFLOW_NAME, OneActivityWorkflow
from bench.scratch_pg import scratch_database
from bench.sla_lateness import api, create_partner, parts_environment, running_parts
from riskdesk.temporal_server import running_dev_server
from services.common.temporal import connect_temporal

LIFECYCLE = "RequestLifecycleWorkflow"
ACTIONS = ("triage", "start", "resolve")
CONCURRENCY = 8


@dataclass
class Options:
    """What `python -m bench workflow_throughput` runs."""

    workflows: int = 200


async def _drain_rate(
    temporal: Client, workflow_type: str, expected: int, *, within: float = 600
) -> dict[str, Any]:
    """Wait until `expected` runs of the type completed; their completion rate."""
    query = f"WorkflowType = '{workflow_type}' AND ExecutionStatus = 'Completed'"
    deadline = time.monotonic() + within
    while (await temporal.count_workflows(query)).count < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{workflow_type}: not all {expected} completed in {within} s")
        await asyncio.sleep(1)
    closes: list[datetime] = [
        run.close_time async for run in temporal.list_workflows(query) if run.close_time
    ]
    closes.sort()
    span = (closes[-1] - closes[0]).total_seconds()
    return {
        "workflows": len(closes),
        "drain_seconds": round(span, 2),
        "completed_per_second": round((len(closes) - 1) / span, 1) if span > 0 else None,
    }


async def _one_activity(temporal: Client, address: str, count: int) -> dict[str, Any]:
    task_queue = f"bench-one-{uuid.uuid4().hex[:6]}"
    limit = asyncio.Semaphore(32)

    async def start(number: int) -> None:
        async with limit:
            await temporal.start_workflow(
                OneActivityWorkflow.run,
                number,
                id=f"bench-one-{number}-{uuid.uuid4().hex[:6]}",
                task_queue=task_queue,
            )

    await asyncio.gather(*(start(n) for n in range(count)))
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.one_activity",
        address,
        task_queue,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        window = machine.CpuWindow(pids={"worker": worker.pid})
        window.start()
        rate = await _drain_rate(temporal, WORKFLOW_NAME, count)
        rate["cpu"] = window.stop()
        return rate
    finally:
        worker.terminate()
        await asyncio.wait_for(worker.wait(), timeout=30)


async def _lifecycles(
    client: httpx.AsyncClient, partner: str, admin: str, count: int
) -> tuple[int, int]:
    """File `count` requests and work each to closed; (requests, events) written."""
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(number: int) -> None:
        async with limit:
            body = {"request_type": "data_request", "title": f"Throughput {number}"}
            made = await api(client, "POST", "/api/v1/requests", partner, expect=201, json=body)
            path = f"/api/v1/requests/{made['id']}/transitions"
            for action in ACTIONS:
                await api(client, "POST", path, admin, json={"action": action})
            await api(client, "POST", path, partner, json={"action": "close"})

    await asyncio.gather(*(one(n) for n in range(count)))
    return count, count * (len(ACTIONS) + 2)


async def _outbox_drained(intake_url: str, *, within: float = 300) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=5, trust_env=False) as http:
        while (await http.get(f"{intake_url}/readyz")).json()["outbox_pending"]:
            if time.monotonic() > deadline:
                raise RuntimeError("intake's outbox did not drain")
            await asyncio.sleep(0.5)


async def measure(options: Options) -> dict[str, Any]:
    """Both drains on one dev server; the result document."""
    result: dict[str, Any] = {"machine": machine.describe()}
    with (
        tempfile.TemporaryDirectory(prefix="riskdesk-bench-") as scratch,
        running_dev_server() as temporal_address,
    ):
        temporal = await connect_temporal(temporal_address, "default")
        result["one_activity"] = await _one_activity(
            temporal, temporal_address, 3 * options.workflows
        )
        async with scratch_database("riskdesk_bench_wf") as database_url:
            env = parts_environment(
                Path(scratch) / "data",
                temporal_address=temporal_address,
                database_url=database_url,
                worker_metrics_port="0",
            )
            async with (
                running_parts(env) as parts,
                httpx.AsyncClient(
                    base_url=parts.gateway_url, timeout=30, trust_env=False
                ) as client,
            ):
                partner = await create_partner(client, parts.admin_key, "bench-throughput")
                parts.kill("worker")
                started = time.monotonic()
                requests, events = await _lifecycles(
                    client, partner, parts.admin_key, options.workflows
                )
                filing_seconds = time.monotonic() - started
                await _outbox_drained(parts.url_of("intake"))
                await parts.restart_worker()
                window = machine.CpuWindow(
                    pids={name: p.pid for name, p in parts.processes.items()}
                )
                window.start()
                lifecycle = await _drain_rate(temporal, LIFECYCLE, requests)
                lifecycle["cpu"] = window.stop()
                lifecycle["events_per_workflow"] = events // requests
                lifecycle["queued_in_seconds"] = round(filing_seconds, 1)
                result["request_lifecycle"] = lifecycle
    one = result["one_activity"]["completed_per_second"] or 0.0
    real = result["request_lifecycle"]["completed_per_second"] or 0.0
    result["ratio_lifecycle_to_one_activity"] = round(real / one, 3) if one else None
    result["setup"] = (
        "backlog drains on one Temporal dev server (in memory): work queued with no worker "
        "polling, then one worker process starts; rate = completions over first-to-last close. "
        "PostgreSQL scratch database, gateway + intake `riskdesk serve`, one `riskdesk worker`."
    )
    return result


def run(options: Options) -> dict[str, Any]:
    """The benchmark, as `python -m bench workflow_throughput` records it."""
    return asyncio.run(measure(options))
