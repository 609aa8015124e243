"""OpenTelemetry traces across gateway → service → workflow → activity → service (opt-in).

`RISKDESK_OTEL_ENABLED=true` makes `configure_tracing` install one SDK tracer provider per process
(OTLP over HTTP/protobuf, console, or no exporter), also OpenTelemetry's global one, and turns on:

- FastAPI's native telemetry (FastAPI >= 0.16x): a SERVER span per HTTP call, child of the
  caller's W3C `traceparent`, with operation spans for dependencies, endpoint and serialization;
  `RequestIdSpanMiddleware` adds the request id to it, and health/metrics probes are excluded;
- `inject_traceparent` in the gateway's forwarder and `inject_into` in the worker's `ServiceApi`,
  so the next hop's server span is a child of this one;
- temporalio's own `TracingInterceptor` on every Temporal client and worker, which carries the
  context through workflow and activity headers;
- the outbox row keeps the `traceparent` of the request that wrote it and the dispatcher sends the
  signal-with-start inside that context: the workflow joins the request's trace although it is
  started later, from a background task.

Why no opentelemetry-instrumentation-fastapi/-asgi/-httpx: FastAPI already makes the server spans
once a provider is installed, and the httpx instrumentation patches every client globally, adding
span work to the gateway's forwarding path and rewriting its raw header list; one header written
where we already build headers is all propagation needs. Fewer packages, nothing monkeypatched.

Off (the default), nothing here imports OpenTelemetry's SDK, no provider, middleware or
interceptor is installed, and every hook is one check of `tracing_enabled()`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from fastapi.telemetry import TelemetryConfig
from starlette.types import ASGIApp, Receive, Scope, Send

from services.common.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer
    from temporalio.client import Client
    from temporalio.client import Interceptor as ClientInterceptor
    from temporalio.worker import Interceptor as WorkerInterceptor

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_PROPAGATION_HEADERS = frozenset({TRACEPARENT.encode(), TRACESTATE.encode()})
INSTRUMENTATION_NAME = "riskdesk"
REQUEST_ID_ATTRIBUTE = "riskdesk.request_id"
# Paths probed every few seconds by the platform: a span each would drown the real traffic.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in UNTRACED_PATHS


class _State:
    """The process's tracing state: set once by `configure_tracing`."""

    enabled: bool = False
    provider: TracerProvider | None = None
    tracer: Tracer | None = None


_state = _State()


def tracing_enabled() -> bool:
    """Whether this process traces (the one check every hook makes first)."""
    return _state.enabled


def configure_tracing(
    settings: Settings,
    *,
    process: str,
    exporter: SpanExporter | None = None,
    set_global: bool = True,
) -> bool:
    """Make the tracer provider once per process when tracing is enabled; True if it is on.

    `exporter` replaces the configured one (tests pass the SDK's InMemorySpanExporter). Later
    calls (several apps in one process, the worker and a service in a test) reuse the provider.
    Every riskdesk hook uses the provider explicitly; `set_global` also makes it OpenTelemetry's
    global one, for any other library's tracer (a test leaves it off: the global is set-once).
    """
    if not settings.otel_enabled:
        return False
    if _state.enabled:
        return True
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    name = settings.otel_service_name or f"riskdesk-{process}"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif settings.otel_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(settings.otel_endpoint)))
    elif settings.otel_exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    if set_global:
        trace.set_tracer_provider(provider)
    _state.provider = provider
    _state.tracer = provider.get_tracer(INSTRUMENTATION_NAME)
    _state.enabled = True
    return True


def fastapi_telemetry(tracing: bool) -> TelemetryConfig:
    """`FastAPI(telemetry=...)`: its native server spans on our provider, minus the probes.

    Off, FastAPI is left as it is (its telemetry stays idle while no provider is installed).
    """
    if not tracing or _state.provider is None:
        return {}
    return {"tracer_provider": _state.provider, "exclude": _untraced}


def shutdown_tracing() -> None:
    """Flush and stop the provider; tracing is off for the rest of the process."""
    provider = _state.provider
    _state.enabled = False
    _state.provider = None
    _state.tracer = None
    if provider is not None:
        provider.shutdown()


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span (None when off or outside any span)."""
    if not _state.enabled:
        return None
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get(TRACEPARENT)


def inject_traceparent(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Raw ASGI-style headers with the current context's traceparent (any incoming one replaced).

    The gateway's forwarder calls it only when tracing is on: its header list otherwise goes out
    exactly as before.
    """
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    kept = [(name, value) for name, value in headers if name not in _PROPAGATION_HEADERS]
    kept.extend((name.encode(), value.encode("latin-1")) for name, value in carrier.items())
    return kept


def inject_into(headers: dict[str, str]) -> None:
    """Add the current context's traceparent to a header dict (no-op when off)."""
    if not _state.enabled:
        return
    from opentelemetry.propagate import inject

    inject(headers)


@contextlib.contextmanager
def continued_from(traceparent: str | None) -> Iterator[None]:
    """Run the block inside the context a stored traceparent names (the outbox dispatcher)."""
    if not _state.enabled or not traceparent:
        yield
        return
    from opentelemetry import context
    from opentelemetry.propagate import extract

    token = context.attach(extract({TRACEPARENT: traceparent}))
    try:
        yield
    finally:
        context.detach(token)


def temporal_client_interceptors() -> list[ClientInterceptor]:
    """Interceptors for `Client.connect`: temporalio's TracingInterceptor when tracing is on.

    On a client it also applies to every worker made with that client.
    """
    if not _state.enabled:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(_state.tracer)]


def temporal_worker_interceptors(client: Client) -> list[WorkerInterceptor]:
    """Interceptors a worker adds itself: the tracing one unless its client already has it."""
    if not _state.enabled:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    if any(isinstance(i, TracingInterceptor) for i in client.config()["interceptors"]):
        return []
    return [TracingInterceptor(_state.tracer)]


class RequestIdSpanMiddleware:
    """Pure ASGI middleware: tag the request's server span with its request id (tracing on only).

    The server span itself is FastAPI's own (its native telemetry starts one per request, child
    of the caller's `traceparent`, as soon as a tracer provider is installed); this middleware
    sits inside RequestIdMiddleware and adds the id that links the trace to the log lines.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            from opentelemetry import trace

            from services.common.logging import current_request_id

            request_id = current_request_id()
            if request_id is not None:
                trace.get_current_span().set_attribute(REQUEST_ID_ATTRIBUTE, request_id)
        await self.app(scope, receive, send)
