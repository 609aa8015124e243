"""`riskdesk up`: the whole stack on one machine as child processes, with nothing installed by hand.

Order: check every port is free; start the Temporal dev server (persisted under the data dir);
migrate every service in-process while Temporal boots; start the four services and the worker
(`riskdesk serve <name>`, `riskdesk worker`) with the launcher's resolved settings in their
environment; wait until every service answers /readyz and the worker polls its task queue;
make sure an admin key exists; seed a demo data set once; write `stack.json`; then supervise.
A child that dies stops everything with exit code 1; SIGINT/SIGTERM stops everything with 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from riskdesk.temporal_server import dev_server_command, free_port_except, port_is_free
from services.common.identity import Role
from services.common.settings import SERVICE_NAMES, Settings

READY_TIMEOUT_SECONDS = 60.0
STOP_GRACE_SECONDS = 10.0
TAIL_LINES = 25

ADMIN_TEAM = "risk-mining"
ADMIN_KEY_NAME = "admin (riskdesk up)"
DEMO_TEAM = "buyer-risk"
DEMO_PARTNER_KEY_NAME = "demo partner (riskdesk up)"

# Filed through the gateway with the demo partner key the first time a data dir is used.
DEMO_REQUESTS: tuple[dict[str, Any], ...] = (
    {
        "request_type": "mo_investigation",
        "title": "Gift-card resale ring using freshly created buyer accounts",
        "description": "About 240 accounts created in the last two weeks buy gift cards with "
        "stolen cards and resell them. Please investigate the MO and propose rules.",
        "priority": "P1",
        "marketplace": "US",
        "impact": {"accounts_affected": 240, "money_at_risk_per_week": "18500", "currency": "USD"},
        "tags": ["gift-cards", "account-farming"],
    },
    {
        "request_type": "rule_change",
        "title": "Raise the velocity threshold of promo-abuse rule R-118",
        "description": "R-118 blocks legitimate holiday shoppers; false positives doubled.",
        "priority": "P2",
        "tags": ["promo-abuse"],
    },
    {
        "request_type": "data_request",
        "title": "Weekly chargeback counts by payment instrument, last 12 weeks",
        "description": "",
        "priority": "P3",
    },
)


class StackError(Exception):
    """A part of the stack could not start or died; the message says which and why."""


class _Stop(BaseException):
    """SIGINT/SIGTERM arrived: stop everything and exit 0 (BaseException so no handler eats it)."""


@dataclass
class Child:
    """One child process of the stack and the file its output goes to."""

    name: str
    command: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    def exit_code(self) -> int | None:
        """The exit code if the child has exited, else None."""
        return None if self.process is None else self.process.poll()

    def tail(self, lines: int = TAIL_LINES) -> str:
        """The last lines of the child's output (for error messages)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # If the launcher is killed outright (SIGKILL), the kernel sends its children SIGTERM, so no
    # orphaned server keeps a port busy. Linux only; elsewhere it is simply skipped.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def split_address(address: str) -> tuple[str, int]:
    """`host:port` -> (host, port)."""
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def child_environment(settings: Settings) -> dict[str, str]:
    """This process's environment plus every resolved setting as `RISKDESK_*`, so children agree."""
    env = dict(os.environ)
    for name, value in settings.model_dump(mode="json").items():
        key = f"RISKDESK_{name.upper()}"
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value if isinstance(value, str) else json.dumps(value)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def write_secret(path: Path, secret: str) -> None:
    """Write a key file readable by its owner only (0600), replacing any old one atomically."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secret + "\n")
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def _read_secret(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def _write_json(path: Path, document: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(temporary, path)


@dataclass
class StackLauncher:
    """Starts, watches and stops the local stack; `run()` is `riskdesk up`."""

    settings: Settings
    out: Callable[[str], None] = field(default=lambda line: print(line, flush=True))
    children: list[Child] = field(default_factory=list)
    _stopping: bool = False
    _shutting_down: bool = False
    _hurry: bool = False
    _started: bool = False

    def __post_init__(self) -> None:
        # Children may run with another working directory: give them an absolute data dir.
        self.settings = self.settings.model_copy(
            update={"data_dir": self.settings.data_dir.resolve()}
        )
        self.data_dir = self.settings.data_dir
        self.log_dir = self.data_dir / "logs"
        self.stack_file = self.data_dir / "stack.json"
        self.admin_key_file = self.data_dir / "admin.key"
        self.partner_key_file = self.data_dir / "demo-partner.key"
        self.seeded_marker = self.data_dir / "demo-seeded"
        self.temporal_host, self.temporal_port = split_address(self.settings.temporal_address)
        self.gateway_url = self.settings.url_of("gateway")
        self.temporal_ui_url = f"http://{self.temporal_host}:{self.settings.temporal_ui_port}"

    # -- the whole run -------------------------------------------------------------------------

    def run(self) -> int:
        """Start everything, supervise, stop; the exit code (0 after a signal, 1 on a failure)."""
        started = time.monotonic()
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self.check_ports()
            self._started = True
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.log_dir.mkdir(exist_ok=True)
            self.stack_file.unlink(missing_ok=True)
            self._dev_secrets_and_targets()
            self._start_temporal()
            self._migrate()
            self._wait_for_temporal()
            self._start_services_and_worker()
            self._wait_for_services()
            admin_key, seed_note = asyncio.run(self._after_ready())
            ready_seconds = time.monotonic() - started
            self._write_stack_file(ready_seconds)
            self._print_banner(admin_key, seed_note, ready_seconds)
            self._supervise()
        except _Stop:
            self.out("riskdesk: stopping (signal received)")
            self.stop()
            return 0
        except StackError as error:
            self.out(f"riskdesk: error: {error}")
            self.stop()
            return 1
        except Exception:
            self.out(f"riskdesk: error: unexpected failure, stopping\n{traceback.format_exc()}")
            self.stop()
            return 1
        finally:
            # Only a stack that got past the port check owns the file (another may be running).
            if self._started:
                self.stack_file.unlink(missing_ok=True)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return 1  # pragma: no cover - _supervise only leaves by raising

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # The first signal is acted on at the next safe point; a second one interrupts at once;
        # one during shutdown skips the grace period.
        if self._shutting_down:
            self._hurry = True
        elif self._stopping:
            raise _Stop
        else:
            self._stopping = True

    def _checkpoint(self) -> None:
        if self._stopping:
            raise _Stop

    # -- steps -------------------------------------------------------------------------------

    def _dev_secrets_and_targets(self) -> None:
        """A local stack: webhooks may go to local receivers, and webhook secrets are encrypted
        with a key of its own, made once into `secrets.key` (0600) unless one is configured."""
        update: dict[str, Any] = {}
        # A local stack's receivers listen on this machine (unless the environment says no).
        if "RISKDESK_WEBHOOK_ALLOW_PRIVATE_TARGETS" not in os.environ:
            update["webhook_allow_private_targets"] = True
        if not self.settings.secrets_key:
            key_file = self.data_dir / "secrets.key"
            key = _read_secret(key_file)
            if key is None:
                # Kept across runs: losing it would make every stored webhook secret unreadable.
                from cryptography.fernet import Fernet

                key = Fernet.generate_key().decode()
                write_secret(key_file, key)
            update["secrets_key"] = key
        if update:
            self.settings = self.settings.model_copy(update=update)

    def ports(self) -> list[tuple[str, str, int, str]]:
        """(what, host, port, setting) of every port the stack listens on."""
        host = self.settings.host
        ports = [
            ("Temporal", self.temporal_host, self.temporal_port, "RISKDESK_TEMPORAL_ADDRESS"),
            (
                "Temporal UI",
                self.temporal_host,
                self.settings.temporal_ui_port,
                "RISKDESK_TEMPORAL_UI_PORT",
            ),
        ]
        for service in SERVICE_NAMES:
            setting = f"RISKDESK_{service.upper()}_PORT"
            ports.append((service, host, self.settings.port_of(service), setting))
        return ports

    def check_ports(self) -> None:
        """Refuse to start when a port is configured twice or something already listens on it."""
        seen: dict[int, str] = {}
        for what, host, port, setting in self.ports():
            if port in seen:
                raise StackError(f"port {port} is configured for both {seen[port]} and {what}")
            seen[port] = what
            if not port_is_free(host, port):
                raise StackError(
                    f"port {port} ({what}) on {host} is already in use: stop what listens there "
                    f"or choose another port with {setting}"
                )

    def _spawn(self, name: str, command: list[str]) -> Child:
        child = Child(name=name, command=command, log_path=self.log_dir / f"{name}.log")
        # Each run starts its logs afresh; the child keeps its own descriptor of the file.
        with child.log_path.open("wb") as log_file:
            child.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=child_environment(self.settings),
                # Own process group: a terminal's Ctrl-C reaches only the launcher, which then
                # stops the children in order (services and worker before Temporal).
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        child.started_at = time.time()
        self.children.append(child)
        return child

    def _start_temporal(self) -> None:
        chosen = {self.temporal_port, self.settings.temporal_ui_port}
        chosen |= {self.settings.port_of(service) for service in SERVICE_NAMES}
        http_port = free_port_except(chosen, self.temporal_host)
        command = dev_server_command(
            host=self.temporal_host,
            port=self.temporal_port,
            ui_port=self.settings.temporal_ui_port,
            db_file=self.data_dir / "temporal.db",
            namespace=self.settings.temporal_namespace,
            http_port=http_port,
            metrics_port=free_port_except(chosen | {http_port}, self.temporal_host),
        )
        self._spawn("temporal", command)

    def _migrate(self) -> None:
        from services.common.migrations import upgrade

        for service in SERVICE_NAMES:
            self._checkpoint()
            try:
                upgrade(service=service, database_url=self.settings.database_url_of(service))
            except Exception as exc:
                raise StackError(f"migrating {service} failed: {exc!r}") from exc

    def _wait_for_temporal(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while port_is_free(self.temporal_host, self.temporal_port):
            self._checkpoint()
            self._raise_if_a_child_died()
            if time.monotonic() > deadline:
                raise StackError(self._timeout_message(["temporal"]))
            time.sleep(0.1)

    def _start_services_and_worker(self) -> None:
        python = [sys.executable, "-m", "riskdesk"]
        for service in SERVICE_NAMES:
            self._spawn(service, [*python, "serve", service])
        self._spawn("worker", [*python, "worker"])

    def _wait_for_services(self) -> None:
        pending = {service: f"{self.settings.url_of(service)}/readyz" for service in SERVICE_NAMES}
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        with httpx.Client(timeout=2.0) as client:
            while pending:
                self._checkpoint()
                self._raise_if_a_child_died()
                for service, url in list(pending.items()):
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(url).status_code == 200:
                            del pending[service]
                if pending and time.monotonic() > deadline:
                    raise StackError(self._timeout_message(list(pending)))
                if pending:
                    time.sleep(0.2)

    async def _after_ready(self) -> tuple[str, str]:
        await self._wait_for_worker()
        admin_key = await self._ensure_admin_key()
        seed_note = await self._seed_demo_once(admin_key)
        seed_note += await self._seed_console_demo_once(admin_key)
        return admin_key, seed_note

    async def _wait_for_worker(self) -> None:
        """Ready means the (new) worker polls the task queue, not merely that its process lives."""
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
        from temporalio.service import RPCError

        from services.common.temporal import connect_temporal

        worker = next(child for child in self.children if child.name == "worker")
        # Pollers of an earlier run stay listed for a while; only one seen since this start counts.
        since = datetime.fromtimestamp(worker.started_at, UTC) - timedelta(seconds=1)
        client = await connect_temporal(
            self.settings.temporal_address, self.settings.temporal_namespace
        )
        request = DescribeTaskQueueRequest(
            namespace=self.settings.temporal_namespace,
            task_queue=TaskQueue(name=self.settings.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while True:
            self._checkpoint()
            self._raise_if_a_child_died()
            with contextlib.suppress(RPCError):  # Temporal may still be warming up
                response = await client.workflow_service.describe_task_queue(request)
                if any(
                    p.last_access_time.ToDatetime(tzinfo=UTC) >= since for p in response.pollers
                ):
                    return
            if time.monotonic() > deadline:
                raise StackError(self._timeout_message(["worker"]))
            await asyncio.sleep(0.2)

    async def _ensure_admin_key(self) -> str:
        """Reuse `admin.key` while it still authenticates as an admin; otherwise make a new one."""
        plaintext = await self._ensure_key(
            self.admin_key_file, team=ADMIN_TEAM, role=Role.ADMIN, name=ADMIN_KEY_NAME
        )
        return plaintext

    async def _ensure_key(self, path: Path, *, team: str, role: Role, name: str) -> str:
        from services.common.db import make_engine, make_sessionmaker
        from services.common.errors import Unauthorized
        from services.gateway.keys.service import authenticate, create_key

        existing = await asyncio.to_thread(_read_secret, path)
        engine = make_engine(
            self.settings.database_url_of("gateway"), schema="gateway", pool_size=1
        )
        try:
            async with make_sessionmaker(engine)() as session:
                if existing:
                    try:
                        key = await authenticate(session, existing)
                    except Unauthorized:
                        pass
                    else:
                        if key.role == role:
                            await session.commit()
                            return existing
                _, plaintext = await create_key(session, team=team, role=role, name=name)
                await session.commit()
        finally:
            await engine.dispose()
        # Written only after the commit: the file never holds a key the database does not know.
        await asyncio.to_thread(write_secret, path, plaintext)
        return plaintext

    async def _seed_demo_once(self, admin_key: str) -> str:
        """File the demo requests through the gateway the first time; a line for the banner."""
        if await asyncio.to_thread(self.seeded_marker.exists):
            return f"demo partner key: {self.partner_key_file} (demo data seeded on first run)"
        partner_key = await self._ensure_key(
            self.partner_key_file, team=DEMO_TEAM, role=Role.PARTNER, name=DEMO_PARTNER_KEY_NAME
        )
        try:
            ids = await self._file_demo_requests(partner_key, admin_key)
        except (httpx.HTTPError, StackError) as error:
            # The stack works without demo data; the next `riskdesk up` tries again.
            return f"demo data NOT seeded ({error}); it is retried on the next start"
        await asyncio.to_thread(_write_json, self.seeded_marker, {"requests": ids})
        return (
            f"demo partner key: {self.partner_key_file} (team {DEMO_TEAM}); "
            f"demo requests {', '.join(map(str, ids))}"
        )

    async def _seed_console_demo_once(self, admin_key: str) -> str:
        """The console's demo data (riskdesk/demo_console.py) once; a note for the banner."""
        from riskdesk.demo_console import (
            APPROVER_KEY_NAME,
            APPROVER_TEAM,
            DemoSeedError,
            seed_console_demo,
        )

        marker = self.data_dir / "demo-console-seeded"
        approver_file = self.data_dir / "demo-approver.key"
        if await asyncio.to_thread(marker.exists):
            return f"\n  demo approver key: {approver_file}"
        approver_key = await self._ensure_key(
            approver_file, team=APPROVER_TEAM, role=Role.APPROVER, name=APPROVER_KEY_NAME
        )
        # Written first: a half-done seed is not repeated (its SOP keys would clash), only noted.
        await asyncio.to_thread(_write_json, marker, {"started": True})
        try:
            async with httpx.AsyncClient(base_url=self.gateway_url, timeout=10.0) as client:
                await seed_console_demo(
                    client, admin_key=admin_key, approver_key=approver_key, team=DEMO_TEAM
                )
        except (httpx.HTTPError, DemoSeedError) as error:
            return f"\n  console demo data incomplete ({error})"
        return f"\n  demo approver key: {approver_file} (an SOP awaits its approval)"

    async def _file_demo_requests(self, partner_key: str, admin_key: str) -> list[int]:
        ids: list[int] = []
        async with httpx.AsyncClient(base_url=self.gateway_url, timeout=10.0) as client:
            for number, body in enumerate(DEMO_REQUESTS, start=1):
                response = await client.post(
                    "/api/v1/requests",
                    json=body,
                    headers={
                        "Authorization": f"Bearer {partner_key}",
                        # A retried seed (after a crash) replays instead of filing twice.
                        "Idempotency-Key": f"riskdesk-demo-{number}",
                    },
                )
                if response.status_code not in (200, 201):
                    raise StackError(
                        f"filing a demo request gave {response.status_code}: {response.text}"
                    )
                ids.append(int(response.json()["id"]))
            # Show a request that moved: staff triage the first one.
            response = await client.post(
                f"/api/v1/requests/{ids[0]}/transitions",
                json={"action": "triage", "reason": "demo: triaged by riskdesk up"},
                headers={"Authorization": f"Bearer {admin_key}"},
            )
            if response.status_code not in (200, 409):
                raise StackError(f"triaging demo request {ids[0]} gave {response.status_code}")
        return ids

    def _write_stack_file(self, ready_seconds: float) -> None:
        _write_json(
            self.stack_file,
            {
                "gateway_url": self.gateway_url,
                "console_url": f"{self.gateway_url}/",
                "api_docs_url": f"{self.gateway_url}/docs",
                "temporal_ui_url": self.temporal_ui_url,
                "temporal_address": self.settings.temporal_address,
                "temporal_namespace": self.settings.temporal_namespace,
                "task_queue": self.settings.task_queue,
                "services": {service: self.settings.url_of(service) for service in SERVICE_NAMES},
                "pids": {
                    "launcher": os.getpid(),
                    **{c.name: c.process.pid for c in self.children if c.process is not None},
                },
                "admin_key_file": str(self.admin_key_file),
                "logs_dir": str(self.log_dir),
                "ready_seconds": round(ready_seconds, 1),
            },
        )

    def _print_banner(self, admin_key: str, seed_note: str, ready_seconds: float) -> None:
        gateway = self.gateway_url
        lines = [
            f"riskdesk is up (ready in {ready_seconds:.1f} s)",
            f"  gateway      {gateway}   (API docs {gateway}/docs)",
            f"  console      {gateway}/   (sign in with an API key)",
            f"  Temporal UI  {self.temporal_ui_url}",
            f"  admin key    {admin_key}",
            f"               (also in {self.admin_key_file}, mode 0600)",
            f"  {seed_note}",
            "Try:",
            f'  curl -s -H "Authorization: Bearer $(cat {self.admin_key_file})" '
            f"{gateway}/api/v1/requests",
            f"Logs in {self.log_dir}/; URLs in {self.stack_file}. Ctrl-C stops everything.",
        ]
        self.out("\n".join(lines))

    def _supervise(self) -> None:
        while True:
            self._checkpoint()
            self._raise_if_a_child_died()
            time.sleep(0.5)

    # -- failure and shutdown ----------------------------------------------------------------

    def _raise_if_a_child_died(self) -> None:
        for child in self.children:
            code = child.exit_code()
            if code is not None:
                how = (
                    f"was killed by {signal.Signals(-code).name}"
                    if code < 0
                    else f"exited with code {code}"
                )
                raise StackError(
                    f"{child.name} {how}; last lines of {child.log_path}:\n{child.tail()}"
                )

    def _timeout_message(self, names: list[str]) -> str:
        details = []
        for child in self.children:
            if child.name in names:
                details.append(f"--- last lines of {child.log_path}:\n{child.tail()}")
        header = f"not ready within {READY_TIMEOUT_SECONDS:.0f} s: {', '.join(names)}"
        return "\n".join([header, *details])

    def stop(self) -> None:
        """Stop every child: the services and worker first, Temporal last; SIGKILL after a grace."""
        self._stopping = self._shutting_down = True
        first = [child for child in self.children if child.name != "temporal"]
        last = [child for child in self.children if child.name == "temporal"]
        for group in (first, last):
            self._terminate(group)
        self.children.clear()

    def _terminate(self, children: list[Child]) -> None:
        running = [c for c in children if c.process is not None and c.process.poll() is None]
        for child in running:
            self._signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while any(c.exit_code() is None for c in running):
            if self._hurry or time.monotonic() > deadline:
                for child in running:
                    if child.exit_code() is None:
                        self.out(f"riskdesk: {child.name} did not stop in time; killing it")
                        self._signal_group(child, signal.SIGKILL)
                break
            time.sleep(0.05)
        for child in running:
            assert child.process is not None
            child.process.wait()
        for child in children:
            # Anything the child itself started (same process group) goes with it.
            self._signal_group(child, signal.SIGKILL)

    @staticmethod
    def _signal_group(child: Child, signum: int) -> None:
        if child.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, signum)


def run_stack(settings: Settings) -> int:
    """`riskdesk up`: run the local stack until a signal (exit 0) or a failure (exit 1)."""
    return StackLauncher(settings).run()
