"""The gateway's FastAPI app: its own endpoints first, then the catch-all that forwards the rest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.types import Scope

from services.common.db import make_engine, make_sessionmaker
from services.common.errors import Unauthorized, install_problem_handlers, problem_response
from services.common.logging import RequestIdMiddleware, configure_logging
from services.common.metrics import (
    METRICS_PATH,
    UNMATCHED,
    AppMetrics,
    HttpMetricsMiddleware,
    metrics_endpoint,
)
from services.common.outbox import OutboxDispatcher
from services.common.secret_box import SecretBox
from services.common.settings import Settings, get_settings
from services.common.temporal import TemporalConnector
from services.common.tracing import RequestIdSpanMiddleware, configure_tracing, fastapi_telemetry
from services.gateway.aging.api import router as aging_router
from services.gateway.auth import KeyAuthenticator, parse_rate_limit
from services.gateway.calendars.api import internal_router as calendars_internal_router
from services.gateway.calendars.api import router as calendars_router
from services.gateway.console import install_console
from services.gateway.health import router as health_router
from services.gateway.keys.api import router as keys_router
from services.gateway.models import OutboxEvent
from services.gateway.notifications.api import internal_router as notifications_internal_router
from services.gateway.notifications.api import router as notifications_router
from services.gateway.notifications.secrets import encrypt_legacy_secrets_on_start
from services.gateway.openapi import OpenApiAggregator
from services.gateway.proxy import FORWARDED_METHODS, forward, make_http_client
from services.gateway.reports.api import internal_router as reports_internal_router
from services.gateway.reports.api import router as reports_router
from services.gateway.routing import API_PREFIX, UPSTREAM_SERVICES, resolve
from services.gateway.runtime import GatewayRuntime, get_runtime
from services.gateway.sla.api import internal_router as sla_internal_router
from services.gateway.sla.api import router as sla_router

log = structlog.get_logger(__name__)

DESCRIPTION = """\
The public API of riskdesk: partner requests, escalations, SOPs, detection rules and MOs, plus the
gateway's own keys and health. Authenticate with `Authorization: Bearer <api key>`. Every error
is an RFC 9457 `application/problem+json` document.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The gateway app; `settings` defaults to the process settings."""
    resolved = settings or get_settings()
    parse_rate_limit(resolved.rate_limit)  # a bad limit fails here, not on the first call
    SecretBox.from_settings(resolved)  # so does production without RISKDESK_SECRETS_KEY
    tracing = configure_tracing(resolved, process="gateway")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(service="gateway", level=resolved.log_level, json=resolved.log_json)
        engine = make_engine(resolved.database_url_of("gateway"), schema="gateway")
        sessionmaker = make_sessionmaker(engine)
        http = make_http_client(resolved)
        upstreams = {service: resolved.url_of(service).rstrip("/") for service in UPSTREAM_SERVICES}
        # Notification deliveries reach their workflows through the outbox (no dual writes).
        temporal = TemporalConnector(
            address=resolved.temporal_address, namespace=resolved.temporal_namespace
        )
        dispatcher = OutboxDispatcher(
            sessionmaker=sessionmaker,
            model=OutboxEvent,
            temporal=temporal,
            poll_seconds=resolved.outbox_poll_seconds,
            batch_size=resolved.outbox_batch_size,
            max_backoff_seconds=resolved.outbox_max_backoff_seconds,
        )
        app.state.runtime = GatewayRuntime(
            settings=resolved,
            engine=engine,
            sessionmaker=sessionmaker,
            http=http,
            upstreams=upstreams,
            authenticator=KeyAuthenticator(sessionmaker=sessionmaker, settings=resolved),
            openapi=OpenApiAggregator(
                http=http, upstreams=upstreams, settings=resolved, own_spec=app.openapi
            ),
            temporal=temporal,
            dispatcher=dispatcher,
        )
        # Rows from before secrets were encrypted at rest: encrypted now that the key is at hand.
        await encrypt_legacy_secrets_on_start(sessionmaker, settings=resolved)
        dispatcher.start()
        log.info("service_started", service="gateway", upstreams=upstreams)
        try:
            yield
        finally:
            await dispatcher.stop()
            await http.aclose()
            await engine.dispose()
            log.info("service_stopped", service="gateway")

    app = FastAPI(
        title="riskdesk API",
        description=DESCRIPTION,
        version="0.1.0",
        lifespan=lifespan,
        # Served below from the aggregated document instead of the gateway's routes alone.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        # A redirect to a path the catch-all then refuses helps nobody: unknown paths are 404s.
        redirect_slashes=False,
        telemetry=fastapi_telemetry(tracing),
    )
    install_problem_handlers(app)
    app.add_exception_handler(Unauthorized, _on_unauthorized)
    metrics = AppMetrics(service="gateway")
    app.state.metrics = metrics
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics, route_label=_forward_route_label)
    if tracing:
        # FastAPI's own server span gets the request id (RequestIdMiddleware binds it first).
        app.add_middleware(RequestIdSpanMiddleware)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(health_router)
    app.include_router(keys_router)
    app.include_router(notifications_router)
    app.include_router(notifications_internal_router)
    app.include_router(calendars_router)
    app.include_router(calendars_internal_router)
    app.include_router(sla_router)
    app.include_router(sla_internal_router)
    app.include_router(aging_router)
    app.include_router(reports_router)
    app.include_router(reports_internal_router)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> JSONResponse:
        """The OpenAPI document of the whole public API (partial while a service is down)."""
        return JSONResponse(await get_runtime(request).openapi.document())

    async def refresh_outbox() -> None:
        await metrics.refresh_outbox(get_runtime_of(app).sessionmaker, OutboxEvent)

    # No API key: like /healthz it is for the platform (Prometheus), and it names no caller data.
    app.router.add_route(
        METRICS_PATH,
        metrics_endpoint(metrics, refresh_outbox),
        methods=["GET"],
        include_in_schema=False,
    )

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        """Swagger UI on the aggregated document."""
        return get_swagger_ui_html(openapi_url="/openapi.json", title="riskdesk API")

    # The web console at `/` (pages, its static files and its HTML error pages).
    install_console(app)

    # Last, so every route of the gateway's own wins; anything else under /api/v1 is forwarded.
    app.router.add_route(
        "/api/v1/{path:path}", forward, methods=FORWARDED_METHODS, include_in_schema=False
    )
    return app


def get_runtime_of(app: FastAPI) -> GatewayRuntime:
    """The runtime the lifespan put on `app.state`."""
    runtime: GatewayRuntime = app.state.runtime
    return runtime


def _forward_route_label(scope: Scope) -> str | None:
    # Forwarded calls share one route template; name them by service and first path segment
    # (a fixed table), never by the raw path, so the label set stays bounded.
    if scope.get("endpoint") is not forward:
        return None
    path: str = scope["path"]
    service = resolve(path)
    if service is None:
        return UNMATCHED  # no service owns it: the forwarder answers 404
    segment = path[len(API_PREFIX) :].partition("/")[0]
    return f"forward:{service}:{API_PREFIX}{segment}"


async def _on_unauthorized(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Unauthorized)
    response = problem_response(exc, request)
    # RFC 6750: a 401 says which scheme would work.
    response.headers["WWW-Authenticate"] = 'Bearer realm="riskdesk"'
    return response
