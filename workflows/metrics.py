"""The worker's metrics: the Temporal SDK's own, and riskdesk's counters from its activities.

Two endpoints, one port each (both bound to `127.0.0.1` unless `worker_metrics_host` says else):

- `worker_metrics_port` (default 9464): the Temporal SDK's Prometheus exporter, with every metric
  prefixed `riskdesk_worker_` — workflow and activity task counts, failures and latencies
  (`riskdesk_worker_workflow_completed`, `riskdesk_worker_workflow_failed`,
  `riskdesk_worker_activity_execution_failed`, `riskdesk_worker_activity_execution_latency`, ...).
- `worker_metrics_port + 1`: prometheus_client's exporter of `WORKER_REGISTRY`:
  `riskdesk_notifications_total{channel, outcome}` and `riskdesk_sla_breaches_total`, plus the
  process collectors.

`worker_metrics_port = 0` disables both. The SDK exporter lives in the Temporal core (Rust) and
cannot share prometheus_client's registry, hence two ports.

Workflow modules import this one through `workflow.unsafe.imports_passed_through()`: the sandbox
must not re-run it (it would register the counters a second time).
"""

from __future__ import annotations

import structlog
from prometheus_client import Counter, start_http_server
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from services.common.metrics import new_registry
from services.common.settings import Settings

log = structlog.get_logger(__name__)

WORKER_METRIC_PREFIX = "riskdesk_worker_"

WORKER_REGISTRY = new_registry()
NOTIFICATIONS = Counter(
    "riskdesk_notifications",
    "Notification delivery attempts by channel (webhook, email) and outcome (delivered, failed).",
    ("channel", "outcome"),
    registry=WORKER_REGISTRY,
)
SLA_BREACHES = Counter(
    "riskdesk_sla_breaches",
    "SLA breach events handed to the gateway's notifications (one per clock and generation).",
    registry=WORKER_REGISTRY,
)

# One exporter per port per process: a second worker built in the same process reuses them.
_runtimes: dict[str, Runtime] = {}
_served: set[str] = set()


def temporal_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime exporting the SDK's metrics on `worker_metrics_port`, or None if off.

    A port already taken (another worker on this host) is logged and the worker runs without the
    SDK's metrics rather than not at all.
    """
    if settings.worker_metrics_port == 0:
        return None
    address = f"{settings.worker_metrics_host}:{settings.worker_metrics_port}"
    if address not in _runtimes:
        try:
            _runtimes[address] = Runtime(
                telemetry=TelemetryConfig(
                    metrics=PrometheusConfig(bind_address=address),
                    metric_prefix=WORKER_METRIC_PREFIX,
                )
            )
        except Exception as exc:
            log.warning("worker_metrics_unavailable", address=address, error=repr(exc))
            return None
    return _runtimes[address]


def serve_worker_registry(settings: Settings) -> None:
    """Serve `WORKER_REGISTRY` on `worker_metrics_port + 1` (once per process; 0 disables)."""
    if settings.worker_metrics_port == 0:
        return
    host, port = settings.worker_metrics_host, settings.worker_metrics_port + 1
    address = f"{host}:{port}"
    if address in _served:
        return
    try:
        # A daemon thread for the process's lifetime; it dies with the worker.
        start_http_server(port, addr=host, registry=WORKER_REGISTRY)
    except OSError as exc:
        log.warning("worker_metrics_unavailable", address=address, error=repr(exc))
        return
    _served.add(address)
