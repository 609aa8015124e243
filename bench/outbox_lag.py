"""Outbox lag: from a filing's commit to its signal reaching the request's workflow.

The parts as processes (bench/sla_lateness.py's `LocalParts`): PostgreSQL (a scratch database),
a Temporal dev server in memory, the gateway and intake (`riskdesk serve`) and one worker, with
the default outbox settings (poll every 1 s, and a commit that enqueued wakes the dispatcher at
once). Partners file through the gateway at a sustained `rate` a second (paced on a schedule, not
after each answer) for `seconds`. For every request, from the workflow's history:

- recorded: the `WorkflowExecutionSignaled` event of its creation (Temporal accepted the signal
  the dispatcher sent) minus the request's `created_at` (stamped in the committing transaction);
- applied: the first `WorkflowTaskCompleted` after that signal (the worker ran the workflow code
  that applied it) minus `created_at`.

    python -m bench outbox_lag
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError

from bench import machine
from bench.scratch_pg import scratch_database
from bench.sla_lateness import (
    create_partner,
    instant,
    parts_environment,
    percentiles,
    running_parts,
)
from riskdesk.temporal_server import running_dev_server
from services.common.temporal import connect_temporal


@dataclass
class Options:
    """What `python -m bench outbox_lag` runs."""

    rate: float = 20.0
    seconds: float = 30.0


async def _lags(temporal: Client, request_id: int, created_at: datetime) -> tuple[float, float]:
    """(recorded, applied) seconds after `created_at` for the request's first signal."""
    handle = temporal.get_workflow_handle(f"request-{request_id}")
    signalled: datetime | None = None
    async for event in handle.fetch_history_events():
        if signalled is None and event.event_type == (
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        ):
            signalled = event.event_time.ToDatetime().replace(tzinfo=created_at.tzinfo)
        elif signalled is not None and event.event_type == (
            EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        ):
            applied = event.event_time.ToDatetime().replace(tzinfo=created_at.tzinfo)
            return (
                (signalled - created_at).total_seconds(),
                (applied - created_at).total_seconds(),
            )
    raise LookupError(f"request-{request_id}: no applied signal yet")


async def _file_paced(
    client: httpx.AsyncClient, key: str, options: Options, refused: dict[int, int]
) -> tuple[dict[int, datetime], float]:
    """File at the rate; (created_at by request id, rate achieved); counts answers in `refused`."""
    created: dict[int, datetime] = {}
    total = int(options.rate * options.seconds)
    interval = 1 / options.rate
    started = time.monotonic()

    async def file(number: int) -> None:
        body = {
            "request_type": "mo_investigation",
            "title": f"Outbox lag probe {number} {uuid.uuid4().hex[:6]}",
            "priority": "P3",
        }
        response = await client.post(
            "/api/v1/requests", json=body, headers={"Authorization": f"Bearer {key}"}
        )
        refused[response.status_code] = refused.get(response.status_code, 0) + 1
        if response.status_code == 201:
            made = response.json()
            created[int(made["id"])] = instant(made["created_at"])

    tasks = []
    for number in range(total):
        delay = started + number * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(file(number)))
    await asyncio.gather(*tasks)
    return created, total / (time.monotonic() - started)


async def measure(options: Options) -> dict[str, Any]:
    """Run the parts, file at the rate, read every workflow's history; the result document."""
    result: dict[str, Any] = {"machine": machine.describe()}
    with (
        tempfile.TemporaryDirectory(prefix="riskdesk-bench-") as scratch,
        running_dev_server() as temporal_address,
    ):
        async with scratch_database("riskdesk_bench_lag") as database_url:
            env = parts_environment(
                Path(scratch) / "data",
                temporal_address=temporal_address,
                database_url=database_url,
                worker_metrics_port="0",
                # The defaults, not the tests' fast polling: what production runs.
                outbox_poll_seconds="1.0",
                outbox_max_backoff_seconds="30",
                service_timeout_seconds="30",
            )
            async with (
                running_parts(env) as parts,
                httpx.AsyncClient(
                    base_url=parts.gateway_url, timeout=30, trust_env=False
                ) as client,
            ):
                partner = await create_partner(client, parts.admin_key, "bench-lag")
                pids = {name: p.pid for name, p in parts.processes.items()}
                window = machine.CpuWindow(pids=pids)
                window.start()
                answers: dict[int, int] = {}
                created, achieved = await _file_paced(client, partner, options, answers)
                cpu = window.stop()
                temporal = await connect_temporal(temporal_address, "default")
                recorded: list[float] = []
                applied: list[float] = []
                deadline = time.monotonic() + 120
                pending = dict(created)
                while pending and time.monotonic() < deadline:
                    for request_id, at in list(pending.items()):
                        try:
                            signal_lag, apply_lag = await _lags(temporal, request_id, at)
                        except (LookupError, RPCError):  # not signalled or not applied yet
                            continue
                        recorded.append(signal_lag)
                        applied.append(apply_lag)
                        del pending[request_id]
                    if pending:
                        await asyncio.sleep(1)
    result["setup"] = (
        "PostgreSQL (scratch database, same machine), Temporal dev server in memory, gateway + "
        "intake (`riskdesk serve`, one uvicorn worker each) and one `riskdesk worker`; default "
        "outbox settings (poll 1 s, woken by each commit that enqueued); filings through the "
        "gateway paced on a schedule by an httpx client in the bench process"
    )
    result["filings"] = {
        "rate_asked_per_second": options.rate,
        "rate_achieved_per_second": round(achieved, 1),
        "requests": len(created),
        "answers_by_status": {str(code): n for code, n in sorted(answers.items())},
        "never_applied": len(pending),
    }
    result["commit_to_signal_recorded"] = percentiles(recorded)
    result["commit_to_signal_applied_by_workflow"] = percentiles(applied)
    result["cpu_while_filing"] = cpu
    return result


def run(options: Options) -> dict[str, Any]:
    """The benchmark, as `python -m bench outbox_lag` records it."""
    return asyncio.run(measure(options))
