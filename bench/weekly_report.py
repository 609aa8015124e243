"""Weekly report generation at scale: a million requests on PostgreSQL.

Creates a scratch PostgreSQL database (`bench/scratch_pg.py`), migrates every service, bulk-loads
`rows` requests (two years of history, with SLA clock durations and stop instants, closures,
breaches) and their resolve/reopen events with asyncpg COPY (indexes rebuilt after the load),
then runs the real gateway, intake, escalation and SOP apps in-process (the gateway's service
calls go to the apps over ASGI, no sockets) and times:

- each stats endpoint for one week (`/api/v1/stats/intake|escalations|sops`);
- building the weekly report of an ended week with nothing stored (the worst case: 8 weeks live,
  4 service calls each), the stored row deleted before each sample;
- reading the stored report back.

    python -m bench weekly_report --rows 1000000
    python -m bench.weekly_report --rows 100000      # the same, standalone
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.scratch_pg import scratch_database
from services.common.identity import Role
from services.common.migrations import upgrade
from services.common.settings import Settings
from services.common.stats import iso_week_of, previous_week
from services.escalation.app import create_app as create_escalation
from services.gateway.app import create_app as create_gateway
from services.gateway.keys.service import create_key
from services.intake.app import create_app as create_intake
from services.sop.app import create_app as create_sop

DEFAULT_ROWS = 1_000_000
CHUNK = 50_000
TEAMS = 200
RESULTS = Path(__file__).parent / "results"
REQUEST_COLUMNS = (
    "id",
    "team",
    "request_type",
    "title",
    "description",
    "priority",
    "status",
    "resolution",
    "external_refs",
    "requested_by",
    "version",
    "created_at",
    "updated_at",
    "closed_at",
    "breached_at",
    "first_response_stopped_at",
    "first_response_business_seconds",
    "resolution_stopped_at",
    "resolution_business_seconds",
)
EVENT_COLUMNS = (
    "id",
    "request_id",
    "request_version",
    "kind",
    "action",
    "from_status",
    "to_status",
    "actor",
    "actor_role",
    "data",
    "occurred_at",
)


@dataclass(frozen=True)
class Options:
    """What to load and how many samples to take."""

    rows: int = DEFAULT_ROWS
    build_samples: int = 3
    samples: int = 10


class RoutingTransport(httpx.AsyncBaseTransport):
    """Sends each upstream URL's calls to that service's in-process app."""

    def __init__(self, routes: dict[str, httpx.AsyncBaseTransport]) -> None:
        self.routes = routes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.routes[request.url.netloc.decode()].handle_async_request(request)


def _rows(count: int, now: datetime, seed: int = 7) -> Iterator[tuple[list[Any], list[Any]]]:
    """Chunks of (request rows, event rows): two years of filings, most responded to and
    resolved, most resolved ones closed, a tenth breached, a few reopened."""
    rng = random.Random(seed)
    span = timedelta(days=730).total_seconds()
    types = ("mo_investigation", "deep_dive", "data_request", "rule_change")
    requests: list[Any] = []
    events: list[Any] = []
    for number in range(1, count + 1):
        created = now - timedelta(seconds=span * (1 - number / count))
        responded = created + timedelta(hours=rng.expovariate(1 / 4))
        resolved = created + timedelta(hours=rng.expovariate(1 / 60))
        is_responded, is_resolved = responded < now and rng.random() < 0.95, resolved < now
        is_closed = is_resolved and rng.random() < 0.9
        closed = min(resolved + timedelta(days=3), now) if is_closed else None
        status = "closed" if is_closed else "resolved" if is_resolved else "in_progress"
        breached = (
            created + timedelta(hours=rng.uniform(1, 40))
            if rng.random() < 0.1 and created + timedelta(hours=40) < now
            else None
        )
        requests.append(
            (
                number,
                f"team-{rng.randrange(TEAMS):03d}",
                rng.choice(types),
                "request",
                "",
                rng.choices(("P0", "P1", "P2", "P3"), weights=(2, 10, 50, 38))[0],
                status,
                "done" if is_closed else None,
                "[]",
                "key-bench",
                3,
                created,
                closed or (resolved if is_resolved else created),
                closed,
                breached,
                responded if is_responded else None,
                (responded - created).total_seconds() * 0.6 if is_responded else None,
                resolved if is_resolved else None,
                (resolved - created).total_seconds() * 0.4 if is_resolved else None,
            )
        )
        if is_resolved:
            events.append(_event(number, 2, "resolve", "in_progress", "resolved", resolved))
            if rng.random() < 0.05:
                reopened = resolved + timedelta(hours=1)
                events.append(_event(number, 3, "reopen", "resolved", "in_progress", reopened))
        if len(requests) == CHUNK:
            yield requests, events
            requests, events = [], []
    if requests:
        yield requests, events


def _event(
    request_id: int, version: int, action: str, before: str, after: str, at: datetime
) -> tuple[Any, ...]:
    return (
        str(uuid.uuid4()),
        request_id,
        version,
        "transitioned",
        action,
        before,
        after,
        "key-bench",
        "analyst",
        "{}",
        at,
    )


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _load(url: str, rows: int, now: datetime) -> dict[str, float]:
    """COPY requests and events in; their secondary indexes are rebuilt once afterwards."""
    connection = await asyncpg.connect(_dsn(url), server_settings={"search_path": "intake"})
    try:
        await connection.execute("SET maintenance_work_mem = '256MB'")
        indexes = await connection.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'intake' "
            "AND tablename IN ('request', 'request_event') AND indexname NOT LIKE 'pk_%' "
            "AND indexname NOT LIKE 'uq_%'"
        )
        for row in indexes:
            await connection.execute(f'DROP INDEX intake."{row["indexname"]}"')
        started = time.perf_counter()
        for requests, events in _rows(rows, now):
            await connection.copy_records_to_table(
                "request", records=requests, columns=REQUEST_COLUMNS
            )
            await connection.copy_records_to_table(
                "request_event", records=events, columns=EVENT_COLUMNS
            )
            print(f"\rloaded {requests[-1][0]:,}/{rows:,}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        loaded = time.perf_counter() - started
        await connection.execute(
            "SELECT setval(pg_get_serial_sequence('request', 'id'), (SELECT max(id) FROM request))"
        )
        started = time.perf_counter()
        for row in indexes:
            await connection.execute(row["indexdef"])
        indexed = time.perf_counter() - started
        # As autovacuum would have by now: statistics, and the visibility map that lets the
        # counts be index-only scans.
        await connection.execute("VACUUM ANALYZE request")
        await connection.execute("VACUUM ANALYZE request_event")
        return {
            "load_seconds": round(loaded, 1),
            "index_build_seconds": round(indexed, 1),
        }
    finally:
        await connection.close()


async def _time(operation: Callable[[], Awaitable[object]], samples: int) -> dict[str, float]:
    durations = []
    for _ in range(samples):
        started = time.perf_counter()
        await operation()
        durations.append(time.perf_counter() - started)
    return {
        "samples": samples,
        "p50_ms": round(statistics.median(durations) * 1000, 1),
        "max_ms": round(max(durations) * 1000, 1),
    }


async def _run(options: Options) -> dict[str, Any]:
    now = datetime.now(UTC)
    week = previous_week(iso_week_of(now.date()))  # the week just ended
    async with scratch_database("bench_weekly") as url, AsyncExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        settings = Settings(
            environment="test",
            data_dir=data_dir,
            database_url=url,
            log_json=True,
            log_level="WARNING",
            # Nothing runs on Temporal here; an unreachable address only idles the dispatchers.
            temporal_address="127.0.0.1:9",
        )
        for service in ("gateway", "intake", "escalation", "sop"):
            await asyncio.to_thread(upgrade, service=service, database_url=url)
        load = await _load(url, options.rows, now)
        apps = {
            "intake": create_intake(settings),
            "escalation": create_escalation(settings),
            "sop": create_sop(settings),
        }
        gateway = create_gateway(settings)
        for app in (*apps.values(), gateway):
            await stack.enter_async_context(app.router.lifespan_context(app))
        runtime = gateway.state.runtime
        routes: dict[str, httpx.AsyncBaseTransport] = {
            httpx.URL(base).netloc.decode(): httpx.ASGITransport(app=apps[service])
            for service, base in runtime.upstreams.items()
        }
        runtime.http = await stack.enter_async_context(
            httpx.AsyncClient(transport=RoutingTransport(routes), timeout=120)
        )
        client = await stack.enter_async_context(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=gateway), base_url="http://gateway", timeout=300
            )
        )
        async with runtime.sessionmaker() as session:
            _key, plaintext = await create_key(
                session, team="risk-mining", role=Role.ADMIN, name="bench"
            )
            await session.commit()
        headers = {"Authorization": f"Bearer {plaintext}"}

        async def get(path: str, **params: Any) -> None:
            response = await client.get(path, params=params, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")

        results: dict[str, Any] = {"rows": options.rows, "week": week, "load": load}
        for name, path in (
            ("stats_intake", "/api/v1/stats/intake"),
            ("stats_escalations", "/api/v1/stats/escalations"),
            ("stats_sops", "/api/v1/stats/sops"),
        ):

            async def stats(path: str = path) -> None:
                await get(path, week=week)

            results[name] = await _time(stats, options.samples)

        async def build() -> None:
            async with runtime.engine.begin() as connection:
                await connection.execute(text("DELETE FROM weekly_report"))
            await get("/api/v1/reports/weekly", week=week)

        results["build_report_8_weeks_live"] = await _time(build, options.build_samples)
        results["read_stored_report"] = await _time(
            lambda: get("/api/v1/reports/weekly", week=week), options.samples
        )
        results["read_stored_report_html"] = await _time(
            lambda: get("/api/v1/reports/weekly", week=week, format="html"), options.samples
        )
        return results


def run(options: Options) -> dict[str, Any]:
    """Run the benchmark; returns its results."""
    return asyncio.run(_run(options))


def main(argv: list[str] | None = None) -> int:
    """Standalone entry: `python -m bench.weekly_report --rows N`."""
    parser = argparse.ArgumentParser(prog="python -m bench.weekly_report", description=__doc__)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    args = parser.parse_args(argv)
    result = run(Options(rows=args.rows))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "weekly_report.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
