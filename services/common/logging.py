"""structlog JSON logging and the request id that follows a call gateway → service → workflow.

The request id is taken from `X-Request-Id` (or made), bound in middleware so every log line of
the request carries it (access logs included), echoed in the response, and readable with
`current_request_id()` so outbox rows and workflow signals can carry it on.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from contextvars import ContextVar

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-Id"
SQL_PARAMETER_LOGGERS = ("aiosqlite", "sqlalchemy.engine", "sqlalchemy.pool")
_request_id: ContextVar[str | None] = ContextVar("riskdesk_request_id", default=None)


def configure_logging(*, service: str, level: str = "INFO", json: bool = True) -> None:
    """Route structlog and stdlib logging to stderr as JSON lines tagged with the service name."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_service(service),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own access log duplicates ours (which carries the request id).
    logging.getLogger("uvicorn.access").disabled = True
    # Their DEBUG/INFO lines carry bound SQL parameters (webhook secrets among them): never
    # below WARNING, whatever the level asked for.
    for name in SQL_PARAMETER_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def _add_service(service: str) -> structlog.types.Processor:
    def processor(
        _logger: object, _name: str, event_dict: structlog.types.EventDict
    ) -> structlog.types.EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return processor


def current_request_id() -> str | None:
    """The request id of the call being served, if any."""
    return _request_id.get()


def bind_request_id(request_id: str | None) -> None:
    """Bind a request id for the current task (used by workflows' activities too)."""
    _request_id.set(request_id)
    if request_id is None:
        structlog.contextvars.unbind_contextvars("request_id")
    else:
        structlog.contextvars.bind_contextvars(request_id=request_id)


def _valid_request_id(value: str) -> bool:
    return 0 < len(value) <= 128 and value.isprintable() and " " not in value


class RequestIdMiddleware:
    """Pure ASGI middleware: bind the request id, echo it, and write one access log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = structlog.get_logger("access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"),
            "",
        )
        request_id = incoming if _valid_request_id(incoming) else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        bind_request_id(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            path = scope.get("path", "")
            if path not in ("/healthz", "/readyz", "/metrics"):
                self.log.info(
                    "http_request",
                    method=scope.get("method"),
                    path=path,
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )
            structlog.contextvars.clear_contextvars()
            _request_id.set(None)
