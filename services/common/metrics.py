"""Prometheus metrics shared by every riskdesk process: HTTP latency by route, outbox lag, `/metrics`.

Each app gets its own `CollectorRegistry` (`new_registry`), so several apps in one process (tests,
`riskdesk up` in-process helpers) never collide on metric names. Labels are bounded: `route` is the
matched route template (`/api/v1/requests/{request_id}`), never the raw path, and anything no route
matched is `unmatched`. The outbox gauges are refreshed from the database when `/metrics` is scraped,
so they are as fresh as the scrape and cost nothing between scrapes.

Domain-free: the gateway passes its own `route_label` to name forwarded calls.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Gauge,
    Histogram,
    generate_latest,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.outbox import OutboxMixin, outbox_backlog

log = structlog.get_logger(__name__)

METRICS_PATH = "/metrics"
UNMATCHED = "unmatched"
# Latency buckets from 5 ms (a cached read) to 10 s (the gateway's default upstream timeout).
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

RouteLabel = Callable[[Scope], str | None]


def new_registry(*, process_collectors: bool = True) -> CollectorRegistry:
    """A registry of its own for one app or process, with the process/GC/platform collectors."""
    registry = CollectorRegistry()
    if process_collectors:
        # The default collectors are instances bound to the global registry; registering the
        # same instances here exposes the same process figures without touching that registry.
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)
    return registry


def route_template(scope: Scope) -> str:
    """The route template Starlette/FastAPI matched for this request, or `unmatched`."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str) and path:
        return path
    # FastAPI puts only its APIRoutes in the scope; a plain Starlette route (openapi.json, docs,
    # the gateway's forwarder) leaves its endpoint there: find its route among the app's own.
    endpoint = scope.get("endpoint")
    if endpoint is not None:
        for route in getattr(scope.get("app"), "routes", ()):
            if getattr(route, "endpoint", None) is endpoint:
                path = getattr(route, "path", None)
                if isinstance(path, str) and path:
                    return path
    return UNMATCHED


class AppMetrics:
    """The metrics of one service app: the HTTP histogram and the outbox gauges."""

    def __init__(self, *, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry if registry is not None else new_registry()
        self.http_duration = Histogram(
            "riskdesk_http_request_duration_seconds",
            "HTTP request duration by service, method, matched route template and status.",
            ("service", "method", "route", "status"),
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        self.outbox_pending = Gauge(
            "riskdesk_outbox_pending",
            "Outbox rows not yet delivered to Temporal (read from the database at scrape time).",
            ("service",),
            registry=self.registry,
        )
        self.outbox_oldest_age = Gauge(
            "riskdesk_outbox_oldest_age_seconds",
            "Age of the oldest undelivered outbox row; 0 when none is pending, NaN when the "
            "database could not be read.",
            ("service",),
            registry=self.registry,
        )

    def observe(self, *, method: str, route: str, status: int, seconds: float) -> None:
        """Record one HTTP call."""
        self.http_duration.labels(self.service, method, route, str(status)).observe(seconds)

    async def refresh_outbox(
        self, sessionmaker: async_sessionmaker[AsyncSession], model: type[OutboxMixin]
    ) -> None:
        """Read the outbox backlog into the gauges; a database error shows as NaN, not a 500."""
        try:
            async with sessionmaker() as session:
                backlog = await outbox_backlog(session, model)
        except Exception as exc:
            log.warning("metrics_outbox_unavailable", error=repr(exc))
            self.outbox_pending.labels(self.service).set(math.nan)
            self.outbox_oldest_age.labels(self.service).set(math.nan)
            return
        self.outbox_pending.labels(self.service).set(backlog.pending)
        self.outbox_oldest_age.labels(self.service).set(backlog.oldest_age_seconds or 0.0)


class HttpMetricsMiddleware:
    """Pure ASGI middleware timing every HTTP call into `AppMetrics.http_duration`.

    The route label is read after the call, when routing has put the matched route in the scope;
    `route_label` may name a call first (the gateway's forwarded calls), else the template is used.
    """

    def __init__(
        self, app: ASGIApp, *, metrics: AppMetrics, route_label: RouteLabel | None = None
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.route_label = route_label

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == METRICS_PATH:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # An exception escaping the app becomes a 500 outside this middleware.
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            label = self.route_label(scope) if self.route_label is not None else None
            self.metrics.observe(
                method=scope.get("method", ""),
                route=label or route_template(scope),
                status=status,
                seconds=time.perf_counter() - started,
            )


def render(registry: CollectorRegistry) -> Response:
    """The registry in the Prometheus text exposition format."""
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def metrics_endpoint(
    metrics: AppMetrics, refresh: Callable[[], Awaitable[None]] | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint that refreshes scrape-time gauges, then renders the registry."""

    async def endpoint(_request: Request) -> Response:
        """Prometheus metrics of this process (text exposition format); no credentials needed."""
        if refresh is not None:
            await refresh()
        return render(metrics.registry)

    return endpoint
