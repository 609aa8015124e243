"""How the console reads and writes data: the services' public API, called as the signed-in key.

Calls go straight to the owning service (the routing table), on the gateway's one HTTP client,
with the identity token the gateway mints for that key: a service applies exactly the rules it
applies to an API call (a partner sees only its own team). A problem answered by a service comes
back as `ConsoleProblem`, which pages show as a readable message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import structlog

from services.common.identity import IDENTITY_HEADER
from services.common.logging import REQUEST_ID_HEADER, current_request_id
from services.gateway.keys.models import ApiKey
from services.gateway.routing import resolve
from services.gateway.runtime import GatewayRuntime

log = structlog.get_logger(__name__)

Params = Mapping[str, str | int | float | bool | Sequence[str] | None]


class ConsoleProblem(Exception):
    """A call the console made was refused or failed: what to tell the person, and why."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        errors: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or _TITLES.get(status, "The request failed")
        self.errors = [f"{e.get('field', '')}: {e.get('message', '')}".strip(": ") for e in errors]


_TITLES = {
    400: "Bad request",
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    409: "Not possible now",
    422: "Check the form",
    429: "Too many requests",
    502: "A service is unavailable",
    503: "Temporarily unavailable",
    504: "A service is slow",
}


def _query(params: Params | None) -> httpx.QueryParams:
    pairs: list[tuple[str, str | int | float | bool | None]] = []
    for name, value in (params or {}).items():
        if value is None or value == "":
            continue
        if isinstance(value, bool):
            pairs.append((name, "true" if value else "false"))
        elif isinstance(value, str | int | float):
            pairs.append((name, str(value)))
        else:
            pairs.extend((name, str(item)) for item in value if item != "")
    return httpx.QueryParams(pairs)


class ServiceClient:
    """The services' API as one signed-in key sees it."""

    def __init__(self, runtime: GatewayRuntime, key: ApiKey) -> None:
        self._runtime = runtime
        self._key = key

    async def get(self, path: str, params: Params | None = None) -> Any:
        """GET a public API path (`/api/v1/...`); the decoded JSON body."""
        return await self._call("GET", path, params=params)

    async def post(
        self, path: str, body: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> Any:
        """POST a JSON body to a public API path; the decoded JSON body."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return await self._call("POST", path, json=dict(body), headers=headers)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        service = resolve(path)
        if service is None:
            raise ConsoleProblem(404, f"There is no endpoint {path}.")
        runtime = self._runtime
        outgoing = {
            IDENTITY_HEADER: runtime.authenticator.identity_token(self._key),
            **(headers or {}),
        }
        request_id = current_request_id()
        if request_id is not None:
            outgoing[REQUEST_ID_HEADER] = request_id
        try:
            response = await runtime.http.request(
                method,
                runtime.upstreams[service] + path,
                params=_query(params),
                json=json,
                headers=outgoing,
            )
        except httpx.TimeoutException:
            log.warning("console_upstream_timeout", service=service)
            raise ConsoleProblem(504, f"The {service} service did not answer in time.") from None
        except httpx.TransportError as exc:
            log.warning("console_upstream_unavailable", service=service, error=repr(exc))
            raise ConsoleProblem(502, f"The {service} service is unavailable.") from None
        if response.status_code >= 400:
            raise _problem_of(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ConsoleProblem(502, f"The {service} service answered with no JSON.") from None


def _problem_of(response: httpx.Response) -> ConsoleProblem:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return ConsoleProblem(response.status_code, f"The call failed ({response.status_code}).")
    detail = str(body.get("detail") or body.get("title") or "The call failed.")
    allowed = body.get("allowed_actions")
    if isinstance(allowed, list):
        detail += " Allowed now: " + (", ".join(map(str, allowed)) or "nothing") + "."
    errors = body.get("errors")
    return ConsoleProblem(
        response.status_code,
        detail,
        title=str(body["title"]) if isinstance(body.get("title"), str) else None,
        errors=[e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else (),
    )
