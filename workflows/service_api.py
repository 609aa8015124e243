"""How activities call the services: one long-lived httpx client and a system identity token.

Workflows never import a service's models (DESIGN.md): their activities call documented service
endpoints like any other caller, signed as the `system` role. A transport failure or a 5xx is
raised as retryable (Temporal retries the activity with backoff); a 4xx is the caller's mistake
and is raised as non-retryable, so a bad call fails fast instead of retrying for hours.
"""

from __future__ import annotations

from typing import Any

import httpx
from temporalio.exceptions import ApplicationError

from services.common.identity import IDENTITY_HEADER, Identity, Role, sign_identity
from services.common.logging import REQUEST_ID_HEADER
from services.common.settings import ServiceName, Settings
from services.common.tracing import inject_into

WORKER_IDENTITY = Identity(subject="worker", team="risk-mining", role=Role.SYSTEM)


class ServiceCallError(ApplicationError):
    """A service call that did not succeed; `status` is the HTTP status (0 if none came back)."""


class ServiceApi:
    """Signed calls from the worker to the gateway and the services."""

    def __init__(self, *, http: httpx.AsyncClient, settings: Settings) -> None:
        self.http = http
        self.settings = settings

    def headers(self, *, request_id: str | None = None) -> dict[str, str]:
        """Headers of one call: a fresh system identity token and the request id, if any."""
        token = sign_identity(
            WORKER_IDENTITY,
            secret=self.settings.identity_secret,
            ttl_seconds=self.settings.identity_ttl_seconds,
        )
        headers = {IDENTITY_HEADER: token}
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        # Inside an activity: the service's server span becomes a child of the activity's span.
        inject_into(headers)
        return headers

    async def call(
        self,
        service: ServiceName,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        request_id: str | None = None,
        ok_statuses: frozenset[int] = frozenset(),
    ) -> httpx.Response:
        """Call `service`; a 2xx (or a status in `ok_statuses`) is returned, anything else raised."""
        url = self.settings.url_of(service).rstrip("/") + path
        try:
            response = await self.http.request(
                method, url, json=json, params=params, headers=self.headers(request_id=request_id)
            )
        except httpx.HTTPError as exc:
            raise ServiceCallError(
                f"{method} {service}{path} failed: {exc!r}", type="ServiceUnavailable"
            ) from exc
        if response.is_success or response.status_code in ok_statuses:
            return response
        retryable = response.status_code >= 500 or response.status_code in (408, 429)
        raise ServiceCallError(
            f"{method} {service}{path} answered {response.status_code}: {response.text[:500]}",
            response.status_code,
            type=f"HTTP{response.status_code}",
            non_retryable=not retryable,
        )


def make_http_client(settings: Settings) -> httpx.AsyncClient:
    """The worker's one HTTP client (created at worker start, closed at shutdown)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.service_timeout_seconds),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        trust_env=False,
    )
