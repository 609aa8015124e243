"""A lean closed-loop HTTP/1.1 load generator: N keep-alive connections, one request at a time each.

Run as its own process (`python -m bench.http_load <spec.json>`) so its CPU is not charged to the
server under test's process, and written on raw asyncio streams (uvloop when installed) because a
full client such as httpx costs 2-3 ms of CPU a request: on a 2-core machine the load generator
would otherwise be the bottleneck it is trying to measure.

The spec (JSON) names the target, the request and the run:
`{"host", "port", "method", "path", "headers": {...}, "body": str | null, "connections",
"seconds", "warm_up_seconds"}`. `{n}` in the body is replaced by a per-request counter (distinct
titles, so nothing is a duplicate of anything). Prints one JSON line: counts by status,
requests/s over the measured window, and latency percentiles in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LoadSpec:
    """What to send, where, with how many connections, for how long."""

    host: str
    port: int
    method: str
    path: str
    headers: dict[str, str]
    body: str | None
    connections: int
    seconds: float
    warm_up_seconds: float = 2.0


@dataclass
class Tally:
    """What the measured window saw (requests started during warm-up are not counted)."""

    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0


def _request_bytes(spec: LoadSpec, number: int) -> bytes:
    body = b"" if spec.body is None else spec.body.replace("{n}", str(number)).encode()
    lines = [f"{spec.method} {spec.path} HTTP/1.1", f"Host: {spec.host}:{spec.port}"]
    lines += [f"{name}: {value}" for name, value in spec.headers.items()]
    if spec.body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one response (Content-Length or chunked); its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, _, header_block = head.partition(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    length = 0
    chunked = False
    for line in header_block.split(b"\r\n"):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def _connection(
    spec: LoadSpec, counter: itertools.count[int], measure_from: float, stop_at: float, tally: Tally
) -> None:
    reader, writer = await asyncio.open_connection(spec.host, spec.port)
    try:
        while True:
            started = time.perf_counter()
            if started >= stop_at:
                return
            writer.write(_request_bytes(spec, next(counter)))
            try:
                status = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                tally.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection(spec.host, spec.port)
                continue
            if started >= measure_from:
                tally.statuses[status] = tally.statuses.get(status, 0) + 1
                tally.latencies.append(time.perf_counter() - started)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def _percentile(ordered: list[float], q: float) -> float:
    # Nearest rank, as the other benchmarks report it.
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


async def run(spec: LoadSpec) -> dict[str, Any]:
    """Drive the target for warm-up + seconds; the measured window's figures."""
    tally = Tally()
    counter = itertools.count(int(time.time() * 1000) % 10**9)
    measure_from = time.perf_counter() + spec.warm_up_seconds
    stop_at = measure_from + spec.seconds
    tasks = [
        asyncio.create_task(_connection(spec, counter, measure_from, stop_at, tally))
        for _ in range(spec.connections)
    ]
    await asyncio.sleep(max(measure_from - time.perf_counter(), 0))
    cpu_from = time.process_time()
    await asyncio.gather(*tasks)
    cpu_seconds = time.process_time() - cpu_from
    ordered = sorted(tally.latencies)
    done = len(ordered)
    return {
        "connections": spec.connections,
        "seconds": spec.seconds,
        "requests": done,
        "statuses": {str(code): count for code, count in sorted(tally.statuses.items())},
        "connection_errors": tally.errors,
        "load_generator_cpu_seconds": round(cpu_seconds, 3),
        "requests_per_second": round(done / spec.seconds, 1),
        "p50_ms": round(_percentile(ordered, 0.50) * 1000, 1) if ordered else None,
        "p90_ms": round(_percentile(ordered, 0.90) * 1000, 1) if ordered else None,
        "p99_ms": round(_percentile(ordered, 0.99) * 1000, 1) if ordered else None,
        "max_ms": round(ordered[-1] * 1000, 1) if ordered else None,
    }


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.http_load spec.json`: run it and print the result as one JSON line."""
    args = sys.argv[1:] if argv is None else argv
    with open(args[0]) as handle:
        spec = LoadSpec(**json.load(handle))
    try:
        import uvloop

        result = uvloop.run(run(spec))
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        result = asyncio.run(run(spec))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
