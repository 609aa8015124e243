"""Run benchmarks and write one JSON result per benchmark to bench/results/<name>.json.

A skeleton: the identity token (signed and verified on every forwarded call) is measured here;
later issues add the gateway's forwarding path, intake writes and list queries.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import (
    gateway_vs_direct,
    list_queries,
    mo_matching,
    outbox_lag,
    sla_lateness,
    weekly_report,
    workflow_throughput,
)
from services.common import business_time
from services.common.business_time import Calendar
from services.common.identity import Identity, Role, sign_identity, verify_identity

RESULTS = Path(__file__).parent / "results"
SECRET = "bench-secret-" + "x" * 32


def _measure(operation: Callable[[], object], *, seconds: float) -> dict[str, Any]:
    """Run `operation` in batches for about `seconds`: throughput and latency percentiles."""
    samples: list[float] = []
    calls = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        for _ in range(100):
            operation()
        samples.append((time.perf_counter() - started) / 100)
        calls += 100
    quantiles = statistics.quantiles(samples, n=100)
    total = sum(samples) * 100
    return {
        "calls": calls,
        "ops_per_second": round(calls / total),
        "p50_us": round(quantiles[49] * 1e6, 2),
        "p99_us": round(quantiles[98] * 1e6, 2),
    }


def bench_identity_token(seconds: float) -> dict[str, Any]:
    """Sign and verify the internal identity token (done once per forwarded request each)."""
    identity = Identity(subject="key-bench", team="buyer-risk", role=Role.PARTNER)
    token = sign_identity(identity, secret=SECRET, ttl_seconds=300)
    return {
        "sign": _measure(
            lambda: sign_identity(identity, secret=SECRET, ttl_seconds=300), seconds=seconds
        ),
        "verify": _measure(lambda: verify_identity(token, secret=SECRET), seconds=seconds),
    }


def bench_business_time(seconds: float) -> dict[str, Any]:
    """Deadline 30 business days ahead, and elapsed over the same span, on the India calendar.

    India's calendar has weekly hours and public holidays, the slowest kind; 24x7 is cheaper.
    """
    weekdays = {day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
    india = Calendar.from_spec(
        {"timezone": "Asia/Kolkata", "hours": weekdays, "holidays": {"country": "IN"}}
    )
    start = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    thirty_days = timedelta(hours=9 * 30)
    deadline = business_time.add(india, start, thirty_days)
    pauses = [
        (start + timedelta(days=d), start + timedelta(days=d, hours=3)) for d in range(1, 20, 2)
    ]
    return {
        "add_30_business_days": _measure(
            lambda: business_time.add(india, start, thirty_days), seconds=seconds
        ),
        "add_30_business_days_10_pauses": _measure(
            lambda: business_time.add(india, start, thirty_days, pauses), seconds=seconds
        ),
        "elapsed_30_business_days": _measure(
            lambda: business_time.elapsed(india, start, deadline), seconds=seconds
        ),
    }


BENCHMARKS: dict[str, Callable[[float], dict[str, Any]]] = {
    "identity_token": bench_identity_token,
    "business_time": bench_business_time,
    # precision@3 of MO suggestions on bench/data/mo_matching.json (semantic needs the ai extra)
    "mo_matching": lambda _seconds: mo_matching.run(),
}
# Whole-stack benchmarks (minutes each): run only when named, e.g. `python -m bench sla_lateness`.
STACK_BENCHMARKS = (
    "sla_lateness",
    "list_queries",
    "gateway_vs_direct",
    "weekly_report",
    "outbox_lag",
    "workflow_throughput",
)


def main(argv: list[str] | None = None) -> int:
    """Run the named benchmarks (all by default) and write their results."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"one of {', '.join([*BENCHMARKS, *STACK_BENCHMARKS])}",
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument(
        "--requests",
        type=int,
        default=sla_lateness.DEFAULT_REQUESTS,
        help="sla_lateness: requests per measurement (steady and burst)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=sla_lateness.DEFAULT_RATE,
        help="sla_lateness: requests filed per second in the steady measurement",
    )
    parser.add_argument(
        "--target-seconds",
        type=int,
        default=None,
        help="sla_lateness: resolution target of the steady measurement "
        "(default: just longer than filing the requests takes)",
    )
    parser.add_argument("--no-burst", action="store_true", help="sla_lateness: steady only")
    parser.add_argument(
        "--rows",
        type=int,
        default=list_queries.DEFAULT_ROWS,
        help="list_queries, weekly_report: requests bulk-loaded into a scratch PostgreSQL database",
    )
    parser.add_argument(
        "--load-seconds",
        type=float,
        default=gateway_vs_direct.Options.seconds,
        help="gateway_vs_direct: measured seconds per arm and connection count",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=gateway_vs_direct.Options.rounds,
        help="gateway_vs_direct: how many times each arm runs (the best round is kept)",
    )
    parser.add_argument(
        "--filing-rate",
        type=float,
        default=outbox_lag.Options.rate,
        help="outbox_lag: filings a second (sustained for twice --load-seconds)",
    )
    parser.add_argument(
        "--workflows",
        type=int,
        default=workflow_throughput.Options.workflows,
        help="workflow_throughput: request lifecycles (and 3x as many one-activity workflows)",
    )
    args = parser.parse_args(argv)
    benchmarks = {
        **BENCHMARKS,
        "sla_lateness": lambda _seconds: sla_lateness.run(
            sla_lateness.Options(
                requests=args.requests,
                rate=args.rate,
                target_seconds=args.target_seconds,
                burst=not args.no_burst,
            )
        ),
        "list_queries": lambda _seconds: list_queries.run(list_queries.Options(rows=args.rows)),
        "weekly_report": lambda _seconds: weekly_report.run(weekly_report.Options(rows=args.rows)),
        "gateway_vs_direct": lambda _seconds: gateway_vs_direct.run(
            gateway_vs_direct.Options(seconds=args.load_seconds, rounds=args.rounds)
        ),
        "outbox_lag": lambda _seconds: outbox_lag.run(
            outbox_lag.Options(rate=args.filing_rate, seconds=args.load_seconds * 2)
        ),
        "workflow_throughput": lambda _seconds: workflow_throughput.run(
            workflow_throughput.Options(workflows=args.workflows)
        ),
    }
    unknown = sorted(set(args.names) - set(benchmarks))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)} (known: {', '.join(benchmarks)})")
    RESULTS.mkdir(exist_ok=True)
    for name in args.names or [n for n in benchmarks if n not in STACK_BENCHMARKS]:
        result = {
            "benchmark": name,
            "measured_at": datetime.now(UTC).isoformat(),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "results": benchmarks[name](args.seconds),
        }
        path = RESULTS / f"{name}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"{name}: {json.dumps(result['results'])} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
