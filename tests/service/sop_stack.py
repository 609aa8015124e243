"""A running SOP stack for tests: the sop service and the gateway under uvicorn (the worker's
activities reach them over real HTTP), the real Temporal dev server and a worker."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import uvicorn
from sqlalchemy import select, text
from temporalio.client import Client

from riskdesk.temporal_server import free_port
from services.common.db import make_engine
from services.common.identity import Identity, Role, sign_identity
from services.common.migrations import upgrade
from services.common.settings import Settings
from services.common.temporal import connect_temporal
from services.gateway.app import create_app as create_gateway_app
from services.gateway.notifications.models import NotificationEvent
from services.sop.app import create_app as create_sop_app
from workflows.worker import build_worker

T = TypeVar("T")
PROBLEM = "application/problem+json"
# Workflow ids derive from version and rollout ids, and the dev server lives for the session:
# every test's tables start their ids at a random offset so no two tests share a workflow id.
ID_TABLES = ("sop", "sop_version", "sop_rollout")


@asynccontextmanager
async def serve(app: Any, port: int) -> AsyncIterator[str]:
    """Run an ASGI app under uvicorn on `port` in this event loop; yields its base URL."""
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


async def migrate_sop(settings: Settings) -> None:
    """Apply the sop migrations and move the id sequences to a random start."""
    url = settings.database_url_of("sop")
    await asyncio.to_thread(upgrade, service="sop", database_url=url)
    engine = make_engine(url, schema="sop", pool_size=1)
    try:
        async with engine.begin() as connection:
            for table in ID_TABLES:
                start = random.randint(10**6, 2 * 10**9)
                if connection.dialect.name == "sqlite":
                    await connection.execute(
                        text("INSERT INTO sqlite_sequence (name, seq) VALUES (:t, :n)"),
                        {"t": table, "n": start},
                    )
                else:
                    # `table` is one of ID_TABLES, never input.
                    await connection.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"  # noqa: S608
                            f" GREATEST(:n, (SELECT last_value FROM {table}_id_seq)))"
                        ),
                        {"n": start},
                    )
    finally:
        await engine.dispose()


async def eventually(
    probe: Callable[[], Awaitable[T]], check: Callable[[T], bool], *, within: float = 30
) -> T:
    """Poll until `check` holds (the outbox, workflows and activities are asynchronous)."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition never held; last value {value!r}")
        await asyncio.sleep(0.1)


@dataclass
class SopStack:
    """The running stack and helpers to call it as anyone."""

    settings: Settings
    http: httpx.AsyncClient
    temporal: Client
    gateway_app: Any
    sop_app: Any

    def as_(
        self, subject: str, *, role: Role = Role.ANALYST, team: str = "risk-mining"
    ) -> dict[str, str]:
        """Headers of a caller, as the gateway would sign them."""
        token = sign_identity(
            Identity(subject=subject, team=team, role=role),
            secret=self.settings.identity_secret,
            ttl_seconds=300,
        )
        return {"X-Riskdesk-Identity": token}

    async def published(self, prefix: str = "") -> list[NotificationEvent]:
        """Events the gateway received on `POST /internal/events` (ids starting with `prefix`)."""
        async with self.gateway_app.state.runtime.sessionmaker() as session:
            rows = await session.execute(
                select(NotificationEvent).where(NotificationEvent.event_id.startswith(prefix))
            )
            return list(rows.scalars())

    async def events(self, sop_id: int) -> list[dict[str, Any]]:
        """The SOP's whole audit trail."""
        response = await self.http.get(
            f"/api/v1/sops/{sop_id}/events", params={"limit": 200}, headers=self.as_("reader")
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


@asynccontextmanager
async def running_sop_stack(make_settings: Callable[..., Settings]) -> AsyncIterator[SopStack]:
    """Migrate, serve the sop service and the gateway, run a worker; stop it all afterwards."""
    settings = make_settings(
        sop_port=free_port(), gateway_port=free_port(), service_timeout_seconds=5.0
    )
    await migrate_sop(settings)
    await asyncio.to_thread(
        upgrade, service="gateway", database_url=settings.database_url_of("gateway")
    )
    sop_app = create_sop_app(settings)
    gateway_app = create_gateway_app(settings)
    temporal = await connect_temporal(settings.temporal_address, settings.temporal_namespace)
    async with AsyncExitStack() as stack:
        sop_url = await stack.enter_async_context(serve(sop_app, settings.sop_port))
        await stack.enter_async_context(serve(gateway_app, settings.gateway_port))
        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=sop_url, trust_env=False, timeout=30)
        )
        await stack.enter_async_context(build_worker(temporal, settings))
        yield SopStack(
            settings=settings,
            http=http,
            temporal=temporal,
            gateway_app=gateway_app,
            sop_app=sop_app,
        )


def assert_problem(
    response: httpx.Response, status: int, slug: str | None = None
) -> dict[str, Any]:
    """The response is problem+json with this status (and type slug)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if slug is not None:
        assert body["type"].endswith("/" + slug), body
    return body
