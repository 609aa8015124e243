"""Forwarding `/api/v1/...` to the service that owns the path.

This is the hottest code in riskdesk: every public call but the gateway's own runs through it.
It is a plain Starlette endpoint (no FastAPI dependency solving or pydantic), works on the raw
ASGI header list in one pass, streams bodies both ways without parsing them, and reuses one
long-lived `httpx.AsyncClient` (its connection pool is what makes forwarding cheap).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from http.cookiejar import CookieJar, DefaultCookiePolicy
from urllib.parse import quote_from_bytes

import httpx
import structlog
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from services.common.errors import (
    BadGateway,
    BadRequest,
    GatewayTimeout,
    NotFound,
    PayloadTooLarge,
)
from services.common.identity import IDENTITY_HEADER
from services.common.logging import current_request_id
from services.common.settings import Settings
from services.common.tracing import inject_traceparent, tracing_enabled
from services.gateway.routing import resolve
from services.gateway.runtime import GatewayRuntime

log = structlog.get_logger(__name__)

FORWARDED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

# Sized for a few hundred calls in flight per replica; past that, calls wait for a free connection
# (up to the pool timeout, then 504) instead of opening sockets without bound.
MAX_CONNECTIONS = 400
MAX_KEEPALIVE_CONNECTIONS = 100
KEEPALIVE_EXPIRY_SECONDS = 4.0

# RFC 9110 7.6.1: connection-specific headers are for one hop only.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Never passed on: the client's credentials (the service gets an identity token instead), any
# identity token a client made up, the request id (the gateway sends the one it bound), and
# `Expect` (the gateway's own server already answered any `100-continue`).
_IDENTITY_HEADER_NAME = IDENTITY_HEADER.lower().encode()
_DROPPED_REQUEST_HEADERS = HOP_BY_HOP | {
    b"host",
    b"authorization",
    b"expect",
    _IDENTITY_HEADER_NAME,
    b"x-request-id",
}
# Every printable ASCII character stays as it is in a forwarded path or query (`%` included).
_URL_SAFE = "".join(chr(code) for code in range(0x21, 0x7F))
# The gateway's own server adds date/server and the request id; copies would duplicate them.
_DROPPED_RESPONSE_HEADERS = HOP_BY_HOP | {b"date", b"server", b"x-request-id"}


def make_http_client(settings: Settings) -> httpx.AsyncClient:
    """The one client the gateway forwards with, made at startup and closed at shutdown."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.service_timeout_seconds),
        limits=httpx.Limits(
            max_connections=MAX_CONNECTIONS,
            max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS,
            # Below the services' own idle timeout (uvicorn closes a keep-alive connection after
            # 5 s idle): a connection the service is closing at the moment it is reused fails the
            # call with a 502 (a likely cause of one the outbox-lag benchmark hit after a pause).
            keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS,
        ),
        # The client is shared by every caller: a cookie one service sets for one caller must
        # never ride along on another caller's request, so the jar accepts none.
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        # Internal hops go straight to the services, never through an environment proxy.
        trust_env=False,
        follow_redirects=False,
    )


class UpstreamResponse(StreamingResponse):
    """The service's response streamed back as it arrives; the upstream is closed however it ends.

    Starlette skips a background task when the client disconnects mid-body, so the upstream is
    closed in `finally` instead: a leaked response would hold a pooled connection.
    """

    def __init__(self, upstream: httpx.Response) -> None:
        super().__init__(upstream.aiter_raw(), status_code=upstream.status_code)
        self.raw_headers = [
            (name.lower(), value)
            for name, value in upstream.headers.raw
            if name.lower() not in _DROPPED_RESPONSE_HEADERS
        ]
        self.upstream = upstream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.upstream.aclose()


async def _limited(stream: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    # Content-Length was checked up front; this catches chunked bodies (and lying lengths).
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > limit:
            raise _too_large(limit)
        yield chunk


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is larger than {limit} bytes.", max_bytes=limit)


def _url_text(raw: bytes) -> str:
    if raw.isascii():
        return raw.decode("ascii")
    # uvicorn refuses raw non-ASCII bytes in a request target, other servers may pass them on:
    # they become %XX escapes of the same bytes (decoding them as text first would make httpx
    # encode different bytes).
    return quote_from_bytes(raw, safe=_URL_SAFE)


async def forward(request: Request) -> Response:
    """Authenticate the key, then relay the call to its service with an identity token."""
    scope = request.scope
    path: str = scope["path"]
    service = resolve(path)
    if service is None:
        raise NotFound(f"There is no endpoint {path}.")
    runtime: GatewayRuntime = request.app.state.runtime

    # One pass over the raw header list: copy what goes on, note what the gateway needs.
    authorization: bytes | None = None
    content_length: bytes | None = None
    chunked = False
    connection: bytes | None = None
    headers: list[tuple[bytes, bytes]] = []
    for name, value in scope["headers"]:
        if name in _DROPPED_REQUEST_HEADERS:
            if name == b"authorization":
                authorization = value
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"connection":
                connection = value
            continue
        if name == b"content-length":
            content_length = value
        headers.append((name, value))
    if connection is not None:
        # Headers the client named in `Connection` are hop-by-hop too.
        named = {token.strip().lower() for token in connection.split(b",")} - HOP_BY_HOP
        if named:
            headers = [(name, value) for name, value in headers if name not in named]

    authenticator = runtime.authenticator
    key = await authenticator.authenticate(
        authorization.decode("latin-1") if authorization is not None else None
    )
    authenticator.check_rate(key)
    structlog.contextvars.bind_contextvars(key_id=key.id, team=key.team, upstream=service)

    limit = runtime.settings.max_body_bytes
    body: AsyncIterator[bytes] | None = None
    if content_length is not None:
        try:
            size = int(content_length)
        except ValueError:
            raise BadRequest("Content-Length is not a number.") from None
        if size > limit:
            raise _too_large(limit)
        if size > 0:
            body = _limited(request.stream(), limit)
    elif chunked:
        body = _limited(request.stream(), limit)

    headers.append((_IDENTITY_HEADER_NAME, authenticator.identity_token(key).encode()))
    request_id = current_request_id()
    if request_id is not None:
        headers.append((b"x-request-id", request_id.encode("latin-1")))
    if tracing_enabled():
        # The service's server span becomes a child of the gateway's (off: headers unchanged).
        headers = inject_traceparent(headers)

    raw_path: bytes = scope.get("raw_path") or path.encode()
    query: bytes = scope["query_string"]
    # The path and query go on as the client sent them, not decoded and re-encoded.
    url = runtime.upstreams[service] + _url_text(raw_path)
    if query:
        url += "?" + _url_text(query)
    outgoing = httpx.Request(scope["method"], url, headers=headers, content=body)
    try:
        upstream = await runtime.http.send(outgoing, stream=True)
    except httpx.TimeoutException:
        log.warning("upstream_timeout", service=service)
        timeout = runtime.settings.service_timeout_seconds
        raise GatewayTimeout(
            f"{service} did not answer within {timeout:g} s.", service=service
        ) from None
    except httpx.TransportError as exc:
        log.warning("upstream_unavailable", service=service, error=repr(exc))
        raise BadGateway(f"{service} is unavailable.", service=service) from None
    except ClientDisconnect:
        # The caller went away while sending its body; nobody is left to answer.
        return Response(status_code=499)
    return UpstreamResponse(upstream)
