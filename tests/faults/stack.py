"""The whole stack as separate processes the fault tests can SIGKILL and start again one by one.

`riskdesk up` stops everything when a child dies (by design), so the fault tests run the parts
themselves, as `riskdesk up` would: a Temporal dev server persisted in a SQLite file (so it comes
back with its state after a SIGKILL, like `riskdesk up`'s `temporal.db`), the four services
(`riskdesk serve <name>`) and the worker (`riskdesk worker`), on free ports, one data dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.sla_lateness import RISKDESK, parts_environment
from riskdesk.temporal_server import dev_server_command, free_port, wait_until_serving
from services.common.settings import SERVICE_NAMES

READY_TIMEOUT = 90.0
SERVICES: tuple[str, ...] = tuple(SERVICE_NAMES)
PARTS: tuple[str, ...] = ("temporal", *SERVICES, "worker")


@dataclass
class FaultStack:
    """Temporal, the four services and the worker; each part can be killed and started again."""

    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    kills: dict[str, int] = field(default_factory=dict)
    admin_key: str = ""

    @classmethod
    def create(cls, data_dir: Path, database_url: str | None) -> FaultStack:
        """A stack on free ports with fast outbox polling and fast delivery retries."""
        env = parts_environment(
            data_dir,
            temporal_address=f"127.0.0.1:{free_port()}",
            database_url=database_url,
            # Several workers may run on this machine at once: no fixed metrics port.
            worker_metrics_port="0",
            outbox_max_backoff_seconds="1",
            webhook_timeout_seconds="2",
            service_timeout_seconds="5",
        )
        env["RISKDESK_LOG_LEVEL"] = "INFO"
        return cls(env=env)

    # -- where things are ----------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return Path(self.env["RISKDESK_DATA_DIR"])

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def temporal_address(self) -> str:
        return self.env["RISKDESK_TEMPORAL_ADDRESS"]

    def url_of(self, service: str) -> str:
        """Base URL of one of the four services."""
        return f"http://127.0.0.1:{self.env[f'RISKDESK_{service.upper()}_PORT']}"

    @property
    def gateway_url(self) -> str:
        return self.url_of("gateway")

    # -- running parts -------------------------------------------------------------------------

    def run_cli(self, *args: str) -> str:
        """`riskdesk <args>` with this stack's environment; its stdout."""
        done = subprocess.run(
            [*RISKDESK, *args], env=self.env, capture_output=True, check=False, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"riskdesk {' '.join(args)} failed:\n{done.stderr.decode()}")
        return done.stdout.decode()

    def prepare(self) -> None:
        """Data and log dirs, every service migrated, an admin key."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.run_cli("migrate")
        output = self.run_cli("keys", "create", "--team", "risk-mining", "--role", "admin")
        self.admin_key = output.strip().splitlines()[-1]

    def _command(self, name: str) -> list[str]:
        if name == "temporal":
            host, _, port = self.temporal_address.rpartition(":")
            # Its HTTP and metrics ports are chosen once: a restart finds the same ones again.
            return dev_server_command(
                host=host,
                port=int(port),
                ui_port=None,
                db_file=self.data_dir / "temporal.db",
                http_port=int(self.env.setdefault("FAULTS_TEMPORAL_HTTP_PORT", str(free_port()))),
                metrics_port=int(
                    self.env.setdefault("FAULTS_TEMPORAL_METRICS_PORT", str(free_port()))
                ),
            )
        if name == "worker":
            return [*RISKDESK, "worker"]
        return [*RISKDESK, "serve", name]

    def start(self, name: str) -> subprocess.Popen[bytes]:
        """Start one part; its output is appended to logs/<name>.log (restarts follow on)."""
        with (self.log_dir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                self._command(name),
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes[name] = process
        return process

    def kill(self, name: str) -> None:
        """SIGKILL one part (no shutdown of any kind) and reap it."""
        process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL, (name, process.returncode)
        self.kills[name] = self.kills.get(name, 0) + 1

    async def restart(self, name: str) -> float:
        """Start a killed part again and wait until it serves; seconds until it did."""
        started = time.monotonic()
        since = time.time() - 1
        self.start(name)
        await self.wait_ready(name, since=since)
        return time.monotonic() - started

    async def start_all(self) -> None:
        """Temporal first, then the services and the worker; wait until all serve."""
        await asyncio.to_thread(self.prepare)
        self.start("temporal")
        await self.wait_ready("temporal")
        since = time.time() - 1
        for name in (*SERVICES, "worker"):
            self.start(name)
        for name in (*SERVICES, "worker"):
            await self.wait_ready(name, since=since)

    def stop(self) -> None:
        """SIGTERM everything (Temporal last), SIGKILL what is left after a grace period."""
        first = [name for name in self.processes if name != "temporal"]
        last = [name for name in self.processes if name == "temporal"]
        for group in (first, last):
            for name in group:
                if self.processes[name].poll() is None:
                    self.processes[name].terminate()
            deadline = time.monotonic() + 15
            for name in group:
                try:
                    self.processes[name].wait(timeout=max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    self.processes[name].kill()
                    self.processes[name].wait()
        self.processes.clear()

    # -- readiness -----------------------------------------------------------------------------

    def check_alive(self) -> None:
        """Raise with the logs if a part that should run has exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}\n{self.logs()}")

    def logs(self, tail: int = 30) -> str:
        """The last lines of every part's log (for failure messages)."""
        parts = []
        for log in sorted(self.log_dir.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-tail:]
            parts.append(f"--- {log.name}:\n" + "\n".join(lines))
        return "\n".join(parts)

    async def wait_ready(self, name: str, *, since: float | None = None) -> None:
        """Until the part serves: Temporal answers, a service's /readyz is 200 (the gateway's
        /healthz: its /readyz also wants every other service), the worker polls its queue."""
        if name == "temporal":
            await wait_until_serving(self.temporal_address, within_seconds=READY_TIMEOUT)
            return
        if name == "worker":
            await self._wait_worker(since if since is not None else time.time() - 1)
            return
        path = "/healthz" if name == "gateway" else "/readyz"
        deadline = time.monotonic() + READY_TIMEOUT
        async with httpx.AsyncClient(timeout=2, trust_env=False) as client:
            while True:
                self.check_alive()
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.url_of(name) + path)).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not ready\n{self.logs()}")
                await asyncio.sleep(0.1)

    async def _wait_worker(self, since: float) -> None:
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
        from temporalio.service import RPCError

        from services.common.temporal import connect_temporal

        client = await connect_temporal(self.temporal_address, "default")
        request = DescribeTaskQueueRequest(
            namespace="default",
            task_queue=TaskQueue(name=self.env["RISKDESK_TASK_QUEUE"]),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        after = datetime.fromtimestamp(since, UTC)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            self.check_alive()
            with contextlib.suppress(RPCError):
                response = await client.workflow_service.describe_task_queue(request)
                if any(
                    p.last_access_time.ToDatetime(tzinfo=UTC) >= after for p in response.pollers
                ):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker does not poll\n{self.logs()}")
            await asyncio.sleep(0.2)
