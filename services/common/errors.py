"""The exception tree every service raises, rendered as RFC 9457 problem+json.

Domain code raises these; `install_problem_handlers` turns them (and FastAPI's own validation and
routing errors) into `application/problem+json` with a stable `type`. No input may produce a 500:
an unexpected exception still becomes a problem document, and is logged with its request id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://riskdesk.dev/problems/"

log = structlog.get_logger(__name__)


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """The problem+json body of this error."""
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class BadRequest(DomainError):
    status, slug, title = 400, "bad-request", "Bad request"


class Unauthorized(DomainError):
    status, slug, title = 401, "unauthorized", "Authentication required"


class Forbidden(DomainError):
    status, slug, title = 403, "forbidden", "Not allowed"


class NotFound(DomainError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(DomainError):
    status, slug, title = 409, "conflict", "Conflict"


class InvalidTransition(Conflict):
    """A state change that the current state does not allow; says which ones it does."""

    slug, title = "invalid-transition", "Transition not allowed"

    def __init__(self, detail: str, *, current: str, allowed: Sequence[str]) -> None:
        super().__init__(detail, current_status=current, allowed_actions=sorted(allowed))


class PreconditionFailed(DomainError):
    status, slug, title = 412, "precondition-failed", "Precondition failed"


class PayloadTooLarge(DomainError):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class ValidationFailed(DomainError):
    """Input that parses but breaks a rule; `errors` lists the offending fields."""

    status, slug, title = 422, "validation-error", "Invalid input"

    def __init__(self, detail: str, *, errors: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(detail, errors=list(errors))


class TooManyRequests(DomainError):
    status, slug, title = 429, "rate-limited", "Too many requests"


class BadGateway(DomainError):
    status, slug, title = 502, "service-unavailable", "Upstream service unavailable"


class ServiceUnavailable(DomainError):
    status, slug, title = 503, "not-ready", "Service not ready"


class GatewayTimeout(DomainError):
    status, slug, title = 504, "upstream-timeout", "Upstream service timed out"


def problem_response(error: DomainError, request: Request | None = None) -> JSONResponse:
    """Render a DomainError as a problem+json response."""
    instance = request.url.path if request is not None else None
    headers = (
        {"Retry-After": str(error.extra["retry_after"])} if "retry_after" in error.extra else None
    )
    return JSONResponse(
        error.to_problem(instance),
        status_code=error.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        errors.append(
            {"field": ".".join(loc), "message": err.get("msg", ""), "code": err.get("type", "")}
        )
    return errors


async def _on_domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return problem_response(exc, request)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _field_errors(exc)
    if any(e["code"] == "json_invalid" for e in errors):
        return problem_response(
            BadRequest("The request body is not valid JSON.", errors=errors), request
        )
    return problem_response(
        ValidationFailed("The request has invalid fields.", errors=errors), request
    )


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    error = DomainError(str(exc.detail))
    error.status = exc.status_code
    error.slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    error.title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
    response = problem_response(error, request)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled_error", path=request.url.path)
    error = DomainError("An unexpected error occurred; it has been logged with the request id.")
    error.status, error.slug, error.title = 500, "internal-error", "Internal error"
    return problem_response(error, request)


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of `app` a problem+json response."""
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
    _document_problem_media_type(app)


def _document_problem_media_type(app: FastAPI) -> None:
    """Document problem responses as `application/problem+json`, the type they are sent with.

    FastAPI documents every `{"model": Problem}` response as `application/json`; clients (and
    schemathesis' conformance checks) then meet a content type the document never mentions.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
                for response in responses.values():
                    content = response.get("content", {})
                    ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
                    if ref.endswith("/Problem"):
                        content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class Problem(BaseModel):
    """RFC 9457 problem details, as every error of the API is returned."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": description}
    for status, description in (
        (400, "Malformed request (for example a body that is not JSON)"),
        (401, "Missing, unknown or revoked credentials"),
        (403, "The caller's role may not do this"),
        (404, "Not found, or not visible to the caller"),
        (422, "Invalid input; `errors` names the fields"),
    )
}
