"""The last active admin key cannot be revoked (409), through the real gateway and database.

Counting admin keys needs a key store of its own: on PostgreSQL the session's scratch database
holds every other test's admin keys, so each test here gets a fresh database.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.engine import make_url

from services.common.db import utcnow
from services.common.identity import Role
from services.common.migrations import upgrade
from services.common.settings import Settings
from services.gateway.app import create_app
from services.gateway.keys.models import ApiKey
from services.gateway.keys.service import create_key
from services.gateway.runtime import GatewayRuntime
from tests.conftest import TEST_DATABASE_URL, _asyncpg_dsn


@dataclass
class Gateway:
    client: httpx.AsyncClient
    runtime: GatewayRuntime

    async def key(self, *, role: Role, team: str = "risk-mining") -> tuple[str, dict[str, str]]:
        async with self.runtime.sessionmaker() as session:
            row, plaintext = await create_key(session, team=team, role=role, name="test")
            await session.commit()
        return row.id, {"Authorization": f"Bearer {plaintext}"}

    async def revoke(self, key_id: str, headers: dict[str, str]) -> httpx.Response:
        return await self.client.post(f"/api/v1/keys/{key_id}/revoke", headers=headers)


async def _admin_sql(sql: str) -> None:
    assert TEST_DATABASE_URL is not None
    connection = await asyncpg.connect(_asyncpg_dsn(TEST_DATABASE_URL))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture
async def gateway(backend: str, make_settings: Callable[..., Settings]) -> AsyncIterator[Gateway]:
    """A gateway on a key store of its own (a fresh SQLite file or PostgreSQL database)."""
    database = f"riskdesk_admins_{uuid.uuid4().hex[:10]}"
    database_url = None
    if backend == "postgresql":
        assert TEST_DATABASE_URL is not None
        await _admin_sql(f'CREATE DATABASE "{database}"')
        database_url = (
            make_url(TEST_DATABASE_URL)
            .set(drivername="postgresql+asyncpg", database=database)
            .render_as_string(hide_password=False)
        )
    settings = make_settings(temporal_address="127.0.0.1:1", database_url=database_url)
    try:
        await asyncio.to_thread(
            upgrade, service="gateway", database_url=settings.database_url_of("gateway")
        )
        app = create_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://gateway"
            ) as client,
        ):
            yield Gateway(client, app.state.runtime)
    finally:
        if backend == "postgresql":
            await _admin_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


async def test_the_last_active_admin_key_cannot_be_revoked(gateway: Gateway) -> None:
    only_id, only = await gateway.key(role=Role.ADMIN)
    refused = await gateway.revoke(only_id, only)
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert "last active admin key" in refused.json()["detail"]
    assert (await gateway.client.get("/api/v1/me", headers=only)).status_code == 200

    # Non-admin keys never count, revoked or expired admin keys neither.
    analyst_id, _analyst = await gateway.key(role=Role.ANALYST)
    assert (await gateway.revoke(analyst_id, only)).status_code == 200
    expiring_id, _expiring = await gateway.key(role=Role.ADMIN)
    async with gateway.runtime.sessionmaker() as session:
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == expiring_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    assert (await gateway.revoke(only_id, only)).status_code == 409

    # With a second live admin the first can go; then the second is the last one.
    second_id, second = await gateway.key(role=Role.ADMIN)
    revoked = await gateway.revoke(only_id, second)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    assert (await gateway.revoke(second_id, second)).status_code == 409
    # Revoking an already revoked key stays a no-op, and an expired admin key may be revoked.
    assert (await gateway.revoke(only_id, second)).status_code == 200
    assert (await gateway.revoke(expiring_id, second)).status_code == 200


async def test_two_admins_revoking_each_other_at_once_leave_one(gateway: Gateway) -> None:
    first_id, first = await gateway.key(role=Role.ADMIN)
    second_id, second = await gateway.key(role=Role.ADMIN)
    answers = await asyncio.gather(
        gateway.revoke(second_id, first), gateway.revoke(first_id, second)
    )
    assert sorted(answer.status_code for answer in answers) == [200, 409], [
        answer.text for answer in answers
    ]
    live = [
        headers
        for headers in (first, second)
        if (await gateway.client.get("/api/v1/me", headers=headers)).status_code == 200
    ]
    assert len(live) == 1
