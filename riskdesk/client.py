"""The riskdesk partner client: file and follow requests through the gateway with your API key.

Needs only httpx and pydantic (never the riskdesk services), so a partner can vendor this one file:

    from riskdesk.client import RiskdeskClient

    with RiskdeskClient("https://riskdesk.example", api_key="rk_...") as client:
        filed = client.file_request(request_type="mo_investigation", title="Coupon abuse ring")
        for match in filed.similar:
            print("possible duplicate", match.id, match.score)
        client.comment(filed.id, "More evidence attached in JIRA-12")

`AsyncRiskdeskClient` has the same methods, awaitable. Every error response of the API
(RFC 9457 problem+json) raises a `RiskdeskError` subclass carrying its fields, with a message
that says what went wrong and, where it helps, what to do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_jsonable_python

__all__ = [
    "AsyncRiskdeskClient",
    "AuthenticationError",
    "Comment",
    "ConflictError",
    "Initiative",
    "InitiativePage",
    "InvalidTransitionError",
    "NotFoundError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "RateLimitedError",
    "Request",
    "RequestFiled",
    "RequestPage",
    "RiskdeskClient",
    "RiskdeskError",
    "Roadmap",
    "ServerError",
    "SimilarRequest",
    "SimilarRequests",
    "TransportError",
    "ValidationError",
]

API = "/api/v1"
DEFAULT_TIMEOUT = 30.0
USER_AGENT = "riskdesk-client/0.1"
ModelT = TypeVar("ModelT", bound=BaseModel)


# --- models: lenient (unknown fields are kept), so a newer server never breaks an older client ---


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Request(_Model):
    """A request as the API returns it."""

    id: int
    team: str
    request_type: str
    title: str
    description: str = ""
    priority: str
    status: str
    resolution: str | None = None
    duplicate_of: int | None = None
    due_at: datetime | None = None
    marketplace: str | None = None
    impact: dict[str, Any] | None = None
    external_refs: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    requested_by: str = ""
    assignee: str | None = None
    version: int = 0
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None
    sla_due_at: datetime | None = None
    breached_at: datetime | None = None


class SimilarRequest(_Model):
    """An open request of the same team that looks like another one."""

    id: int
    title: str
    score: int
    reasons: list[str] = Field(default_factory=list)


class RequestFiled(Request):
    """A request just filed, with the open requests that look like duplicates of it."""

    similar: list[SimilarRequest] = Field(default_factory=list)


class RequestPage(_Model):
    """One page of a list; pass `next_cursor` back as `cursor` (None on the last page)."""

    items: list[Request]
    next_cursor: str | None = None


class SimilarRequests(_Model):
    """Requests similar to one request, and those marked as its duplicates."""

    request_id: int
    similar: list[SimilarRequest]
    duplicates: list[int] = Field(default_factory=list)
    duplicate_of: int | None = None


class Comment(_Model):
    """A comment on a request."""

    id: Any = None
    request_id: int | None = None
    body: str = ""
    visibility: str = "public"


class Benefit(_Model):
    """A yearly benefit of an initiative (expected, or realised once measured)."""

    accounts_protected_per_year: int = 0
    money_saved_per_year: Decimal = Decimal(0)
    currency: str = "USD"
    analyst_hours_saved_per_year: Decimal = Decimal(0)
    value_usd: Decimal | None = None


class Initiative(_Model):
    """An OP1 initiative as the API returns it; pass `version` back to `update_initiative`."""

    id: int
    team: str
    source_kind: str
    title: str
    problem: str = ""
    proposal: str = ""
    ai: bool = False
    expected_benefit: Benefit
    effort_person_weeks: Decimal
    confidence: float
    reach: int | None = None
    dependencies: list[str] = Field(default_factory=list)
    target_quarter: str | None = None
    score: float
    status: str
    drop_reason: str | None = None
    realised_benefit: Benefit | None = None
    proposed_by: str = ""
    version: int
    created_at: datetime
    updated_at: datetime


class InitiativePage(_Model):
    """One page of initiatives; pass `next_cursor` back as `cursor` (None on the last page)."""

    items: list[Initiative]
    next_cursor: str | None = None


class RoadmapItem(_Model):
    """One initiative on the roadmap."""

    id: int
    title: str
    team: str
    status: str
    score: float
    expected_value_usd: Decimal
    realised_value_usd: Decimal | None = None


class RoadmapQuarter(_Model):
    """One quarter of the roadmap (best score first) and its totals."""

    quarter: str
    items: list[RoadmapItem]
    totals: dict[str, Any]


class Roadmap(_Model):
    """Committed, in-progress, delivered and measured initiatives of a year, by quarter."""

    year: int
    quarters: list[RoadmapQuarter]
    totals: dict[str, Any]


# --- errors --------------------------------------------------------------------------------------


class RiskdeskError(Exception):
    """Base of every error of this client; API errors carry the problem+json fields."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        problem: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.problem: dict[str, Any] = dict(problem or {})

    @property
    def type(self) -> str | None:
        """The problem's stable `type` URI (for code that branches on the kind of error)."""
        value = self.problem.get("type")
        return str(value) if value is not None else None

    @property
    def title(self) -> str | None:
        """The problem's short title."""
        value = self.problem.get("title")
        return str(value) if value is not None else None

    @property
    def detail(self) -> str | None:
        """The problem's human explanation."""
        value = self.problem.get("detail")
        return str(value) if value is not None else None

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Field errors (`field`, `message`, `code`) of a 400/422."""
        value = self.problem.get("errors")
        return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []


class TransportError(RiskdeskError):
    """The gateway could not be reached, or did not answer in time."""


class BadRequestError(RiskdeskError):
    """400: the request was malformed."""


class AuthenticationError(RiskdeskError):
    """401: the API key is missing, unknown, expired or revoked."""


class PermissionDeniedError(RiskdeskError):
    """403: the key's role may not do this."""


class NotFoundError(RiskdeskError):
    """404: no such thing, or not visible to this key's team."""


class ConflictError(RiskdeskError):
    """409: the current state does not allow it, or another change won a race."""


class InvalidTransitionError(ConflictError):
    """409: the request's status does not allow this action; `allowed_actions` says what does."""

    @property
    def allowed_actions(self) -> list[str]:
        """The actions this key may take from the request's current status."""
        value = self.problem.get("allowed_actions")
        return [str(a) for a in value] if isinstance(value, list) else []


class PreconditionFailedError(RiskdeskError):
    """412: the request changed since it was read (stale `If-Match`)."""


class ValidationError(RiskdeskError):
    """422: some fields are invalid; `errors` names them."""


class RateLimitedError(RiskdeskError):
    """429: too many requests; retry after `retry_after` seconds."""

    @property
    def retry_after(self) -> float | None:
        """Seconds to wait before retrying, if the server said."""
        value = self.problem.get("retry_after")
        return float(value) if isinstance(value, int | float) else None


class ServerError(RiskdeskError):
    """5xx: the service failed or is unavailable; retrying later may help."""


_BY_STATUS: dict[int, type[RiskdeskError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    412: PreconditionFailedError,
    422: ValidationError,
    429: RateLimitedError,
}
_HINTS: dict[type[RiskdeskError], str] = {
    AuthenticationError: "check the API key (--key, RISKDESK_API_KEY or .riskdesk/api.key)",
    PreconditionFailedError: "reload the request and apply the change again",
    ServerError: "retry shortly; if it persists, tell the risk-mining team the request id",
}


def error_from_response(response: httpx.Response) -> RiskdeskError:
    """The RiskdeskError of a failed response (problem+json, or whatever the server sent)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    problem: dict[str, Any] = body if isinstance(body, dict) else {}
    status = response.status_code
    kind = _BY_STATUS.get(status, ServerError if status >= 500 else RiskdeskError)
    if kind is ConflictError and str(problem.get("type", "")).endswith("/invalid-transition"):
        kind = InvalidTransitionError
    title = problem.get("title") or response.reason_phrase or "Error"
    detail = problem.get("detail") or (response.text[:200] if not problem else "")
    lines = [f"{status} {title}: {detail}".rstrip(": ")]
    for error in problem.get("errors") or []:
        if isinstance(error, dict):
            field = str(error.get("field", "")).removeprefix("body.").removeprefix("query.")
            lines.append(f"  - {field}: {error.get('message', '')}")
    if kind is InvalidTransitionError and isinstance(problem.get("allowed_actions"), list):
        allowed = ", ".join(map(str, problem["allowed_actions"])) or "none"
        lines.append(f"  allowed actions now: {allowed}")
    if kind is RateLimitedError and problem.get("retry_after") is not None:
        lines.append(f"  retry after {problem['retry_after']} s")
    hint = _HINTS.get(kind)
    if hint:
        lines.append(f"  ({hint})")
    request_id = response.headers.get("x-request-id")
    if request_id and kind is ServerError:
        lines.append(f"  request id: {request_id}")
    return kind("\n".join(lines), status=status, problem=problem)


def _transport_error(base_url: str, exc: httpx.HTTPError) -> TransportError:
    if isinstance(exc, httpx.TimeoutException):
        return TransportError(f"riskdesk at {base_url} did not answer in time ({exc!r})")
    return TransportError(f"cannot reach riskdesk at {base_url}: {exc}")


# --- request building, shared by both clients -----------------------------------------------------


def _list_params(
    *,
    status: str | Sequence[str] | None = None,
    priority: str | Sequence[str] | None = None,
    cursor: str | None = None,
    limit: int | None = None,
    **filters: Any,
) -> httpx.QueryParams:
    """Query parameters of a list/export: repeatable ones repeated, datetimes as ISO-8601."""
    params: list[tuple[str, str | int | float | bool | None]] = []
    for name, value in (("status", status), ("priority", priority)):
        if value is None:
            continue
        for item in [value] if isinstance(value, str) else value:
            params.append((name, str(item)))
    for name, value in {**filters, "cursor": cursor, "limit": limit}.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        params.append((name, str(value)))
    return httpx.QueryParams(params)


def _file_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}


def _transition_body(action: str, extra: Mapping[str, Any]) -> dict[str, Any]:
    return {"action": action, **{k: v for k, v in extra.items() if v is not None}}


def _initiative_body(fields: Mapping[str, Any]) -> Any:
    # Benefits may be given as Decimal or as models of this module: plain JSON either way.
    return to_jsonable_python(
        {
            name: value.model_dump(exclude_none=True) if isinstance(value, BaseModel) else value
            for name, value in fields.items()
            if value is not None
        }
    )


def _if_match(version: int) -> dict[str, str]:
    return {"If-Match": f'"{int(version)}"'}


def _idempotency(key: str | None) -> dict[str, str] | None:
    return {"Idempotency-Key": key} if key else None


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _parse(model: type[ModelT], response: httpx.Response) -> ModelT:
    if response.is_error:
        raise error_from_response(response)
    try:
        return model.model_validate(response.json())
    except ValueError as exc:
        raise RiskdeskError(
            f"unexpected response from riskdesk ({response.status_code}): {exc}",
            status=response.status_code,
        ) from exc


class RiskdeskClient:
    """Synchronous client. One instance holds one connection pool: reuse it, close it when done
    (or use it as a context manager)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=_headers(api_key),
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> RiskdeskClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        try:
            return self._http.request(method, API + path, json=json, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise _transport_error(self.base_url, exc) from exc

    def file_request(self, *, idempotency_key: str | None = None, **fields: Any) -> RequestFiled:
        """File a request (`request_type`, `title`, and any optional field of the API); with an
        `idempotency_key`, a retry returns the first response instead of filing twice."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = self._send("POST", "/requests", json=_file_body(fields), headers=headers)
        return _parse(RequestFiled, response)

    def get_request(self, request_id: int) -> Request:
        """One request."""
        return _parse(Request, self._send("GET", f"/requests/{int(request_id)}"))

    def list_requests(self, **filters: Any) -> RequestPage:
        """One page of requests; filters are the API's (`status`, `q`, `sort`, `cursor`, ...)."""
        return _parse(RequestPage, self._send("GET", "/requests", params=_list_params(**filters)))

    def iter_requests(self, **filters: Any) -> Iterator[Request]:
        """Every request matching the filters, following the cursors."""
        cursor = filters.pop("cursor", None)
        while True:
            page = self.list_requests(cursor=cursor, **filters)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def export_csv(self, **filters: Any) -> Iterator[bytes]:
        """The CSV export of a filtered list, as it streams."""
        try:
            with self._http.stream(
                "GET", API + "/requests/export.csv", params=_list_params(**filters)
            ) as response:
                if response.is_error:
                    response.read()
                    raise error_from_response(response)
                yield from response.iter_bytes()
        except httpx.HTTPError as exc:
            raise _transport_error(self.base_url, exc) from exc

    def similar(self, request_id: int, *, limit: int | None = None) -> SimilarRequests:
        """Open requests similar to one request, and its duplicates."""
        params = {"limit": limit} if limit else None
        response = self._send("GET", f"/requests/{int(request_id)}/similar", params=params)
        return _parse(SimilarRequests, response)

    def transition(
        self, request_id: int, action: str, *, idempotency_key: str | None = None, **extra: Any
    ) -> Request:
        """Apply an action (`reason`, `note`, `duplicate_of` as the action needs)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = self._send(
            "POST",
            f"/requests/{int(request_id)}/transitions",
            json=_transition_body(action, extra),
            headers=headers,
        )
        return _parse(Request, response)

    def confirm(self, request_id: int) -> Request:
        """Confirm a resolved request's resolution: it closes at once."""
        return self.transition(request_id, "close")

    def reopen(self, request_id: int, *, reason: str) -> Request:
        """Reopen a resolved request, saying why."""
        return self.transition(request_id, "reopen", reason=reason)

    def comment(self, request_id: int, body: str, *, visibility: str = "public") -> Comment:
        """Comment on a request (partners' comments are public)."""
        response = self._send(
            "POST",
            f"/requests/{int(request_id)}/comments",
            json={"body": body, "visibility": visibility},
        )
        return _parse(Comment, response)

    # --- OP1 initiatives ---------------------------------------------------------------------

    def propose_initiative(
        self, *, idempotency_key: str | None = None, **fields: Any
    ) -> Initiative:
        """Propose an initiative (`title`, `problem`, `proposal`, `ai`, `expected_benefit`,
        `effort_person_weeks`, `confidence`, and the API's optional fields); it comes back scored.
        With an `idempotency_key`, a retry returns the first response instead of a second one."""
        response = self._send(
            "POST",
            "/initiatives",
            json=_initiative_body(fields),
            headers=_idempotency(idempotency_key),
        )
        return _parse(Initiative, response)

    def get_initiative(self, initiative_id: int) -> Initiative:
        """One initiative."""
        return _parse(Initiative, self._send("GET", f"/initiatives/{int(initiative_id)}"))

    def list_initiatives(self, **filters: Any) -> InitiativePage:
        """One page of initiatives; filters are the API's (`status`, `team`, `source_kind`,
        `quarter`, `ai`, `sort`, `cursor`, `limit`)."""
        response = self._send("GET", "/initiatives", params=_list_params(**filters))
        return _parse(InitiativePage, response)

    def iter_initiatives(self, **filters: Any) -> Iterator[Initiative]:
        """Every initiative matching the filters, following the cursors."""
        cursor = filters.pop("cursor", None)
        while True:
            page = self.list_initiatives(cursor=cursor, **filters)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def update_initiative(self, initiative_id: int, *, version: int, **fields: Any) -> Initiative:
        """Change fields of the initiative read at `version` (sent as `If-Match`); a change made
        since raises PreconditionFailedError. Returns it re-scored, with its new version."""
        response = self._send(
            "PATCH",
            f"/initiatives/{int(initiative_id)}",
            json=_initiative_body(fields),
            headers=_if_match(version),
        )
        return _parse(Initiative, response)

    def transition_initiative(
        self,
        initiative_id: int,
        action: str,
        *,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> Initiative:
        """Apply an action (shortlist, commit, start, deliver, measure, drop) with what it needs
        (`target_quarter`, `realised`, `reason`); staff only."""
        response = self._send(
            "POST",
            f"/initiatives/{int(initiative_id)}/transitions",
            json={"action": action, **_initiative_body(extra)},
            headers=_idempotency(idempotency_key),
        )
        return _parse(Initiative, response)

    def roadmap(self, year: int, *, team: str | None = None) -> Roadmap:
        """The year's committed-and-later initiatives by quarter, with totals."""
        params = _list_params(year=int(year), team=team)
        return _parse(Roadmap, self._send("GET", "/initiatives/roadmap", params=params))


class AsyncRiskdeskClient:
    """Asynchronous client with the methods of `RiskdeskClient`, awaitable."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=_headers(api_key),
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> AsyncRiskdeskClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        try:
            return await self._http.request(
                method, API + path, json=json, params=params, headers=headers
            )
        except httpx.HTTPError as exc:
            raise _transport_error(self.base_url, exc) from exc

    async def file_request(
        self, *, idempotency_key: str | None = None, **fields: Any
    ) -> RequestFiled:
        """File a request; see `RiskdeskClient.file_request`."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = await self._send("POST", "/requests", json=_file_body(fields), headers=headers)
        return _parse(RequestFiled, response)

    async def get_request(self, request_id: int) -> Request:
        """One request."""
        return _parse(Request, await self._send("GET", f"/requests/{int(request_id)}"))

    async def list_requests(self, **filters: Any) -> RequestPage:
        """One page of requests; see `RiskdeskClient.list_requests`."""
        response = await self._send("GET", "/requests", params=_list_params(**filters))
        return _parse(RequestPage, response)

    async def iter_requests(self, **filters: Any) -> AsyncIterator[Request]:
        """Every request matching the filters, following the cursors."""
        cursor = filters.pop("cursor", None)
        while True:
            page = await self.list_requests(cursor=cursor, **filters)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def export_csv(self, **filters: Any) -> AsyncIterator[bytes]:
        """The CSV export of a filtered list, as it streams."""
        try:
            async with self._http.stream(
                "GET", API + "/requests/export.csv", params=_list_params(**filters)
            ) as response:
                if response.is_error:
                    await response.aread()
                    raise error_from_response(response)
                async for chunk in response.aiter_bytes():
                    yield chunk
        except httpx.HTTPError as exc:
            raise _transport_error(self.base_url, exc) from exc

    async def similar(self, request_id: int, *, limit: int | None = None) -> SimilarRequests:
        """Open requests similar to one request, and its duplicates."""
        params = {"limit": limit} if limit else None
        response = await self._send("GET", f"/requests/{int(request_id)}/similar", params=params)
        return _parse(SimilarRequests, response)

    async def transition(
        self, request_id: int, action: str, *, idempotency_key: str | None = None, **extra: Any
    ) -> Request:
        """Apply an action; see `RiskdeskClient.transition`."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = await self._send(
            "POST",
            f"/requests/{int(request_id)}/transitions",
            json=_transition_body(action, extra),
            headers=headers,
        )
        return _parse(Request, response)

    async def confirm(self, request_id: int) -> Request:
        """Confirm a resolved request's resolution: it closes at once."""
        return await self.transition(request_id, "close")

    async def reopen(self, request_id: int, *, reason: str) -> Request:
        """Reopen a resolved request, saying why."""
        return await self.transition(request_id, "reopen", reason=reason)

    async def comment(self, request_id: int, body: str, *, visibility: str = "public") -> Comment:
        """Comment on a request (partners' comments are public)."""
        response = await self._send(
            "POST",
            f"/requests/{int(request_id)}/comments",
            json={"body": body, "visibility": visibility},
        )
        return _parse(Comment, response)

    # --- OP1 initiatives ---------------------------------------------------------------------

    async def propose_initiative(
        self, *, idempotency_key: str | None = None, **fields: Any
    ) -> Initiative:
        """Propose an initiative; see `RiskdeskClient.propose_initiative`."""
        response = await self._send(
            "POST",
            "/initiatives",
            json=_initiative_body(fields),
            headers=_idempotency(idempotency_key),
        )
        return _parse(Initiative, response)

    async def get_initiative(self, initiative_id: int) -> Initiative:
        """One initiative."""
        return _parse(Initiative, await self._send("GET", f"/initiatives/{int(initiative_id)}"))

    async def list_initiatives(self, **filters: Any) -> InitiativePage:
        """One page of initiatives; see `RiskdeskClient.list_initiatives`."""
        response = await self._send("GET", "/initiatives", params=_list_params(**filters))
        return _parse(InitiativePage, response)

    async def iter_initiatives(self, **filters: Any) -> AsyncIterator[Initiative]:
        """Every initiative matching the filters, following the cursors."""
        cursor = filters.pop("cursor", None)
        while True:
            page = await self.list_initiatives(cursor=cursor, **filters)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def update_initiative(
        self, initiative_id: int, *, version: int, **fields: Any
    ) -> Initiative:
        """Change fields; see `RiskdeskClient.update_initiative`."""
        response = await self._send(
            "PATCH",
            f"/initiatives/{int(initiative_id)}",
            json=_initiative_body(fields),
            headers=_if_match(version),
        )
        return _parse(Initiative, response)

    async def transition_initiative(
        self,
        initiative_id: int,
        action: str,
        *,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> Initiative:
        """Apply an action; see `RiskdeskClient.transition_initiative`."""
        response = await self._send(
            "POST",
            f"/initiatives/{int(initiative_id)}/transitions",
            json={"action": action, **_initiative_body(extra)},
            headers=_idempotency(idempotency_key),
        )
        return _parse(Initiative, response)

    async def roadmap(self, year: int, *, team: str | None = None) -> Roadmap:
        """The year's committed-and-later initiatives by quarter, with totals."""
        params = _list_params(year=int(year), team=team)
        return _parse(Roadmap, await self._send("GET", "/initiatives/roadmap", params=params))
