"""Breach lateness: how long after an SLA deadline the `sla.breached` webhook arrives.

The real parts, as separate processes: a Temporal dev server (in memory), the gateway and intake
(`riskdesk serve`, SQLite files in a temporary data dir) and one worker (`riskdesk worker`); a
webhook receiver in this process records when each delivery arrives (wall clock).

Two measurements, through the gateway with a partner key subscribed to `sla.breached`:

- steady: `--requests` P1 requests filed at `--rate` a second on a 24x7 policy with a fixed
  resolution target, so their deadlines fall `--rate` a second; lateness = arrival - deadline
  (deadline = the request's `created_at` + target), p50/p99/max. By default the target is just
  longer than the filing, so all requests are open when the first deadline falls and no filing
  competes with the breaches; `--target-seconds 30` measures breaches while requests still pour in.
- burst: `--requests` requests filed as fast as the gateway takes them, on a calendar that opens
  at the next whole minute after they are all in, so every deadline is the same instant
  (opening + target); drain = time from that instant to the last delivery.

The helpers (`LocalParts`, `WebhookReceiver`) are also used by the SLA acceptance test to run the
parts itself (so it can SIGKILL and restart the worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from riskdesk.temporal_server import free_port, running_dev_server
from services.common.settings import SERVICE_NAMES
from services.common.webhook_signature import SIGNATURE_HEADER, verify

PartName = Literal["gateway", "intake", "worker"]
RISKDESK = [sys.executable, "-m", "riskdesk"]
READY_TIMEOUT = 90.0
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ADMIN_TEAM = "risk-mining"

DEFAULT_REQUESTS = 1_000
DEFAULT_RATE = 10.0
# Default target: just longer than the filing takes, so every deadline falls after the last
# request is filed (1,000 open requests, deadlines `rate` a second, nothing else going on).
FILING_MARGIN_SECONDS = 10
BURST_CONCURRENCY = 16


# --- the parts, as subprocesses -----------------------------------------------------------------


def parts_environment(
    data_dir: Path,
    *,
    temporal_address: str,
    database_url: str | None = None,
    **settings: str,
) -> dict[str, str]:
    """Environment of a gateway + intake + worker on free ports, fast outbox and deliveries.

    No inherited `RISKDESK_*`; `settings` are more `RISKDESK_<NAME>` values (name in lower case).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKDESK_")}
    env.update(
        RISKDESK_ENVIRONMENT="test",
        RISKDESK_DATA_DIR=str(data_dir),
        RISKDESK_TEMPORAL_ADDRESS=temporal_address,
        RISKDESK_TASK_QUEUE=f"parts-{uuid.uuid4().hex[:8]}",
        RISKDESK_OUTBOX_POLL_SECONDS="0.1",
        RISKDESK_OUTBOX_MAX_BACKOFF_SECONDS="1",
        RISKDESK_DELIVERY_INITIAL_INTERVAL_SECONDS="0.5",
        RISKDESK_DELIVERY_MAX_INTERVAL_SECONDS="2",
        RISKDESK_WEBHOOK_TIMEOUT_SECONDS="5",
        # The receivers listen on 127.0.0.1 over plain http.
        RISKDESK_WEBHOOK_ALLOW_PRIVATE_TARGETS="true",
        # Filing a thousand requests a minute with one key must not hit the per-key limit.
        RISKDESK_RATE_LIMIT="1000000/minute",
        RISKDESK_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        **{f"RISKDESK_{service.upper()}_PORT": str(free_port()) for service in SERVICE_NAMES},
    )
    if database_url:
        env["RISKDESK_DATABASE_URL"] = database_url
    env.update({f"RISKDESK_{name.upper()}": value for name, value in settings.items()})
    return env


@dataclass
class LocalParts:
    """The gateway, intake and worker as `riskdesk` child processes sharing one environment."""

    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    admin_key: str = ""

    @property
    def data_dir(self) -> Path:
        return Path(self.env["RISKDESK_DATA_DIR"])

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def url_of(self, service: str) -> str:
        """Base URL of a service of these parts."""
        return f"http://127.0.0.1:{self.env[f'RISKDESK_{service.upper()}_PORT']}"

    @property
    def gateway_url(self) -> str:
        return self.url_of("gateway")

    def run_cli(self, *args: str) -> str:
        """Run `riskdesk <args>` to completion with this environment; its stdout."""
        done = subprocess.run(
            [*RISKDESK, *args], env=self.env, capture_output=True, check=False, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"riskdesk {' '.join(args)} failed:\n{done.stderr.decode()}")
        return done.stdout.decode()

    def prepare(self) -> None:
        """Create the data dir, migrate the gateway and intake, and make an admin key."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for service in ("gateway", "intake"):
            self.run_cli("migrate", "--service", service)
        output = self.run_cli("keys", "create", "--team", ADMIN_TEAM, "--role", "admin")
        self.admin_key = output.strip().splitlines()[-1]

    def start(self, name: PartName) -> subprocess.Popen[bytes]:
        """Start one part (`riskdesk serve <name>` or `riskdesk worker`), output to its log."""
        command = [*RISKDESK, "worker"] if name == "worker" else [*RISKDESK, "serve", name]
        # Appended: a restarted worker's log follows the killed one's.
        with (self.log_dir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                command, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        self.processes[name] = process
        return process

    def kill(self, name: PartName, signum: int = signal.SIGKILL) -> None:
        """Signal one part (SIGKILL by default) and reap it."""
        process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)
        process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM every part, SIGKILL what is still there after a grace period."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 15
        for process in self.processes.values():
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    def logs(self, tail: int = 40) -> str:
        """The last lines of every part's log (for failure messages)."""
        parts = []
        for log in sorted(self.log_dir.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-tail:]
            parts.append(f"--- {log.name}:\n" + "\n".join(lines))
        return "\n".join(parts)

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}\n{self.logs()}")

    async def wait_services(self) -> None:
        """Until intake is ready and the gateway is alive (its /readyz wants every service)."""
        checks = {"intake": "/readyz", "gateway": "/healthz"}
        deadline = time.monotonic() + READY_TIMEOUT
        async with httpx.AsyncClient(timeout=2, trust_env=False) as client:
            for service, path in checks.items():
                while True:
                    self._check_alive()
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(self.url_of(service) + path)).status_code == 200:
                            break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{service} not ready\n{self.logs()}")
                    await asyncio.sleep(0.2)

    async def wait_worker(self, since: float) -> None:
        """Until a worker started at or after `since` (unix time) polls the task queue."""
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
        from temporalio.service import RPCError

        from services.common.temporal import connect_temporal

        client = await connect_temporal(self.env["RISKDESK_TEMPORAL_ADDRESS"], "default")
        request = DescribeTaskQueueRequest(
            namespace="default",
            task_queue=TaskQueue(name=self.env["RISKDESK_TASK_QUEUE"]),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        after = datetime.fromtimestamp(since, UTC)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            self._check_alive()
            with contextlib.suppress(RPCError):
                response = await client.workflow_service.describe_task_queue(request)
                if any(
                    p.last_access_time.ToDatetime(tzinfo=UTC) >= after for p in response.pollers
                ):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker does not poll\n{self.logs()}")
            await asyncio.sleep(0.2)

    async def restart_worker(self) -> None:
        """Start the worker (again) and wait until it polls."""
        since = time.time() - 1
        self.start("worker")
        await self.wait_worker(since)


@asynccontextmanager
async def running_parts(env: dict[str, str]) -> AsyncIterator[LocalParts]:
    """Migrated, keyed, started and ready parts; stopped on exit."""
    parts = LocalParts(env=env)
    await asyncio.to_thread(parts.prepare)
    try:
        since = time.time() - 1
        for name in ("intake", "gateway", "worker"):
            parts.start(name)
        await parts.wait_services()
        await parts.wait_worker(since)
        yield parts
    finally:
        await asyncio.to_thread(parts.stop)


# --- the webhook receiver -----------------------------------------------------------------------


@dataclass
class Receipt:
    """One webhook call as it arrived."""

    headers: dict[str, str]
    body: bytes
    arrived_at: float  # unix time
    document: dict[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.document.get("id"))

    @property
    def type(self) -> str:
        return str(self.document.get("type"))

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.document.get("data") or {}
        return data

    def signed_by(self, secret: str) -> bool:
        """Whether its `X-Riskdesk-Signature` verifies with this secret (now)."""
        return verify(secret, self.headers.get(SIGNATURE_HEADER.lower()), self.body)


@dataclass
class WebhookReceiver:
    """A webhook endpoint on 127.0.0.1 recording every call with its arrival time; answers 200."""

    port: int = field(default_factory=free_port)
    receipts: list[Receipt] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()
            arrived_at = time.time()
            try:
                document = json.loads(body)
            except ValueError:
                document = {}
            self.receipts.append(Receipt(dict(request.headers), body, arrived_at, document))
            self.arrived.set()
            return Response(status_code=200)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])

    def of_type(self, type_: str) -> list[Receipt]:
        """The receipts of one event type, in arrival order."""
        return [r for r in self.receipts if r.type == type_]

    @asynccontextmanager
    async def running(self) -> AsyncIterator[WebhookReceiver]:
        """Serve under uvicorn in this event loop until the block ends."""
        server = uvicorn.Server(
            uvicorn.Config(
                self.app(),
                host="127.0.0.1",
                port=self.port,
                log_config=None,
                access_log=False,
                lifespan="off",
            )
        )
        task = asyncio.create_task(server.serve())
        try:
            while not server.started:
                if task.done():
                    await task
                    raise RuntimeError("the webhook receiver stopped before it started")
                await asyncio.sleep(0.01)
            yield self
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, timeout=30)


# --- API helpers ----------------------------------------------------------------------------------


def bearer(key: str) -> dict[str, str]:
    """The Authorization header of an API key."""
    return {"Authorization": f"Bearer {key}"}


async def api(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    key: str,
    *,
    expect: int = 200,
    **kwargs: Any,
) -> Any:
    """Call the gateway with a key; the JSON body, or raise with the response if not `expect`."""
    headers = {**bearer(key), **kwargs.pop("headers", {})}
    response = await client.request(method, path, headers=headers, **kwargs)
    if response.status_code != expect:
        raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
    return response.json() if response.content else None


async def create_partner(client: httpx.AsyncClient, admin_key: str, team: str) -> str:
    """A new partner key for `team` (its plaintext)."""
    created = await api(
        client,
        "POST",
        "/api/v1/keys",
        admin_key,
        expect=201,
        json={"name": f"partner {team}", "team": team, "role": "partner"},
    )
    return str(created["key"])


async def create_policy(
    client: httpx.AsyncClient,
    admin_key: str,
    *,
    policy_id: str,
    order: int,
    first_response: str,
    resolution: str,
    calendar_id: str = "24x7",
    thresholds: list[int] | None = None,
    priorities: list[str] | None = None,
) -> dict[str, Any]:
    """Create an SLA policy (before the seeded ones when `order` < 10)."""
    created: dict[str, Any] = await api(
        client,
        "POST",
        "/api/v1/sla/policies",
        admin_key,
        expect=201,
        json={
            "id": policy_id,
            "name": f"policy {policy_id}",
            "order": order,
            "priorities": priorities or ["P1"],
            "first_response_target": first_response,
            "resolution_target": resolution,
            "calendar_id": calendar_id,
            "warning_thresholds": [50, 75, 90] if thresholds is None else thresholds,
            "auto_close_after": None,
        },
    )
    return created


async def subscribe(
    client: httpx.AsyncClient, key: str, url: str, event_types: list[str]
) -> dict[str, Any]:
    """Subscribe the key's team's events of these types to a webhook; includes the `secret`."""
    created: dict[str, Any] = await api(
        client,
        "POST",
        "/api/v1/subscriptions",
        key,
        expect=201,
        json={"event_types": event_types, "channel": "webhook", "url": url},
    )
    return created


def request_body(number: int, priority: str = "P1") -> dict[str, Any]:
    """A request a partner files."""
    return {
        "request_type": "mo_investigation",
        "title": f"Refund abuse ring #{number}",
        "description": "Accounts claim non-delivery on parcels that were reshipped.",
        "priority": priority,
    }


async def file_request(client: httpx.AsyncClient, key: str, number: int) -> dict[str, Any]:
    """File one request through the gateway; the created request."""
    created: dict[str, Any] = await api(
        client,
        "POST",
        "/api/v1/requests",
        key,
        expect=201,
        json=request_body(number),
        headers={"Idempotency-Key": f"sla-{uuid.uuid4().hex}"},
    )
    return created


def instant(value: str) -> datetime:
    """An ISO-8601 instant from the API."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- the benchmark --------------------------------------------------------------------------------


@dataclass
class Options:
    """What `python -m bench sla_lateness` runs."""

    requests: int = DEFAULT_REQUESTS
    rate: float = DEFAULT_RATE
    target_seconds: int | None = None  # None: the filing time plus FILING_MARGIN_SECONDS
    burst: bool = True


def steady_target(options: Options) -> int:
    """The steady measurement's resolution target in seconds."""
    if options.target_seconds is not None:
        return options.target_seconds
    return math.ceil(options.requests / options.rate) + FILING_MARGIN_SECONDS


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p90/p99/max (milliseconds) of seconds."""
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        # Nearest rank: a p99 of a thousand is the 990th value, never an interpolation.
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return {
        "count": len(ordered),
        "p50_ms": round(at(0.50) * 1000, 1),
        "p90_ms": round(at(0.90) * 1000, 1),
        "p99_ms": round(at(0.99) * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
        "min_ms": round(ordered[0] * 1000, 1),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 1),
    }


async def _await_breaches(
    receiver: WebhookReceiver, ids: set[int], *, until: float
) -> dict[int, Receipt]:
    """The first `sla.breached` (resolution clock) receipt of each request, waiting until `until`."""
    while True:
        found: dict[int, Receipt] = {}
        for receipt in receiver.of_type("sla.breached"):
            request_id = int(receipt.data.get("request_id", -1))
            if request_id in ids and receipt.data.get("clock") == "resolution":
                found.setdefault(request_id, receipt)
        if len(found) == len(ids) or time.time() > until:
            return found
        receiver.arrived.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(receiver.arrived.wait(), timeout=1)


def _duplicates(receiver: WebhookReceiver, ids: set[int]) -> int:
    seen: dict[str, int] = {}
    for receipt in receiver.of_type("sla.breached"):
        if int(receipt.data.get("request_id", -1)) in ids:
            seen[receipt.event_id] = seen.get(receipt.event_id, 0) + 1
    return sum(count - 1 for count in seen.values())


async def steady(
    client: httpx.AsyncClient, receiver: WebhookReceiver, key: str, options: Options
) -> dict[str, Any]:
    """Requests filed at `rate`/s on a fixed target: deadlines fall `rate` a second."""
    target = timedelta(seconds=steady_target(options))
    deadlines: dict[int, datetime] = {}
    started = time.monotonic()
    interval = 1 / options.rate

    async def file(number: int) -> None:
        created = await file_request(client, key, number)
        deadlines[int(created["id"])] = instant(created["created_at"]) + target

    tasks = []
    for number in range(options.requests):
        # Paced on a schedule, not after each answer: a slow answer does not slow the rate.
        delay = started + number * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(file(number)))
    await asyncio.gather(*tasks)
    filing_seconds = time.monotonic() - started
    last = max(deadlines.values()).timestamp()
    found = await _await_breaches(receiver, set(deadlines), until=last + 120)
    lateness = [found[i].arrived_at - deadlines[i].timestamp() for i in found]
    return {
        "requests": options.requests,
        "rate_per_second": options.rate,
        "target_seconds": target.total_seconds(),
        "filing_overlaps_deadlines": target.total_seconds() < filing_seconds,
        "filing_seconds": round(filing_seconds, 1),
        "delivered": len(found),
        "missing": len(deadlines) - len(found),
        "duplicates": _duplicates(receiver, set(deadlines)),
        "early": sum(1 for value in lateness if value < 0),
        "lateness": percentiles(lateness),
    }


def opening_calendar(opens_at: datetime) -> dict[str, Any]:
    """A UTC calendar closed from now until `opens_at` (a whole minute), then always open."""
    today = datetime.now(UTC)
    hours: dict[str, list[list[str]]] = {day: [["00:00", "24:00"]] for day in WEEKDAYS}
    if today.date() != opens_at.date():
        del hours[WEEKDAYS[today.weekday()]]
    hours[WEEKDAYS[opens_at.weekday()]] = [[opens_at.strftime("%H:%M"), "24:00"]]
    return {"timezone": "UTC", "hours": hours}


async def burst(
    client: httpx.AsyncClient,
    receiver: WebhookReceiver,
    admin_key: str,
    key: str,
    options: Options,
) -> dict[str, Any]:
    """Requests filed in a burst whose deadlines are one instant: drain time and lateness."""
    # The calendar opens on a whole minute after every request is in; all clocks start closed.
    # How fast the gateway takes requests here and now, from a short warm-up burst (P3 requests,
    # on the seeded policies, far from any deadline).
    warm_up = min(50, options.requests)
    semaphore = asyncio.Semaphore(BURST_CONCURRENCY)

    async def file_warm_up(number: int) -> None:
        async with semaphore:
            body = request_body(number, priority="P3")
            await api(client, "POST", "/api/v1/requests", key, expect=201, json=body)

    started = time.monotonic()
    await asyncio.gather(*(file_warm_up(number) for number in range(warm_up)))
    rate = warm_up / (time.monotonic() - started)
    # Measured: the burst itself files faster than the warm-up (60 -> 79/s, 37 -> 52/s).
    margin = options.requests / max(rate, 1.0) + 10
    opens = datetime.now(UTC) + timedelta(seconds=margin)
    opens = opens.replace(second=0, microsecond=0) + timedelta(minutes=1)
    calendar_id = f"opens-{uuid.uuid4().hex[:6]}"
    await api(
        client,
        "POST",
        "/api/v1/calendars",
        admin_key,
        expect=201,
        json={"id": calendar_id, "name": "opens later", "calendar": opening_calendar(opens)},
    )
    # This policy goes before the steady one (order 1) for P2 only: the burst files P2.
    await create_policy(
        client,
        admin_key,
        policy_id=f"burst-{uuid.uuid4().hex[:6]}",
        order=2,
        priorities=["P2"],
        first_response="PT1H",
        resolution="PT10S",
        calendar_id=calendar_id,
        thresholds=[],
    )
    due = opens + timedelta(seconds=10)
    created_at: dict[int, datetime] = {}

    async def file(number: int) -> None:
        async with semaphore:
            body = request_body(number, priority="P2")
            created = await api(client, "POST", "/api/v1/requests", key, expect=201, json=body)
            created_at[int(created["id"])] = instant(created["created_at"])

    started = time.monotonic()
    await asyncio.gather(*(file(number) for number in range(options.requests)))
    filing_seconds = time.monotonic() - started
    late_filed = sum(1 for at in created_at.values() if at >= opens)
    found = await _await_breaches(receiver, set(created_at), until=due.timestamp() + 300)
    arrivals = sorted(receipt.arrived_at for receipt in found.values())
    lateness = [arrival - due.timestamp() for arrival in arrivals]
    return {
        "requests": options.requests,
        "filing_seconds": round(filing_seconds, 1),
        "filing_rate_per_second": round(options.requests / filing_seconds, 1),
        "warm_up_rate_per_second": round(rate, 1),
        "opens_at": opens.isoformat(),
        "filed_after_opening": late_filed,
        "due_at": due.isoformat(),
        "delivered": len(found),
        "missing": len(created_at) - len(found),
        "duplicates": _duplicates(receiver, set(created_at)),
        "drain_seconds": round(lateness[-1], 2) if lateness else None,
        "first_delivery_after_due_seconds": round(lateness[0], 2) if lateness else None,
        "deliveries_per_second": (
            round(len(lateness) / (lateness[-1] - lateness[0]), 1)
            if len(lateness) > 1 and lateness[-1] > lateness[0]
            else None
        ),
        "lateness": percentiles(lateness),
    }


async def measure(options: Options) -> dict[str, Any]:
    """Run the parts, the receiver and both measurements; the result document."""
    with (
        tempfile.TemporaryDirectory(prefix="riskdesk-bench-") as scratch,
        running_dev_server() as temporal_address,
    ):
        env = parts_environment(Path(scratch) / "data", temporal_address=temporal_address)
        receiver = WebhookReceiver()
        async with (
            receiver.running(),
            running_parts(env) as parts,
            httpx.AsyncClient(base_url=parts.gateway_url, timeout=30, trust_env=False) as client,
        ):
            admin = parts.admin_key
            team = f"bench-{uuid.uuid4().hex[:6]}"
            partner = await create_partner(client, admin, team)
            await subscribe(client, partner, receiver.url, ["sla.breached"])
            # Only the resolution clock matters: first response is far away, no warnings.
            await create_policy(
                client,
                admin,
                policy_id="bench-steady",
                order=1,
                first_response="PT1H",
                resolution=f"PT{steady_target(options)}S",
                thresholds=[],
            )
            result: dict[str, Any] = {
                "machine": {
                    "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(),
                },
                "setup": "Temporal dev server (in memory), gateway + intake (`riskdesk serve`, "
                "SQLite), one `riskdesk worker`, webhook receiver in the bench process; "
                "one subscription (deliveries to it are sequential, in order).",
                "steady": await steady(client, receiver, partner, options),
            }
            if options.burst:
                result["burst"] = await burst(client, receiver, admin, partner, options)
            return result


def run(options: Options) -> dict[str, Any]:
    """`python -m bench sla_lateness`: measure and return the results."""
    return asyncio.run(measure(options))
