"""Forwarding through the gateway to a REAL upstream: both run under uvicorn on free ports.

The upstream is a small app built with `create_service_app` (so it checks identity tokens exactly
as the real services do) with routes that echo what arrived, stream large bodies, stall, and fail.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import DeclarativeBase

from riskdesk.temporal_server import free_port
from services.common.db import make_metadata
from services.common.errors import Conflict, NotFound
from services.common.identity import Identity, Role, sign_identity
from services.common.logging import current_request_id
from services.common.migrations import upgrade
from services.common.outbox import OutboxMixin
from services.common.service_app import CurrentCaller, ServiceRuntime, create_service_app
from services.common.settings import Settings
from services.gateway.app import create_app
from services.gateway.keys.service import create_key
from services.gateway.runtime import GatewayRuntime

PROBLEM = "application/problem+json"
CHUNK = 64 * 1024


class UpstreamBase(DeclarativeBase):
    metadata = make_metadata()


class UpstreamOutbox(OutboxMixin, UpstreamBase):
    pass


upstream_router = APIRouter(prefix="/api/v1/requests")


@upstream_router.api_route(
    "/echo", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
)
async def echo(request: Request, caller: CurrentCaller) -> dict[str, Any]:
    """What reached the service: identity, raw query, request id, headers, body."""
    return {
        "method": request.method,
        "identity": {"subject": caller.subject, "team": caller.team, "role": str(caller.role)},
        "query": request.scope["query_string"].decode("latin-1"),
        "request_id": current_request_id(),
        "headers": [
            [k.decode("latin-1"), v.decode("latin-1")] for k, v in request.scope["headers"]
        ],
        "body": (await request.body()).decode(),
    }


@upstream_router.post("/upload")
async def upload(request: Request) -> dict[str, Any]:
    """Count and hash a streamed body."""
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        digest.update(chunk)
    return {"bytes": size, "sha256": digest.hexdigest()}


@upstream_router.get("/download")
async def download(size: int) -> StreamingResponse:
    """`size` bytes of a repeating pattern, streamed in chunks."""

    async def body() -> AsyncIterator[bytes]:
        sent = 0
        while sent < size:
            part = min(CHUNK, size - sent)
            yield pattern(sent, part)
            sent += part

    return StreamingResponse(body(), media_type="application/octet-stream")


@upstream_router.get("/slow")
async def slow(seconds: float) -> dict[str, str]:
    """Answer after a while."""
    await asyncio.sleep(seconds)
    return {"status": "late"}


@upstream_router.get("/missing")
async def missing() -> None:
    """A problem+json 404 from the service itself."""
    raise NotFound("Request 42 does not exist.")


@upstream_router.post("/conflict")
async def conflict() -> None:
    """A problem+json 409 from the service itself."""
    raise Conflict("Request 42 is already closed.", current_status="closed")


@upstream_router.post("/created", status_code=201)
async def created(response: Response) -> dict[str, str]:
    """A 201 with a Location and two cookies."""
    response.headers["Location"] = "/api/v1/requests/42"
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    return {"id": "42"}


@upstream_router.delete("/gone", status_code=204)
async def gone() -> Response:
    """A 204 without a body."""
    return Response(status_code=204)


def pattern(offset: int, size: int) -> bytes:
    block = bytes(range(256)) * (CHUNK // 256 + 2)
    start = offset % 256
    return block[start : start + size]


def upstream_app(settings: Settings) -> FastAPI:
    """A service built like the real ones, with the routes above and its own tiny schema."""

    async def create_tables(runtime: ServiceRuntime) -> None:
        async with runtime.engine.begin() as connection:
            await connection.run_sync(UpstreamBase.metadata.create_all)

    return create_service_app(
        service="intake",
        title="test upstream",
        description="echo service for gateway tests",
        routers=[upstream_router],
        outbox_model=UpstreamOutbox,
        settings=settings,
        on_startup=create_tables,
    )


@asynccontextmanager
async def serve(app: FastAPI, port: int | None = None) -> AsyncIterator[str]:
    """Run `app` under uvicorn on a free port in this event loop; yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)


@dataclass
class Stack:
    url: str
    client: httpx.AsyncClient
    runtime: GatewayRuntime

    async def key(self, *, team: str = "buyer-risk", role: Role = Role.PARTNER) -> str:
        async with self.runtime.sessionmaker() as session:
            _key, plaintext = await create_key(session, team=team, role=role, name="test key")
            await session.commit()
        return plaintext


StartGateway = Callable[..., AbstractAsyncContextManager[Stack]]


@pytest.fixture
async def upstream_url(make_settings: Callable[..., Settings]) -> AsyncIterator[str]:
    # The upstream keeps its rows in its own SQLite file even on the PostgreSQL run: its tiny
    # schema must not collide with the real intake tables in the shared scratch database.
    async with serve(upstream_app(make_settings(database_url=None))) as url:
        yield url


@pytest.fixture
def start_gateway(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, upstream_url: str
) -> StartGateway:
    """Start a gateway under uvicorn whose services are all at `upstream_url` unless overridden."""

    @asynccontextmanager
    async def start(
        *, urls: dict[str, str] | None = None, **overrides: Any
    ) -> AsyncIterator[Stack]:
        for service in ("intake", "escalation", "sop"):
            monkeypatch.setenv(
                f"RISKDESK_{service.upper()}_URL", (urls or {}).get(service, upstream_url)
            )
        settings = make_settings(**overrides)
        await asyncio.to_thread(
            upgrade, service="gateway", database_url=settings.database_url_of("gateway")
        )
        app = create_app(settings)
        async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield Stack(url=url, client=client, runtime=app.state.runtime)

    return start


@pytest.fixture
async def stack(start_gateway: StartGateway) -> AsyncIterator[Stack]:
    async with start_gateway() as running:
        yield running


def dead_url() -> str:
    """A URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


def bearer(plaintext: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {plaintext}", **extra}


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].endswith("/" + slug)
    assert body["detail"]
    return body


async def test_identity_reaches_the_service_and_a_forged_one_is_dropped(
    stack: Stack, unique_team: str, settings: Settings
) -> None:
    key = await stack.key(team=unique_team)
    forged = sign_identity(
        Identity(subject="mallory", team="everyone", role=Role.ADMIN),
        secret=settings.identity_secret,
        ttl_seconds=60,
    )
    response = await stack.client.get(
        "/api/v1/requests/echo",
        headers=bearer(key, **{"X-Riskdesk-Identity": forged, "X-Custom": "kept"}),
    )
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["identity"] == {"subject": key[3:11], "team": unique_team, "role": "partner"}
    names = [name for name, _value in seen["headers"]]
    assert names.count("x-riskdesk-identity") == 1
    assert "authorization" not in names
    assert ["x-custom", "kept"] in seen["headers"]


async def test_a_direct_call_without_the_gateway_is_refused(upstream_url: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{upstream_url}/api/v1/requests/echo")
    assert_problem(response, 401, "unauthorized")


async def test_request_id_round_trips(stack: Stack) -> None:
    key = await stack.key()
    given = await stack.client.get(
        "/api/v1/requests/echo", headers=bearer(key, **{"X-Request-Id": "rid-123"})
    )
    assert given.json()["request_id"] == "rid-123"
    assert given.headers.get_list("x-request-id") == ["rid-123"]

    made = await stack.client.get("/api/v1/requests/echo", headers=bearer(key))
    request_id = made.headers["x-request-id"]
    assert len(request_id) == 32
    assert made.json()["request_id"] == request_id


@pytest.mark.parametrize(
    "query",
    [
        "b=2&a=1&a=3",
        "sp=a+b&enc=%2F%3F%26%3D&empty=&flag",
        "q=%E2%9C%93&x=%20y",
        "filter[status]=open&sort=-created_at",
    ],
)
async def test_query_strings_go_on_verbatim(stack: Stack, query: str) -> None:
    key = await stack.key()
    async with httpx.AsyncClient() as client:
        # Sent as raw bytes so no client-side normalisation gets in the way.
        request = client.build_request(
            "GET", f"{stack.url}/api/v1/requests/echo", headers=bearer(key)
        )
        request.url = request.url.copy_with(query=query.encode())
        response = await client.send(request)
    assert response.status_code == 200
    assert response.json()["query"] == query


async def test_statuses_bodies_and_headers_pass_through(stack: Stack) -> None:
    key = await stack.key()
    missing = await stack.client.get("/api/v1/requests/missing", headers=bearer(key))
    body = assert_problem(missing, 404, "not-found")
    assert body["detail"] == "Request 42 does not exist."

    conflict = await stack.client.post("/api/v1/requests/conflict", headers=bearer(key))
    assert assert_problem(conflict, 409, "conflict")["current_status"] == "closed"

    created = await stack.client.post("/api/v1/requests/created", headers=bearer(key))
    assert created.status_code == 201
    assert created.headers["location"] == "/api/v1/requests/42"
    assert sorted(c.split(";")[0] for c in created.headers.get_list("set-cookie")) == ["a=1", "b=2"]
    assert len(created.headers.get_list("date")) == 1

    gone = await stack.client.delete("/api/v1/requests/gone", headers=bearer(key))
    assert gone.status_code == 204
    assert gone.content == b""

    posted = await stack.client.put(
        "/api/v1/requests/echo",
        content=b'{"title": "MO 7"}',
        headers=bearer(key, **{"Content-Type": "application/json"}),
    )
    assert posted.json()["method"] == "PUT"
    assert posted.json()["body"] == '{"title": "MO 7"}'


async def test_cookies_set_for_one_caller_never_reach_another(stack: Stack) -> None:
    first, second = await stack.key(team="team-a"), await stack.key(team="team-b")
    assert (
        await stack.client.post("/api/v1/requests/created", headers=bearer(first))
    ).status_code == 201
    async with httpx.AsyncClient(base_url=stack.url) as fresh:
        echoed = await fresh.get("/api/v1/requests/echo", headers=bearer(second))
    assert "cookie" not in [name for name, _value in echoed.json()["headers"]]


async def test_large_bodies_stream_both_ways(stack: Stack) -> None:
    key = await stack.key()
    limit = stack.runtime.settings.max_body_bytes
    payload = pattern(0, limit - 10)
    sized = await stack.client.post("/api/v1/requests/upload", content=payload, headers=bearer(key))
    assert sized.json() == {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), CHUNK):
            yield payload[start : start + CHUNK]

    chunked = await stack.client.post(
        "/api/v1/requests/upload", content=chunks(), headers=bearer(key)
    )
    assert chunked.json() == {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}

    size = 5 * 1024 * 1024 + 7
    digest = hashlib.sha256()
    received = 0
    async with stack.client.stream(
        "GET", "/api/v1/requests/download", params={"size": size}, headers=bearer(key)
    ) as r:
        assert r.status_code == 200
        async for part in r.aiter_raw():
            received += len(part)
            digest.update(part)
    assert received == size
    assert digest.hexdigest() == hashlib.sha256(_expected(size)).hexdigest()


def _expected(size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        out += pattern(len(out), min(CHUNK, size - len(out)))
    return bytes(out)


async def test_bodies_over_the_limit_get_413(stack: Stack) -> None:
    key = await stack.key()
    limit = stack.runtime.settings.max_body_bytes
    too_big = b"x" * (limit + 1)
    declared = await stack.client.post(
        "/api/v1/requests/upload", content=too_big, headers=bearer(key)
    )
    assert_problem(declared, 413, "payload-too-large")

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(too_big), CHUNK):
            yield too_big[start : start + CHUNK]

    streamed = await stack.client.post(
        "/api/v1/requests/upload", content=chunks(), headers=bearer(key)
    )
    assert_problem(streamed, 413, "payload-too-large")
    # The gateway still serves normally afterwards.
    assert (await stack.client.get("/api/v1/requests/echo", headers=bearer(key))).status_code == 200


async def test_a_service_that_is_down_gets_502(start_gateway: StartGateway) -> None:
    async with start_gateway(urls={"intake": dead_url()}) as stack:
        key = await stack.key()
        body = assert_problem(
            await stack.client.get("/api/v1/requests/echo", headers=bearer(key)),
            502,
            "service-unavailable",
        )
        assert body["detail"] == "intake is unavailable."
        assert body["service"] == "intake"


async def test_a_slow_service_gets_504(start_gateway: StartGateway) -> None:
    async with start_gateway(service_timeout_seconds=0.3) as stack:
        key = await stack.key()
        response = await stack.client.get(
            "/api/v1/requests/slow", params={"seconds": 1.5}, headers=bearer(key)
        )
        body = assert_problem(response, 504, "upstream-timeout")
        assert "intake" in body["detail"]
        fast = await stack.client.get(
            "/api/v1/requests/slow", params={"seconds": 0}, headers=bearer(key)
        )
        assert fast.status_code == 200


async def test_rate_limit_per_key_gets_429_with_retry_after(start_gateway: StartGateway) -> None:
    async with start_gateway(rate_limit="3/minute") as stack:
        busy, calm = await stack.key(), await stack.key()
        for _ in range(3):
            assert (
                await stack.client.get("/api/v1/requests/echo", headers=bearer(busy))
            ).status_code == 200
        limited = await stack.client.get("/api/v1/requests/echo", headers=bearer(busy))
        body = assert_problem(limited, 429, "rate-limited")
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert body["retry_after"] == int(limited.headers["retry-after"])
        # The gateway's own endpoints count too; other keys are unaffected.
        assert_problem(
            await stack.client.get("/api/v1/me", headers=bearer(busy)), 429, "rate-limited"
        )
        assert (
            await stack.client.get("/api/v1/requests/echo", headers=bearer(calm))
        ).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/requestsX",
        "/api/v1/requestsX/1",
        "/api/v1/unknown",
        "/api/v1/",
        "/api/v1",
        "/api/v2/requests",
    ],
)
async def test_unknown_paths_get_404_problem(stack: Stack, path: str) -> None:
    key = await stack.key()
    assert_problem(await stack.client.get(path, headers=bearer(key)), 404, "not-found")


async def test_forwarding_needs_a_valid_key(stack: Stack) -> None:
    response = await stack.client.get(
        "/api/v1/requests/echo", headers={"Authorization": "Bearer nope"}
    )
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_readyz_reports_every_service(start_gateway: StartGateway) -> None:
    async with start_gateway() as stack:
        ready = await stack.client.get("/readyz")
        assert ready.status_code == 200, ready.text
        detail = ready.json()
        assert detail["status"] == "ok"
        assert detail["database"] == "ok"
        assert set(detail["services"]) == {"intake", "escalation", "sop"}
        assert all(
            item["status"] == "ok" and item["outbox_pending"] == 0
            for item in detail["services"].values()
        )
        assert (await stack.client.get("/healthz")).json() == {"status": "ok", "service": "gateway"}

    async with start_gateway(urls={"escalation": dead_url()}) as stack:
        down = await stack.client.get("/readyz")
        assert down.status_code == 503
        detail = down.json()
        assert detail["status"] == "unavailable"
        assert detail["services"]["escalation"]["status"] == "unavailable"
        assert detail["services"]["intake"]["status"] == "ok"
        assert (await stack.client.get("/healthz")).status_code == 200


async def test_openapi_merges_services_and_recovers_after_an_outage(
    start_gateway: StartGateway, make_settings: Callable[..., Settings]
) -> None:
    port = free_port()
    late_url = f"http://127.0.0.1:{port}"
    async with start_gateway(
        urls={"intake": late_url, "escalation": dead_url(), "sop": dead_url()}
    ) as stack:
        partial = await stack.client.get("/openapi.json")
        assert partial.status_code == 200
        spec = partial.json()
        assert "/api/v1/keys" in spec["paths"]
        assert "/api/v1/requests/upload" not in spec["paths"]
        assert sorted(spec["info"]["x-riskdesk-unavailable"]) == ["escalation", "intake", "sop"]

        async with serve(upstream_app(make_settings(database_url=None)), port=port):
            merged = (await stack.client.get("/openapi.json")).json()
        assert {
            "/api/v1/requests/slow",
            "/api/v1/requests/upload",
            "/api/v1/keys",
            "/api/v1/me",
            "/readyz",
        } <= set(merged["paths"])
        # The service's own health endpoints are not public paths of the gateway.
        assert merged["paths"]["/healthz"]["get"]["summary"].startswith("Liveness: the gateway")
        assert merged["info"]["x-riskdesk-unavailable"] == ["escalation", "sop"]
        assert merged["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
        assert merged["security"] == [{"ApiKey": []}]
        assert merged["paths"]["/healthz"]["get"]["security"] == []
        assert "Problem" in merged["components"]["schemas"]
        # Cached: the upstream is gone again, the document keeps its paths.
        again = (await stack.client.get("/openapi.json")).json()
        assert "/api/v1/requests/upload" in again["paths"]

        docs = await stack.client.get("/docs")
        assert docs.status_code == 200
        assert "swagger" in docs.text.lower()
