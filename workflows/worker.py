"""The worker process: runs every riskdesk workflow and activity on `settings.task_queue`.

`python -m workflows.worker` (or `riskdesk worker`) reads settings from the environment, connects
to Temporal (retrying until it answers), and runs until SIGINT/SIGTERM, then shuts down gracefully:
it stops polling and lets running tasks finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from services.common.logging import configure_logging
from services.common.settings import Settings, get_settings
from services.common.temporal import connect_temporal
from services.common.tracing import (
    configure_tracing,
    shutdown_tracing,
    temporal_worker_interceptors,
)
from workflows.aging_sweep import (
    AgingActivities,
    AgingSweepWorkflow,
    ensure_aging_sweep_schedule,
)
from workflows.escalation import EscalationActivities, EscalationWorkflow
from workflows.metrics import serve_worker_registry, temporal_runtime
from workflows.mo_embedding import (
    MoEmbeddingActivities,
    MoEmbeddingWorkflow,
    RequestMoMatchingWorkflow,
)
from workflows.notification_delivery import NotificationActivities, SubscriptionDeliveryWorkflow
from workflows.request_lifecycle import RequestLifecycleWorkflow, SlaActivities
from workflows.rule_deprecation import RuleDeprecationActivities, RuleDeprecationWorkflow
from workflows.sandbox import workflow_runner
from workflows.service_api import ServiceApi, make_http_client
from workflows.sop_approval import SopActivities, SopApprovalWorkflow
from workflows.sop_rollout import (
    SopReviewSweepWorkflow,
    SopRolloutWorkflow,
    ensure_sop_review_schedule,
)
from workflows.weekly_report import (
    WeeklyReportActivities,
    WeeklyReportWorkflow,
    ensure_weekly_report_schedule,
)

log = structlog.get_logger(__name__)

WORKFLOWS: Sequence[type] = (
    RequestLifecycleWorkflow,
    SubscriptionDeliveryWorkflow,
    RuleDeprecationWorkflow,
    SopApprovalWorkflow,
    SopRolloutWorkflow,
    SopReviewSweepWorkflow,
    EscalationWorkflow,
    AgingSweepWorkflow,
    MoEmbeddingWorkflow,
    RequestMoMatchingWorkflow,
    WeeklyReportWorkflow,
)
GRACEFUL_SHUTDOWN = timedelta(seconds=10)
MAX_CONNECT_BACKOFF_SECONDS = 10.0


def build_worker(client: Client, settings: Settings) -> Worker:
    """A worker on `settings.task_queue` with every workflow and activity registered."""
    # One HTTP client for every activity, for the worker's lifetime (closed with the process).
    api = ServiceApi(http=make_http_client(settings), settings=settings)
    activities: list[Callable[..., Any]] = []
    activities.extend(NotificationActivities(api).activities())
    activities.extend(SlaActivities(api).all())
    activities.extend(SopActivities(api).all())
    activities.extend(RuleDeprecationActivities(api).all())
    activities.extend(EscalationActivities(api).all())
    activities.extend(AgingActivities(api).all())
    activities.extend(WeeklyReportActivities(api).all())
    activities.extend(MoEmbeddingActivities(api).all())
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=list(WORKFLOWS),
        activities=activities,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        workflow_runner=workflow_runner(),
        # Tracing on and a client made without it (tests): the worker adds it itself.
        interceptors=temporal_worker_interceptors(client),
    )


async def _connect(settings: Settings, stop: asyncio.Event) -> Client | None:
    # The worker may start before Temporal listens (`riskdesk up`, compose): retry, don't die.
    delay = 0.5
    runtime = temporal_runtime(settings)
    while not stop.is_set():
        try:
            return await connect_temporal(
                settings.temporal_address, settings.temporal_namespace, runtime=runtime
            )
        except Exception as exc:
            log.warning(
                "temporal_connect_failed", address=settings.temporal_address, error=repr(exc)
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        delay = min(delay * 2, MAX_CONNECT_BACKOFF_SECONDS)
    return None


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run the worker until SIGINT/SIGTERM (or until `stop` is set), then shut down gracefully."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
        except (NotImplementedError, RuntimeError):
            # Not the main thread (or not a Unix loop): the caller stops us with `stop`.
            pass
    try:
        client = await _connect(settings, stop)
        if client is None:
            return
        worker = build_worker(client, settings)
        serve_worker_registry(settings)
        try:
            await ensure_sop_review_schedule(client, task_queue=settings.task_queue)
        except Exception as exc:
            # The daily SOP review sweep is not worth failing the worker for; the next start retries.
            log.warning("sop_review_schedule_failed", error=repr(exc))
        try:
            await ensure_aging_sweep_schedule(client, task_queue=settings.task_queue)
        except Exception as exc:
            # Like the SOP review sweep: not worth failing the worker for; the next start retries.
            log.warning("aging_sweep_schedule_failed", error=repr(exc))
        try:
            await ensure_weekly_report_schedule(client, task_queue=settings.task_queue)
        except Exception as exc:
            # Like the other schedules: not worth failing the worker for; the next start retries.
            log.warning("weekly_report_schedule_failed", error=repr(exc))
        log.info(
            "worker_started", task_queue=settings.task_queue, address=settings.temporal_address
        )
        async with worker:
            await stop.wait()
            log.info("worker_stopping", task_queue=settings.task_queue)
        log.info("worker_stopped", task_queue=settings.task_queue)
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def main() -> None:
    """Entry point of `python -m workflows.worker`."""
    settings = get_settings()
    configure_logging(service="worker", level=settings.log_level, json=settings.log_json)
    configure_tracing(settings, process="worker")
    asyncio.run(run_worker(settings))
    # The worker has shut down gracefully; what is left is interpreter finalisation, during which
    # the Temporal core's native threads sometimes crash the process (SIGSEGV/SIGABRT, seen in
    # tests), turning a clean stop into a failure exit. Nothing remains to clean up: exit now.
    shutdown_tracing()  # os._exit skips atexit: flush the last spans first
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
