"""Fixtures of the security suite: one in-process stack for the whole session.

The suite runs ONCE per test session, on PostgreSQL when `TEST_DATABASE_URL` is set (the backend
production uses), else on SQLite: what it checks (who may call what, what hostile input gets)
does not depend on the database, and running it per backend would double its minutes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from riskdesk.temporal_server import running_dev_server
from services.common.settings import Settings
from tests.conftest import TEST_DATABASE_URL
from tests.security.stack import RunningStack, running_stack, stack_settings

SECRETS_NAMESPACE = "security-secrets"


@contextmanager
def scratch_database() -> Iterator[str | None]:
    """A PostgreSQL database of one stack's own, dropped afterwards (None: SQLite files).

    Two stacks run at once (the session's and the secrets test's): on one database each one's
    outbox dispatchers would take the other's events.
    """
    if not TEST_DATABASE_URL:
        yield None
        return
    url = make_url(TEST_DATABASE_URL)
    name = f"riskdesk_security_{uuid.uuid4().hex[:12]}"
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(drivername="postgresql+asyncpg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def security_temporal() -> Iterator[str]:
    """A Temporal dev server for the security suite alone (its workflow ids start at 1).

    The secrets test's stack runs beside the session's: it gets a namespace of its own, or its
    workflow ids (`delivery-1`, ...) would meet the other stack's.
    """
    with running_dev_server(extra_args=["--namespace", SECRETS_NAMESPACE]) as address:
        yield address


def security_settings(
    request: pytest.FixtureRequest, backend: str, data_dir: Path, temporal: str, **overrides: Any
) -> Settings:
    """Settings of a stack on `backend` (the session's scratch PostgreSQL, or SQLite files)."""
    database_url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    return settings_on(database_url, data_dir, temporal, **overrides)


def settings_on(
    database_url: str | None, data_dir: Path, temporal: str, **overrides: Any
) -> Settings:
    """Settings of a security stack on `database_url` (None: SQLite files in `data_dir`)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    values: dict[str, Any] = {
        "environment": "test",
        "data_dir": data_dir,
        "database_url": database_url,
        "temporal_address": temporal,
        "task_queue": f"security-{uuid.uuid4().hex[:10]}",
        "outbox_poll_seconds": 0.1,
        "outbox_max_backoff_seconds": 1.0,
        "log_json": True,
        "rate_limit": "100000/minute",
        # Two cores shared with other suites: a slow answer is not what this suite tests.
        "service_timeout_seconds": 30.0,
        "delivery_initial_interval_seconds": 0.2,
        "delivery_max_interval_seconds": 1.0,
        # Test receivers listen on 127.0.0.1 over plain http.
        "webhook_allow_private_targets": True,
        # Lexical MO matching: no model to load, suggestions in milliseconds.
        "semantic_matching": "off",
        **overrides,
    }
    return stack_settings(Settings(**values))


@pytest.fixture(scope="session")
def security_stack(
    tmp_path_factory: pytest.TempPathFactory, security_temporal: str
) -> Iterator[RunningStack]:
    """The gateway, the three services and a worker, in this process, for the whole session."""
    with scratch_database() as database_url:
        settings = settings_on(
            database_url, tmp_path_factory.mktemp("security") / "data", security_temporal
        )
        with running_stack(settings) as stack:
            yield stack
