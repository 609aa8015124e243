"""The whole riskdesk stack in this process for the security tests: the gateway and the three
services under uvicorn and a worker, on a Temporal dev server of their own.

Everything runs on an event loop in a background thread, so both async tests (httpx) and
synchronous clients (schemathesis uses `requests`) can call it over real HTTP. The security suite
gets its own Temporal server because its databases start their ids at 1: the workflow ids
(`request-1`, `escalation-1`, ...) would otherwise meet other tests' workflows.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI

from riskdesk.temporal_server import free_port
from services.common.identity import Role
from services.common.migrations import upgrade
from services.common.settings import SERVICE_NAMES, ServiceName, Settings
from services.common.temporal import connect_temporal
from services.escalation.app import create_app as create_escalation_app
from services.gateway.app import create_app as create_gateway_app
from services.gateway.keys.service import create_key, revoke_key
from services.intake.app import create_app as create_intake_app
from services.sop.app import create_app as create_sop_app
from workflows.worker import build_worker

START_TIMEOUT_SECONDS = 90.0
APP_FACTORIES: dict[ServiceName, Callable[[Settings], FastAPI]] = {
    "gateway": create_gateway_app,
    "intake": create_intake_app,
    "escalation": create_escalation_app,
    "sop": create_sop_app,
}


@dataclass
class ApiKey:
    """A key made for a test: its id (the identity's subject), team, role and secret."""

    id: str
    team: str
    role: Role
    plaintext: str

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header of this key."""
        return {"Authorization": f"Bearer {self.plaintext}"}


@dataclass
class RunningStack:
    """The URLs and apps of a running stack, and a way to run coroutines on its loop."""

    settings: Settings
    urls: dict[ServiceName, str]
    apps: dict[ServiceName, FastAPI]
    loop: asyncio.AbstractEventLoop
    keys: list[ApiKey] = field(default_factory=list)

    @property
    def gateway(self) -> str:
        """The gateway's base URL."""
        return self.urls["gateway"]

    def run(self, coroutine: Any) -> Any:
        """Run a coroutine on the stack's loop (where its engines live) and wait for it."""
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout=60)

    async def key(self, *, team: str, role: Role, name: str = "security test") -> ApiKey:
        """A new API key, made in the gateway's key store (as `riskdesk keys create` does)."""
        return await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(self._create_key(team, role, name), self.loop)
        )

    async def revoke(self, key: ApiKey) -> None:
        """Revoke a key in the gateway's key store."""
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._revoke(key), self.loop))

    async def _create_key(self, team: str, role: Role, name: str) -> ApiKey:
        async with self.apps["gateway"].state.runtime.sessionmaker() as session:
            row, plaintext = await create_key(session, team=team, role=role, name=name)
            await session.commit()
        key = ApiKey(id=row.id, team=team, role=role, plaintext=plaintext)
        self.keys.append(key)
        return key

    async def _revoke(self, key: ApiKey) -> None:
        async with self.apps["gateway"].state.runtime.sessionmaker() as session:
            await revoke_key(session, key_id=key.id)
            await session.commit()
        self.apps["gateway"].state.runtime.authenticator.forget(key.id)


def stack_settings(base: Settings) -> Settings:
    """`base` with a free port for every service (the worker reaches them by URL)."""
    ports = {f"{service}_port": free_port() for service in SERVICE_NAMES}
    return base.model_copy(update=ports)


async def _serve(app: FastAPI, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    return server, task


@contextmanager
def running_stack(settings: Settings) -> Iterator[RunningStack]:
    """Migrate, serve every service and the gateway, run a worker; stop it all afterwards."""
    for service in APP_FACTORIES:
        upgrade(service=service, database_url=settings.database_url_of(service))
    ready: Future[RunningStack] = Future()
    stopping = threading.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []
        try:
            async with AsyncExitStack() as exits:
                apps = {name: factory(settings) for name, factory in APP_FACTORIES.items()}
                for name, app in apps.items():
                    servers.append(await _serve(app, settings.port_of(name)))
                temporal = await connect_temporal(
                    settings.temporal_address, settings.temporal_namespace
                )
                await exits.enter_async_context(build_worker(temporal, settings))
                urls = {name: f"http://127.0.0.1:{settings.port_of(name)}" for name in apps}
                ready.set_result(RunningStack(settings=settings, urls=urls, apps=apps, loop=loop))
                watcher = loop.run_in_executor(None, stopping.wait)
                watcher.add_done_callback(lambda _done: loop.call_soon_threadsafe(stop.set))
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise
        finally:
            for server, _task in servers:
                server.should_exit = True
            for _server, task in servers:
                await asyncio.wait_for(task, timeout=30)

    errors: list[BaseException] = []

    def thread_main() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by the context manager's exit
            errors.append(exc)

    thread = threading.Thread(target=thread_main, name="security-stack", daemon=True)
    thread.start()
    try:
        yield ready.result(timeout=START_TIMEOUT_SECONDS)
    finally:
        stopping.set()
        thread.join(timeout=60)
    if errors and not isinstance(errors[0], asyncio.CancelledError):
        raise errors[0]
