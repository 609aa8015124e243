"""Where one week's numbers come from: the services' stats endpoints and intake's aging report,
called with the gateway's own system identity (the report is program-wide; the gateway decides
who may read it)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import structlog

from services.common.errors import BadGateway, GatewayTimeout
from services.common.identity import IDENTITY_HEADER, Identity, Role, sign_identity
from services.common.logging import REQUEST_ID_HEADER, current_request_id
from services.common.settings import ServiceName
from services.common.stats import week_period
from services.gateway.runtime import GatewayRuntime

log = structlog.get_logger(__name__)

REPORTS_IDENTITY = Identity(subject="gateway-reports", team="risk-mining", role=Role.SYSTEM)
STATS_PATHS: dict[str, tuple[ServiceName, str]] = {
    "intake": ("intake", "/api/v1/stats/intake"),
    "escalation": ("escalation", "/api/v1/stats/escalations"),
    "sop": ("sop", "/api/v1/stats/sops"),
}
AGING_PATH = "/internal/requests/aging"


async def fetch_week(
    runtime: GatewayRuntime, week: str, *, calendar: dict[str, Any] | None
) -> dict[str, Any]:
    """The week's stats of every service, and with a `calendar` the aging buckets at the week's
    end (or now).

    Aging counts the requests open *now*, aged at the instant given: right for the running or
    just-ended week, misleading for older ones (requests closed since are missing). So only the
    report's own week asks for it; older weeks' aging comes from their stored reports.
    """
    as_of = week_period(week).as_of()
    calls = [
        _call(runtime, service, "GET", path, params={"week": week})
        for service, path in STATS_PATHS.values()
    ]
    if calendar is not None:
        body = {"calendar": calendar, "at": as_of.isoformat(), "limit": 1}
        calls.append(_call(runtime, "intake", "POST", AGING_PATH, json=body))
    intake, escalation, sop, *rest = await asyncio.gather(*calls)
    aging = rest[0] if rest else {}
    return {
        "intake": intake,
        "escalation": escalation,
        "sop": sop,
        "aging": {
            "as_of": aging.get("as_of"),
            "timezone": aging.get("timezone"),
            "open_count": aging.get("open_count"),
            "buckets": aging.get("buckets", {}),
        },
    }


async def _call(
    runtime: GatewayRuntime,
    service: ServiceName,
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    json: Any = None,
) -> dict[str, Any]:
    settings = runtime.settings
    headers = {
        IDENTITY_HEADER: sign_identity(
            REPORTS_IDENTITY,
            secret=settings.identity_secret,
            ttl_seconds=settings.identity_ttl_seconds,
        )
    }
    request_id = current_request_id()
    if request_id is not None:
        headers[REQUEST_ID_HEADER] = request_id
    try:
        response = await runtime.http.request(
            method, runtime.upstreams[service] + path, params=params, json=json, headers=headers
        )
    except httpx.TimeoutException:
        timeout = settings.service_timeout_seconds
        raise GatewayTimeout(
            f"{service} did not answer within {timeout:g} s.", service=service
        ) from None
    except httpx.TransportError as exc:
        log.warning("upstream_unavailable", service=service, error=repr(exc))
        raise BadGateway(f"{service} is unavailable.", service=service) from None
    if response.status_code != 200:
        log.warning("report_source_failed", service=service, path=path, status=response.status_code)
        raise BadGateway(f"{service} answered {response.status_code} to {path}.", service=service)
    body: dict[str, Any] = response.json()
    return body
