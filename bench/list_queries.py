"""List queries of intake at scale: p50/p99 of every list filter, sort and full-text search.

Creates a scratch PostgreSQL database (server from RISKDESK_BENCH_DATABASE_URL or
TEST_DATABASE_URL), migrates the intake schema, bulk-loads `rows` requests with asyncpg COPY
(secondary indexes are dropped during the load and rebuilt after it, as a bulk load should),
then times each list query through the service function `services.intake.search.service.
list_requests` (the endpoint's code without HTTP: filters, keyset page, tags, API models), and
records each query's plan (which index serves it). The database is dropped afterwards.

    python -m bench list_queries --rows 1000000
    python -m bench.list_queries --rows 100000      # the same, standalone
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import ClauseElement, Executable
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from services.common.db import make_engine, make_sessionmaker
from services.common.identity import Identity, Role
from services.common.migrations import upgrade
from services.intake.domain import Priority, RequestStatus, RequestType
from services.intake.search import service as search
from services.intake.search.service import SearchFilters, Sort
from services.intake.service import RequestFilters

DEFAULT_ROWS = 1_000_000
CHUNK = 50_000
TEAMS = 200
ANALYSTS = 50
PAGE = 50
SAMPLES = 60
RESULTS = Path(__file__).parent / "results"
WORDS = [
    "coupon",
    "abuse",
    "ring",
    "gift",
    "card",
    "resale",
    "account",
    "takeover",
    "refund",
    "fraud",
    "chargeback",
    "promo",
    "velocity",
    "reseller",
    "triangulation",
    "marketplace",
    "buyer",
    "seller",
    "payment",
    "stolen",
    "identity",
    "bot",
    "signup",
    "farm",
    "device",
    "fingerprint",
    "proxy",
    "vpn",
    "emulator",
    "carding",
    "cashout",
    "mule",
    "laundering",
    "shipping",
    "reship",
    "parcel",
    "claim",
    "delivery",
    "return",
    "empty",
    "box",
    "electronics",
    "fashion",
    "grocery",
    "travel",
    "ticket",
    "loyalty",
    "points",
    "voucher",
    "referral",
    "bonus",
    "sybil",
    "cluster",
    "network",
    "graph",
    "rule",
    "model",
    "threshold",
    "false",
    "positive",
    "negative",
    "precision",
    "recall",
    "spike",
    "trend",
    "weekly",
    "region",
    "europe",
    "india",
    "brazil",
    "mexico",
    "japan",
    "wallet",
    "bank",
    "transfer",
    "crypto",
    "prepaid",
    "subscription",
]
OPEN = [s for s in RequestStatus if s is not RequestStatus.CLOSED]
TAGS = [f"tag-{n:02d}" for n in range(30)]


@dataclass(frozen=True)
class Options:
    """What to run: rows to load and samples per query."""

    rows: int = DEFAULT_ROWS
    samples: int = SAMPLES
    database_url: str | None = None


def _server_url(explicit: str | None) -> str:
    url = (
        explicit
        or os.environ.get("RISKDESK_BENCH_DATABASE_URL")
        or os.environ.get("TEST_DATABASE_URL")
    )
    if not url:
        raise SystemExit(
            "list_queries needs PostgreSQL: set RISKDESK_BENCH_DATABASE_URL or TEST_DATABASE_URL"
        )
    return url


def _dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def _rows(count: int, now: datetime, seed: int = 7) -> Iterator[list[tuple[Any, ...]]]:
    """Chunks of request rows: two years of history, 70 % closed, realistic skew."""
    rng = random.Random(seed)
    span = timedelta(days=730).total_seconds()
    types = [t.value for t in RequestType]
    statuses = [s.value for s in OPEN]
    chunk: list[tuple[Any, ...]] = []
    for number in range(1, count + 1):
        # Ids grow with filing time, as they do in production.
        created = now - timedelta(seconds=span * (1 - number / count))
        updated = min(now, created + timedelta(hours=rng.expovariate(1 / 72)))
        closed = rng.random() < 0.7
        status = "closed" if closed else rng.choice(statuses)
        due = None if closed else updated + timedelta(hours=rng.uniform(-48, 240))
        breached = due if (due is not None and due < now and rng.random() < 0.5) else None
        title = " ".join(rng.choices(WORDS, k=rng.randint(4, 8)))
        description = " ".join(rng.choices(WORDS, k=rng.randint(10, 30)))
        chunk.append(
            (
                number,
                f"team-{rng.randrange(TEAMS):03d}",
                rng.choice(types),
                title,
                description,
                rng.choices(("P0", "P1", "P2", "P3"), weights=(2, 10, 50, 38))[0],
                status,
                rng.choice(("done", "rejected", "duplicate")) if closed else None,
                "[]",
                f"key-{rng.randrange(1000)}",
                f"analyst-{rng.randrange(ANALYSTS):02d}" if rng.random() < 0.8 else None,
                1,
                created,
                updated,
                updated if closed else None,
                due,
                breached,
            )
        )
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


COLUMNS = (
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
    "assignee",
    "version",
    "created_at",
    "updated_at",
    "closed_at",
    "sla_due_at",
    "breached_at",
)


async def _load(dsn: str, rows: int, now: datetime) -> dict[str, float]:
    """COPY the rows in; secondary indexes are rebuilt once after the load."""
    connection = await asyncpg.connect(dsn, server_settings={"search_path": "intake"})
    try:
        await connection.execute("SET maintenance_work_mem = '256MB'")
        definitions = [
            row["indexdef"]
            for row in await connection.fetch(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'intake' "
                "AND tablename IN ('request', 'request_tag') AND indexname NOT LIKE 'pk_%'"
            )
        ]
        names = [
            row["indexname"]
            for row in await connection.fetch(
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'intake' "
                "AND tablename IN ('request', 'request_tag') AND indexname NOT LIKE 'pk_%'"
            )
        ]
        for name in names:
            await connection.execute(f'DROP INDEX intake."{name}"')
        started = time.perf_counter()
        rng = random.Random(11)
        for chunk in _rows(rows, now):
            await connection.copy_records_to_table("request", records=chunk, columns=COLUMNS)
            tags = [
                (row[0], tag)
                for row in chunk
                if rng.random() < 0.3
                for tag in rng.sample(TAGS, rng.randint(1, 2))
            ]
            await connection.copy_records_to_table(
                "request_tag", records=tags, columns=("request_id", "tag")
            )
            print(f"\rloaded {chunk[-1][0]:,}/{rows:,}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        loaded = time.perf_counter() - started
        await connection.execute(
            "SELECT setval(pg_get_serial_sequence('request', 'id'), (SELECT max(id) FROM request))"
        )
        started = time.perf_counter()
        for definition in definitions:
            await connection.execute(definition)
        indexed = time.perf_counter() - started
        await connection.execute("ANALYZE request")
        await connection.execute("ANALYZE request_tag")
        return {
            "load_seconds": round(loaded, 1),
            "rows_per_second": round(rows / loaded),
            "index_build_seconds": round(indexed, 1),
        }
    finally:
        await connection.close()


class _Explain(Executable, ClauseElement):
    inherit_cache = False

    def __init__(self, query: Any) -> None:
        self.query = query


@compiles(_Explain)
def _compile_explain(element: _Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return "EXPLAIN " + compiler.process(element.query, **kw)


def _cases(now: datetime) -> dict[str, tuple[Identity, SearchFilters, Sort | None]]:
    partner = Identity(subject="key-7", team="team-007", role=Role.PARTNER)
    analyst = Identity(subject="analyst-01", team="risk-mining", role=Role.ANALYST)
    open_ = RequestFilters(statuses=OPEN)

    def f(**base: Any) -> SearchFilters:
        return SearchFilters(base=RequestFilters(**base))

    return {
        "partner_all_newest": (partner, SearchFilters(), None),
        "partner_open": (partner, SearchFilters(base=open_), None),
        "partner_sort_due": (partner, SearchFilters(), Sort.DUE),
        "partner_sort_priority": (partner, SearchFilters(), Sort.PRIORITY),
        "partner_sort_updated_desc": (partner, SearchFilters(), Sort.UPDATED_AT_DESC),
        "partner_fulltext": (partner, SearchFilters(q="coupon ring"), None),
        "status_new": (analyst, f(statuses=[RequestStatus.NEW]), None),
        "type_rule_change": (analyst, f(request_type=RequestType.RULE_CHANGE), None),
        "priority_p0": (analyst, f(priorities=[Priority.P0]), None),
        "assignee": (analyst, f(assignee="analyst-07"), None),
        "tag": (analyst, f(tag="tag-07"), None),
        "breached": (analyst, f(breached=True), None),
        "due_before_now": (analyst, f(due_before=now), None),
        "created_last_7_days": (analyst, f(created_after=now - timedelta(days=7)), None),
        "updated_last_day": (analyst, SearchFilters(updated_after=now - timedelta(days=1)), None),
        "older_than_30_days": (analyst, SearchFilters(older_than=timedelta(days=30)), None),
        "fulltext_common": (analyst, SearchFilters(q="coupon"), None),
        "fulltext_phrase_and": (analyst, SearchFilters(q='"gift card" chargeback -crypto'), None),
        "fulltext_rare_and": (analyst, SearchFilters(q="emulator sybil laundering"), None),
        "sort_due": (analyst, SearchFilters(), Sort.DUE),
        "sort_priority": (analyst, SearchFilters(), Sort.PRIORITY),
        "sort_created_at": (analyst, SearchFilters(), Sort.CREATED_AT),
        "sort_updated_at_stalest": (analyst, SearchFilters(), Sort.UPDATED_AT),
    }


async def _time(operation: Callable[[], Awaitable[object]], samples: int) -> dict[str, float]:
    for _ in range(3):
        await operation()
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        await operation()
        timings.append((time.perf_counter() - started) * 1000)
    quantiles = statistics.quantiles(timings, n=100)
    return {"p50_ms": round(quantiles[49], 2), "p99_ms": round(quantiles[98], 2)}


async def _plan(
    session: AsyncSession, caller: Identity, filters: SearchFilters, sort: Sort | None
) -> list[str]:
    lines = []
    for query in search.page_queries(
        session, caller=caller, filters=filters, sort=sort, key=None, limit=PAGE
    ):
        plan = [row[0] for row in (await session.execute(_Explain(query))).all()]
        lines.append(
            " | ".join(
                line.strip().split("  (")[0] for line in plan if "Scan" in line or "Sort" in line
            )
        )
    await session.rollback()
    return lines


async def _measure(url: str, samples: int) -> dict[str, Any]:
    engine = make_engine(url, schema="intake", pool_size=2)
    sessionmaker = make_sessionmaker(engine)
    now = datetime.now(UTC)
    results: dict[str, Any] = {}
    try:
        for name, (caller, filters, sort) in _cases(now).items():
            async with sessionmaker() as session:

                async def first_page(
                    session: AsyncSession = session,
                    caller: Identity = caller,
                    filters: SearchFilters = filters,
                    sort: Sort | None = sort,
                ) -> object:
                    page = await search.list_requests(
                        session, caller=caller, filters=filters, sort=sort, cursor=None, limit=PAGE
                    )
                    await session.rollback()
                    return page

                first = await search.list_requests(
                    session, caller=caller, filters=filters, sort=sort, cursor=None, limit=PAGE
                )
                await session.rollback()
                entry: dict[str, Any] = {"first_page": await _time(first_page, samples)}
                if first.next_cursor is not None:
                    cursor = first.next_cursor

                    async def second_page(
                        session: AsyncSession = session,
                        caller: Identity = caller,
                        filters: SearchFilters = filters,
                        sort: Sort | None = sort,
                        cursor: str = cursor,
                    ) -> object:
                        page = await search.list_requests(
                            session,
                            caller=caller,
                            filters=filters,
                            sort=sort,
                            cursor=cursor,
                            limit=PAGE,
                        )
                        await session.rollback()
                        return page

                    entry["next_page"] = await _time(second_page, samples)
                entry["rows_on_first_page"] = len(first.items)
                entry["plan"] = await _plan(session, caller, filters, sort)
                results[name] = entry
                print(f"{name}: {json.dumps(entry['first_page'])}", file=sys.stderr)
    finally:
        await engine.dispose()
    return results


async def _run(options: Options) -> dict[str, Any]:
    server = _server_url(options.database_url)
    database = f"riskdesk_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(_dsn(server))
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    url = (
        make_url(server)
        .set(drivername="postgresql+asyncpg", database=database)
        .render_as_string(hide_password=False)
    )
    try:
        await asyncio.to_thread(upgrade, service="intake", database_url=url)
        load = await _load(_dsn(server, database), options.rows, datetime.now(UTC))
        queries = await _measure(url, options.samples)
        return {
            "rows": options.rows,
            "page_size": PAGE,
            "samples_per_query": options.samples,
            "load": load,
            "queries": queries,
            "note": "service function (filters + keyset page + tags + API models), no HTTP; "
            "one PostgreSQL on the same 2-core machine",
        }
    finally:
        admin = await asyncpg.connect(_dsn(server))
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


def run(options: Options) -> dict[str, Any]:
    """Load, measure, drop; the results as written to bench/results/list_queries.json."""
    return asyncio.run(_run(options))


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point: `python -m bench.list_queries --rows N`."""
    parser = argparse.ArgumentParser(prog="python -m bench.list_queries", description=__doc__)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--samples", type=int, default=SAMPLES)
    args = parser.parse_args(argv)
    result = {
        "benchmark": "list_queries",
        "measured_at": datetime.now(UTC).isoformat(),
        "results": run(Options(rows=args.rows, samples=args.samples)),
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "list_queries.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"list_queries -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
