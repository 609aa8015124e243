"""Liveness and readiness of the gateway and, for readiness, of every service behind it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import structlog
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from services.common.outbox import OutboxBacklog, outbox_backlog
from services.common.settings import ServiceName
from services.gateway.models import OutboxEvent
from services.gateway.runtime import GatewayRuntime, RuntimeDep

log = structlog.get_logger(__name__)

router = APIRouter(tags=["health"])

# Readiness must answer fast even when a service hangs: a probe that times out is a failed probe.
READY_TIMEOUT_SECONDS = 2.0


@router.get("/healthz", summary="Liveness: the gateway serves HTTP")
async def healthz() -> dict[str, str]:
    """Always 200 while the process runs; nothing behind it is checked."""
    return {"status": "ok", "service": "gateway"}


@router.get(
    "/readyz",
    summary="Readiness: the gateway's database and every service are ready",
    responses={503: {"description": "The database or a service is not ready; see the detail"}},
)
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """200 only if the gateway's database answers and every service's `/readyz` is 200.

    All checks run in parallel with a short timeout; the body shows the gateway's own outbox
    backlog (notification deliveries waiting for Temporal) and each service's own readiness
    detail (database, outbox backlog, Temporal connection) or why it could not be reached.
    """
    timeout = min(READY_TIMEOUT_SECONDS, runtime.settings.service_timeout_seconds)
    database, *services = await asyncio.gather(
        _database_ready(runtime, timeout),
        *(_service_ready(runtime, service, timeout) for service in runtime.upstreams),
    )
    detail: dict[str, Any] = {
        "service": "gateway",
        "database": "ok" if database is not None else "unreachable",
        "services": dict(zip(runtime.upstreams, services, strict=True)),
    }
    if database is not None:
        detail["outbox_pending"] = database.pending
        detail["outbox_oldest_age_seconds"] = database.oldest_age_seconds
    ready = database is not None and all(item["status"] == "ok" for item in services)
    detail["status"] = "ok" if ready else "unavailable"
    return JSONResponse(detail, status_code=200 if ready else 503)


async def _database_ready(runtime: GatewayRuntime, within: float) -> OutboxBacklog | None:
    # The outbox backlog read doubles as the database check; None means it did not answer.
    try:
        async with asyncio.timeout(within), runtime.sessionmaker() as session:
            await session.execute(text("SELECT 1"))
            return await outbox_backlog(session, OutboxEvent)
    except Exception as exc:
        log.warning("readiness_database_failed", error=repr(exc))
        return None


async def _service_ready(
    runtime: GatewayRuntime, service: ServiceName, within: float
) -> dict[str, Any]:
    url = f"{runtime.upstreams[service]}/readyz"
    try:
        response = await runtime.http.get(url, timeout=within)
    except httpx.TimeoutException:
        return {"status": "unavailable", "error": f"no answer within {within:g} s"}
    except httpx.HTTPError as exc:
        return {"status": "unavailable", "error": f"unreachable ({type(exc).__name__})"}
    try:
        body = response.json()
    except ValueError:
        body = {}
    detail: dict[str, Any] = body if isinstance(body, dict) else {}
    detail["status"] = "ok" if response.status_code == 200 else "unavailable"
    detail["http_status"] = response.status_code
    return detail
