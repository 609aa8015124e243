"""A scratch PostgreSQL database for one benchmark run, dropped afterwards.

The server comes from RISKDESK_BENCH_DATABASE_URL, else TEST_DATABASE_URL, else the local
default `postgresql+asyncpg://postgres@127.0.0.1:5432/test`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

LOCAL_DEFAULT = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    """The PostgreSQL server benchmarks create their scratch databases on."""
    return (
        os.environ.get("RISKDESK_BENCH_DATABASE_URL")
        or os.environ.get("TEST_DATABASE_URL")
        or LOCAL_DEFAULT
    )


def _dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@asynccontextmanager
async def scratch_database(prefix: str) -> AsyncIterator[str]:
    """Create a database named `<prefix>_<random>`; yield its SQLAlchemy (asyncpg) URL; drop it."""
    server = server_url()
    database = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(_dsn(server))
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    try:
        yield (
            make_url(server)
            .set(drivername="postgresql+asyncpg", database=database)
            .render_as_string(hide_password=False)
        )
    finally:
        admin = await asyncpg.connect(_dsn(server))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await admin.close()
