"""OpenTelemetry traces: one trace from the gateway through intake, the outbox, the workflow and
its activity back to a service (real uvicorn servers, dev server and worker; spans kept by the
SDK's InMemorySpanExporter), and tracing off installs nothing.

One backend is enough: the traceparent column is plain DDL exercised by the migration drift tests.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from riskdesk.temporal_server import free_port
from services.common.identity import Role
from services.common.migrations import upgrade
from services.common.settings import Settings
from services.common.temporal import connect_temporal
from services.common.tracing import configure_tracing, shutdown_tracing, tracing_enabled
from services.gateway.app import create_app as create_gateway_app
from services.gateway.keys.service import create_key
from services.intake.app import create_app as create_intake_app
from tests.service.sop_stack import serve
from tests.service.test_intake_api import migrate
from workflows.worker import build_worker


def _settings(tmp_path: Path, temporal_address: str, **overrides: object) -> Settings:
    data_dir = tmp_path / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    values: dict[str, object] = {
        "environment": "test",
        "data_dir": data_dir,
        "temporal_address": temporal_address,
        "task_queue": f"trace-{uuid.uuid4().hex[:10]}",
        "outbox_poll_seconds": 0.2,
        "gateway_port": free_port(),
        "intake_port": free_port(),
        "service_timeout_seconds": 5.0,
        "log_json": True,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


def _one(spans: Sequence[ReadableSpan], name: str, **attributes: object) -> ReadableSpan:
    found = [
        s
        for s in spans
        if s.name == name and all((s.attributes or {}).get(k) == v for k, v in attributes.items())
    ]
    assert len(found) == 1, (name, attributes, [(s.name, dict(s.attributes or {})) for s in spans])
    return found[0]


def _parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _descends(span: ReadableSpan, ancestor: ReadableSpan, spans: Sequence[ReadableSpan]) -> bool:
    """Whether `ancestor` is on `span`'s parent chain (through spans that were exported)."""
    by_id = {s.context.span_id: s for s in spans}
    target = ancestor.context.span_id
    parent = _parent_of(span)
    while parent is not None:
        if parent == target:
            return True
        above = by_id.get(parent)
        parent = _parent_of(above) if above is not None else None
    return False


async def _spans_until(
    exporter: InMemorySpanExporter, name: str, *, within: float = 20
) -> tuple[ReadableSpan, ...]:
    deadline = time.monotonic() + within
    while True:
        spans = exporter.get_finished_spans()
        if any(s.name == name for s in spans):
            return spans
        if time.monotonic() > deadline:
            raise AssertionError(f"no span {name!r}; got {[s.name for s in spans]}")
        await asyncio.sleep(0.1)


async def test_a_request_filed_through_the_gateway_is_one_trace_down_to_the_activity(
    tmp_path: Path, temporal_address: str, unique_team: str
) -> None:
    settings = _settings(tmp_path, temporal_address, otel_enabled=True, otel_exporter="none")
    exporter = InMemorySpanExporter()
    # Not OpenTelemetry's global provider (set once per process): every hook uses ours anyway.
    assert configure_tracing(settings, process="test", exporter=exporter, set_global=False)
    try:
        await migrate(settings)
        await asyncio.to_thread(
            upgrade, service="gateway", database_url=settings.database_url_of("gateway")
        )
        gateway_app = create_gateway_app(settings)
        intake_app = create_intake_app(settings)
        # Made while tracing is on: it carries the tracing interceptor, and so does the worker.
        temporal = await connect_temporal(settings.temporal_address, settings.temporal_namespace)
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(serve(intake_app, settings.intake_port))
            gateway_url = await stack.enter_async_context(serve(gateway_app, settings.gateway_port))
            await stack.enter_async_context(build_worker(temporal, settings))
            async with gateway_app.state.runtime.sessionmaker() as session:
                _key, api_key = await create_key(
                    session, team=unique_team, role=Role.PARTNER, name="tracing"
                )
                await session.commit()
            async with httpx.AsyncClient(base_url=gateway_url, trust_env=False) as http:
                response = await http.post(
                    "/api/v1/requests",
                    json={"request_type": "deep_dive", "title": "Traced refund abuse"},
                    headers={"Authorization": f"Bearer {api_key}"},
                )
            assert response.status_code == 201, response.text
            request_id = response.headers["x-request-id"]
            # The activity's span ends after its HTTP call back to the gateway does.
            spans = await _spans_until(exporter, "RunActivity:resolve_sla_policy")

        gateway = _one(spans, "POST /api/v1/{path}", **{"url.path": "/api/v1/requests"})
        intake = _one(spans, "POST /api/v1/requests", **{"http.route": "/api/v1/requests"})
        signal_with_start = _one(spans, "SignalWithStartWorkflow:RequestLifecycleWorkflow")
        run_workflow = _one(spans, "RunWorkflow:RequestLifecycleWorkflow")
        run_activity = next(s for s in spans if s.name == "RunActivity:resolve_sla_policy")
        callback = next(s for s in spans if s.name == "POST /internal/sla/resolve")

        trace_id = gateway.context.trace_id
        chain = [gateway, intake, signal_with_start, run_activity, callback]
        assert {s.context.trace_id for s in chain} == {trace_id}
        assert gateway.kind is intake.kind is callback.kind is SpanKind.SERVER
        assert gateway.parent is None  # the client sent no traceparent: the gateway starts it
        # Each hop descends from the one before: gateway → intake → (the outbox dispatcher, in
        # the context of the request that wrote the row) signal-with-start → activity → the
        # activity's HTTP call back to the gateway. temporalio parents workflow-side spans on
        # the context the start carried (the workflow's own span is instantaneous, replay-safe).
        for parent, child in itertools.pairwise(chain):
            assert _descends(child, parent, spans), (child.name, parent.name)
        assert _parent_of(run_workflow) == signal_with_start.context.span_id
        assert run_workflow.context.trace_id == trace_id
        assert _parent_of(intake) == gateway.context.span_id
        assert _parent_of(callback) == run_activity.context.span_id
        for server_span in (gateway, intake, callback):
            assert server_span.attributes is not None
            assert server_span.attributes["riskdesk.request_id"] == request_id
        assert intake.attributes is not None
        assert intake.attributes["http.response.status_code"] == 201
    finally:
        shutdown_tracing()
    assert not tracing_enabled()
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


DISABLED_PROBE = """
import asyncio, json, sys
import httpx
from services.common.settings import Settings
from services.common.tracing import tracing_enabled, current_traceparent
from services.intake.app import create_app as intake
from services.gateway.app import create_app as gateway

async def main():
    settings = Settings(environment="test", data_dir=sys.argv[1])
    apps = [intake(settings), gateway(settings)]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=apps[0]), base_url="http://intake"
    ) as http:
        health = await http.get("/healthz")
    from opentelemetry import trace
    print(json.dumps({
        "enabled": tracing_enabled(),
        "traceparent": current_traceparent(),
        "sdk_imported": any(m.startswith("opentelemetry.sdk") for m in sys.modules),
        "provider": type(trace.get_tracer_provider()).__name__,
        "middlewares": sorted({m.cls.__name__ for app in apps for m in app.user_middleware}),
        "health": health.status_code,
    }))

asyncio.run(main())
"""


def test_tracing_off_installs_no_provider_middleware_or_sdk(tmp_path: Path) -> None:
    # A fresh interpreter: the test above imported the SDK into this one.
    done = subprocess.run(
        [sys.executable, "-c", DISABLED_PROBE, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe["enabled"] is False
    assert probe["traceparent"] is None
    assert probe["sdk_imported"] is False
    assert probe["provider"] == "ProxyTracerProvider"
    assert "TracingMiddleware" not in probe["middlewares"]
    assert "RequestIdMiddleware" in probe["middlewares"]
    assert probe["health"] == 200
