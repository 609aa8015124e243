"""The wiring every domain service shares: lifespan, identity check, errors, logging, health.

A service's `create_app()` calls `create_service_app` with its routers and its outbox model; this
module knows nothing of any domain.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send

from services.common.db import make_engine, make_sessionmaker
from services.common.errors import (
    DomainError,
    Forbidden,
    install_problem_handlers,
    problem_response,
)
from services.common.identity import IDENTITY_HEADER, Identity, Role, verify_identity
from services.common.logging import RequestIdMiddleware, configure_logging
from services.common.metrics import (
    METRICS_PATH,
    AppMetrics,
    HttpMetricsMiddleware,
    metrics_endpoint,
)
from services.common.outbox import OutboxDispatcher, OutboxMixin, outbox_backlog
from services.common.settings import ServiceName, Settings, get_settings
from services.common.temporal import TemporalConnector
from services.common.tracing import RequestIdSpanMiddleware, configure_tracing, fastapi_telemetry

log = structlog.get_logger(__name__)

UNAUTHENTICATED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


@dataclass(slots=True)
class ServiceRuntime:
    """What a running service holds for its lifetime (on `app.state.runtime`)."""

    service: ServiceName
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    temporal: TemporalConnector
    dispatcher: OutboxDispatcher
    outbox_model: type[OutboxMixin]


class IdentityMiddleware:
    """Refuse any call without a valid identity token, except health checks; keep the identity."""

    def __init__(self, app: ASGIApp, *, secret_provider: Callable[[], str]) -> None:
        self.app = app
        self.secret_provider = secret_provider

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNAUTHENTICATED_PATHS:
            await self.app(scope, receive, send)
            return
        token = next(
            (
                v.decode("latin-1")
                for k, v in scope["headers"]
                if k == IDENTITY_HEADER.lower().encode()
            ),
            None,
        )
        try:
            identity = verify_identity(token, secret=self.secret_provider())
        except DomainError as error:
            await problem_response(error)(scope, receive, send)
            return
        scope.setdefault("state", {})["identity"] = identity
        structlog.contextvars.bind_contextvars(caller=identity.subject, team=identity.team)
        await self.app(scope, receive, send)


def get_runtime(request: Request) -> ServiceRuntime:
    """The runtime of the service serving this request."""
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One database session per request; use cases commit, anything uncommitted rolls back."""
    async with get_runtime(request).sessionmaker() as session:
        yield session


def get_caller(request: Request) -> Identity:
    """The verified caller of this request (set by IdentityMiddleware)."""
    identity: Identity = request.state.identity
    return identity


RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
CurrentCaller = Annotated[Identity, Depends(get_caller)]


def require_system(caller: CurrentCaller) -> Identity:
    """The caller if it is the worker (the system role); 403 otherwise.

    As a dependency it answers before the body is validated: a caller that may not call the
    route learns nothing about its input.
    """
    if caller.role is not Role.SYSTEM:
        raise Forbidden(f"The role {caller.role.value} may not call this route (the worker's).")
    return caller


SystemCaller = Annotated[Identity, Depends(require_system)]


def create_service_app(
    *,
    service: ServiceName,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    outbox_model: type[OutboxMixin],
    settings: Settings | None = None,
    on_startup: Callable[[ServiceRuntime], Awaitable[None]] | None = None,
) -> FastAPI:
    """A FastAPI app for one domain service with the shared kernel wired in."""
    resolved = settings or get_settings()
    tracing = configure_tracing(resolved, process=service)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(service=service, level=resolved.log_level, json=resolved.log_json)
        engine = make_engine(resolved.database_url_of(service), schema=service)
        sessionmaker = make_sessionmaker(engine)
        temporal = TemporalConnector(
            address=resolved.temporal_address, namespace=resolved.temporal_namespace
        )
        dispatcher = OutboxDispatcher(
            sessionmaker=sessionmaker,
            model=outbox_model,
            temporal=temporal,
            poll_seconds=resolved.outbox_poll_seconds,
            batch_size=resolved.outbox_batch_size,
            max_backoff_seconds=resolved.outbox_max_backoff_seconds,
        )
        runtime = ServiceRuntime(
            service=service,
            settings=resolved,
            engine=engine,
            sessionmaker=sessionmaker,
            temporal=temporal,
            dispatcher=dispatcher,
            outbox_model=outbox_model,
        )
        app.state.runtime = runtime
        if on_startup is not None:
            await on_startup(runtime)
        dispatcher.start()
        log.info("service_started", service=service)
        try:
            yield
        finally:
            await dispatcher.stop()
            await engine.dispose()
            log.info("service_stopped", service=service)

    app = FastAPI(
        title=title,
        description=description,
        version="0.1.0",
        lifespan=lifespan,
        telemetry=fastapi_telemetry(tracing),
    )
    install_problem_handlers(app)
    metrics = AppMetrics(service=service)
    app.state.metrics = metrics
    app.add_middleware(IdentityMiddleware, secret_provider=lambda: resolved.identity_secret)
    # Inside RequestIdMiddleware, outside the identity check: refused calls are timed too.
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    if tracing:
        # FastAPI's own server span gets the request id (RequestIdMiddleware binds it first).
        app.add_middleware(RequestIdSpanMiddleware)
    app.add_middleware(RequestIdMiddleware)
    for router in routers:
        app.include_router(router)

    @app.get("/healthz", tags=["health"], summary="Liveness: the process serves HTTP")
    async def healthz() -> dict[str, str]:
        """Always 200 while the process runs; no dependency is checked."""
        return {"status": "ok", "service": service}

    async def refresh_outbox() -> None:
        runtime = app.state.runtime
        await metrics.refresh_outbox(runtime.sessionmaker, runtime.outbox_model)

    # Unauthenticated (UNAUTHENTICATED_PATHS) and outside the OpenAPI: it is for Prometheus.
    app.router.add_route(
        METRICS_PATH,
        metrics_endpoint(metrics, refresh_outbox),
        methods=["GET"],
        include_in_schema=False,
    )

    @app.get("/readyz", tags=["health"], summary="Readiness: the database answers")
    async def readyz(runtime: RuntimeDep) -> JSONResponse:
        """200 when the database answers; the detail shows the outbox backlog and Temporal state.

        Temporal being down does not make a service unready: writes still succeed and their
        events wait in the outbox.
        """
        detail: dict[str, Any] = {
            "service": service,
            "temporal_connected": runtime.temporal.connected,
        }
        try:
            async with runtime.sessionmaker() as session:
                await session.execute(text("SELECT 1"))
                backlog = await outbox_backlog(session, runtime.outbox_model)
        except Exception as exc:
            log.warning("readiness_failed", error=repr(exc))
            return JSONResponse(
                {**detail, "status": "unavailable", "database": "unreachable"}, status_code=503
            )
        detail.update(
            status="ok",
            database="ok",
            outbox_pending=backlog.pending,
            outbox_oldest_age_seconds=backlog.oldest_age_seconds,
        )
        return JSONResponse(detail)

    return app
