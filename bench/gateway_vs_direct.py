"""Filing a request through the gateway against filing it straight to intake, in one run.

The parts, each as its own process: PostgreSQL (a scratch database, see bench/scratch_pg.py), a
Temporal dev server in memory (intake's outbox signals it; no worker runs, so no workflow work
competes with the measurement), intake and the gateway under `riskdesk serve` (one uvicorn
worker each). The load generator (bench/http_load.py, its own process) keeps N keep-alive
connections busy with `POST /api/v1/requests`:

- direct: to intake, with a signed identity token (what the gateway would add);
- gateway: to the gateway, with a partner API key (authenticated, rate-checked, forwarded).

Each arm runs at 16 and 64 connections, alternating direct/gateway so a drift in the machine's
load hits both; the result keeps requests/s, p50/p99, the CPU each process used per request and
how busy the whole machine was. The retained ratio is gateway req/s over direct req/s.

    python -m bench gateway_vs_direct
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import machine
from bench.scratch_pg import scratch_database
from bench.sla_lateness import LocalParts, parts_environment
from riskdesk.temporal_server import running_dev_server
from services.common.identity import IDENTITY_HEADER, Identity, Role, sign_identity
from services.common.settings import DEV_IDENTITY_SECRET

CONNECTIONS = (16, 64)
TEAM = "bench-partners"
BODY = json.dumps(
    {
        "request_type": "mo_investigation",
        # One distinct word a title: the duplicate search on filing then finds no shared words.
        # (Titles sharing words make each filing's any-word search scan every such request of
        # the team, and throughput fall as the table grows: not what this benchmark is about.)
        "title": "MO{n}",
        "description": "Accounts claim non-delivery on parcels that were reshipped.",
        "priority": "P2",
    }
)


@dataclass
class Options:
    """What `python -m bench gateway_vs_direct` runs."""

    seconds: float = 15.0
    warm_up_seconds: float = 3.0
    connections: tuple[int, ...] = CONNECTIONS
    rounds: int = 1


def _start_load(
    port: int, headers: dict[str, str], connections: int, options: Options, scratch: Path
) -> subprocess.Popen[bytes]:
    """Start the load generator process (it prints its result when done)."""
    spec = {
        "host": "127.0.0.1",
        "port": port,
        "method": "POST",
        "path": "/api/v1/requests",
        "headers": {**headers, "Content-Type": "application/json"},
        "body": BODY,
        "connections": connections,
        "seconds": options.seconds,
        "warm_up_seconds": options.warm_up_seconds,
    }
    spec_path = scratch / f"spec-{uuid.uuid4().hex[:6]}.json"
    spec_path.write_text(json.dumps(spec))
    return subprocess.Popen(
        [sys.executable, "-m", "bench.http_load", str(spec_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _measure_arm(
    parts: LocalParts,
    *,
    arm: str,
    headers: dict[str, str],
    connections: int,
    options: Options,
    scratch: Path,
) -> dict[str, Any]:
    port = int(parts.env[f"RISKDESK_{'GATEWAY' if arm == 'gateway' else 'INTAKE'}_PORT"])
    process = _start_load(port, headers, connections, options, scratch)
    pids = {name: p.pid for name, p in parts.processes.items()}
    window = machine.CpuWindow(pids=pids)
    # CPU is counted over the measured window only (after the warm-up).
    time.sleep(options.warm_up_seconds)
    window.start()
    out, err = process.communicate(timeout=options.seconds + options.warm_up_seconds + 120)
    cpu = window.stop()
    if process.returncode != 0:
        raise RuntimeError(f"load generator failed: {err.decode()}")
    result: dict[str, Any] = json.loads(out)
    cpu["cpu_seconds_by_process"]["load_generator"] = result.pop("load_generator_cpu_seconds")
    created = result["statuses"].get("201", 0)
    if created == 0:
        raise RuntimeError(f"{arm}: nothing was filed: {result}\n{parts.logs()}")
    per_request = {
        name: round(seconds * 1000 / max(created, 1), 2)
        for name, seconds in cpu["cpu_seconds_by_process"].items()
    }
    return {**result, "cpu_ms_per_request": per_request, "cpu": cpu}


async def measure(options: Options) -> dict[str, Any]:
    """Run the parts and both arms at each connection count; the result document."""
    result: dict[str, Any] = {"machine": machine.describe()}
    with (
        tempfile.TemporaryDirectory(prefix="riskdesk-bench-") as scratch_dir,
        running_dev_server() as temporal_address,
    ):
        scratch = Path(scratch_dir)
        async with scratch_database("riskdesk_bench_gw") as database_url:
            env = parts_environment(
                scratch / "data",
                temporal_address=temporal_address,
                database_url=database_url,
                worker_metrics_port="0",
                # The proxy's 504 comes after this; on a busy machine a filing may take seconds.
                service_timeout_seconds="30",
            )
            parts = LocalParts(env=env)
            await asyncio.to_thread(parts.prepare)
            output = parts.run_cli("keys", "create", "--team", TEAM, "--role", "partner")
            partner_key = output.strip().splitlines()[-1]
            token = sign_identity(
                Identity(subject="key-bench", team=TEAM, role=Role.PARTNER),
                secret=env.get("RISKDESK_IDENTITY_SECRET", DEV_IDENTITY_SECRET),
                ttl_seconds=3600,
            )
            arms = {
                "direct": {IDENTITY_HEADER: token},
                "gateway": {"Authorization": f"Bearer {partner_key}"},
            }
            try:
                parts.start("intake")
                parts.start("gateway")
                await parts.wait_services()
                runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
                for round_number in range(options.rounds):
                    # Alternate which arm goes first, so a drift in the machine's load (or in the
                    # database's size) does not always favour the same arm.
                    order = list(arms.items())
                    if round_number % 2:
                        order.reverse()
                    for connections in options.connections:
                        for arm, headers in order:
                            measured = await asyncio.to_thread(
                                _measure_arm,
                                parts,
                                arm=arm,
                                headers=headers,
                                connections=connections,
                                options=options,
                                scratch=scratch,
                            )
                            runs.setdefault(str(connections), {}).setdefault(arm, []).append(
                                measured
                            )
                            print(
                                f"  {arm:8} {connections:3} connections: "
                                f"{measured['requests_per_second']:7.1f} req/s "
                                f"p50 {measured['p50_ms']} ms p99 {measured['p99_ms']} ms "
                                f"machine {measured['cpu']['cores_busy_machine']} cores",
                                flush=True,
                            )
            finally:
                await asyncio.to_thread(parts.stop)
    result["setup"] = (
        "PostgreSQL (scratch database, same machine), Temporal dev server in memory, intake and "
        "gateway each `riskdesk serve` (one uvicorn worker), no worker; load generator "
        "bench/http_load.py in its own process (closed loop, keep-alive); "
        f"{options.seconds:g} s measured after {options.warm_up_seconds:g} s warm-up per arm"
    )
    result["runs"] = runs
    result["summary"] = _summary(runs)
    return result


def _summary(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Per connection count: the best round of each arm and the retained ratio."""
    summary: dict[str, Any] = {}
    for connections, arms in runs.items():
        best = {
            arm: max(measured, key=lambda m: m["requests_per_second"])
            for arm, measured in arms.items()
        }
        direct, gateway = best["direct"], best["gateway"]
        summary[connections] = {
            "direct": _brief(direct),
            "gateway": _brief(gateway),
            "retained_ratio": round(
                gateway["requests_per_second"] / max(direct["requests_per_second"], 0.1), 3
            ),
        }
    return summary


def _brief(measured: dict[str, Any]) -> dict[str, Any]:
    return {
        "statuses": measured["statuses"],
        "requests_per_second": measured["requests_per_second"],
        "p50_ms": measured["p50_ms"],
        "p99_ms": measured["p99_ms"],
        "cpu_ms_per_request": measured["cpu_ms_per_request"],
        "cores_busy_machine": measured["cpu"]["cores_busy_machine"],
        "cores_busy_others": measured["cpu"]["cores_busy_others"],
    }


def run(options: Options) -> dict[str, Any]:
    """The benchmark, as `python -m bench gateway_vs_direct` records it."""
    return asyncio.run(measure(options))
