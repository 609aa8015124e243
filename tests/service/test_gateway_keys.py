"""API keys through the real gateway app and database: create, list, revoke, expiry, roles, errors."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import FastAPI
from sqlalchemy import update

from services.common.db import make_engine, utcnow
from services.common.errors import Unauthorized
from services.common.identity import Role
from services.common.migrations import downgrade, upgrade
from services.common.settings import Settings
from services.gateway.app import create_app
from services.gateway.keys.models import ApiKey
from services.gateway.keys.service import authenticate, create_key, hash_key, list_keys, revoke_key
from services.gateway.models import Base
from services.gateway.runtime import GatewayRuntime

KEY_PATTERN = re.compile(r"^rk_[a-z0-9]{8}_[A-Za-z0-9_-]{43}$")
PROBLEM = "application/problem+json"
NON_ADMIN_ROLES = [Role.PARTNER, Role.ANALYST, Role.PROGRAM_MANAGER, Role.APPROVER]


@dataclass
class Gateway:
    app: FastAPI
    client: httpx.AsyncClient
    runtime: GatewayRuntime

    async def new_key(
        self, *, team: str, role: Role = Role.PARTNER, **extra: Any
    ) -> tuple[ApiKey, str]:
        async with self.runtime.sessionmaker() as session:
            key, plaintext = await create_key(
                session, team=team, role=role, name=f"{role} key", **extra
            )
            await session.commit()
        return key, plaintext


def bearer(plaintext: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {plaintext}"}


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].endswith("/" + slug)
    assert body["detail"]
    return body


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    await asyncio.to_thread(
        upgrade, service="gateway", database_url=settings.database_url_of("gateway")
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield Gateway(app=app, client=client, runtime=app.state.runtime)


@pytest.fixture
async def admin(gateway: Gateway, unique_team: str) -> str:
    _key, plaintext = await gateway.new_key(team=unique_team, role=Role.ADMIN)
    return plaintext


async def test_service_creates_and_authenticates_a_key(gateway: Gateway, unique_team: str) -> None:
    key, plaintext = await gateway.new_key(team=unique_team, role=Role.ANALYST, created_by="seed")
    assert KEY_PATTERN.match(plaintext)
    assert plaintext.startswith(f"rk_{key.id}_")
    # Only the digest is stored.
    assert key.key_hash == hashlib.sha256(plaintext.encode()).hexdigest() == hash_key(plaintext)
    assert plaintext not in key.key_hash
    async with gateway.runtime.sessionmaker() as session:
        found = await authenticate(session, plaintext)
        await session.commit()
        assert (found.id, found.team, found.role, found.created_by) == (
            key.id,
            unique_team,
            Role.ANALYST,
            "seed",
        )
        assert found.last_used_at is not None
        first_use = found.last_used_at
        # A second use within the minute does not write again.
        again = await authenticate(session, plaintext)
        assert again.last_used_at == first_use
        with pytest.raises(Unauthorized):
            await authenticate(session, plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B"))


async def test_service_refuses_system_role_and_past_expiry(
    gateway: Gateway, unique_team: str
) -> None:
    from services.common.errors import ValidationFailed

    async with gateway.runtime.sessionmaker() as session:
        with pytest.raises(ValidationFailed):
            await create_key(session, team=unique_team, role=Role.SYSTEM, name="worker")
        with pytest.raises(ValidationFailed):
            await create_key(
                session,
                team=unique_team,
                role=Role.PARTNER,
                name="old",
                expires_at=utcnow() - timedelta(seconds=1),
            )


async def test_admin_creates_a_key_that_works(
    gateway: Gateway, admin: str, unique_team: str
) -> None:
    expires = (utcnow() + timedelta(days=30)).isoformat()
    response = await gateway.client.post(
        "/api/v1/keys",
        json={
            "name": "buyer-risk sync",
            "team": unique_team,
            "role": "partner",
            "expires_at": expires,
        },
        headers=bearer(admin),
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert KEY_PATTERN.match(body["key"])
    assert body["team"] == unique_team
    assert body["role"] == "partner"
    assert body["name"] == "buyer-risk sync"
    assert body["created_by"] == admin[3:11]
    assert body["revoked_at"] is None
    assert body["expires_at"] is not None
    assert "key_hash" not in body

    me = await gateway.client.get("/api/v1/me", headers=bearer(body["key"]))
    assert me.status_code == 200
    assert me.json() == {
        "id": body["id"],
        "name": "buyer-risk sync",
        "team": unique_team,
        "role": "partner",
        "expires_at": body["expires_at"],
    }


async def test_list_keys_pages_newest_first_without_secrets(
    gateway: Gateway, admin: str, unique_team: str
) -> None:
    created = []
    for role in [Role.PARTNER, Role.ANALYST, Role.APPROVER, Role.PROGRAM_MANAGER, Role.PARTNER]:
        response = await gateway.client.post(
            "/api/v1/keys",
            json={"name": f"{role} key", "team": unique_team, "role": role},
            headers=bearer(admin),
        )
        assert response.status_code == 201
        created.append(response.json())

    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"team": unique_team, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await gateway.client.get("/api/v1/keys", params=params, headers=bearer(admin))
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # The admin key is on the same team, so it is listed too (it is the oldest).
    assert pages == 3
    assert [item["id"] for item in seen[:5]] == [item["id"] for item in reversed(created)]
    assert seen[5]["id"] == admin[3:11]
    for item in seen:
        assert "key" not in item
        assert "key_hash" not in item
        assert all(not str(value).startswith("rk_") for value in item.values())

    async with gateway.runtime.sessionmaker() as session:
        rows, next_cursor = await list_keys(session, cursor=None, limit=200, team=unique_team)
    assert len(rows) == 6
    assert next_cursor is None

    bad = await gateway.client.get(
        "/api/v1/keys", params={"cursor": "not-a-cursor"}, headers=bearer(admin)
    )
    assert_problem(bad, 422, "validation-error")
    too_many = await gateway.client.get(
        "/api/v1/keys", params={"limit": 1000}, headers=bearer(admin)
    )
    assert_problem(too_many, 422, "validation-error")


async def test_revoked_key_is_refused_and_revoke_is_idempotent(
    gateway: Gateway, admin: str, unique_team: str
) -> None:
    key, plaintext = await gateway.new_key(team=unique_team)
    # Used once first, so the key sits in the authenticator's cache when it is revoked.
    assert (await gateway.client.get("/api/v1/me", headers=bearer(plaintext))).status_code == 200

    first = await gateway.client.post(f"/api/v1/keys/{key.id}/revoke", headers=bearer(admin))
    assert first.status_code == 200
    assert first.json()["revoked_at"] is not None
    second = await gateway.client.post(f"/api/v1/keys/{key.id}/revoke", headers=bearer(admin))
    assert second.status_code == 200
    assert second.json()["revoked_at"] == first.json()["revoked_at"]

    refused = await gateway.client.get("/api/v1/me", headers=bearer(plaintext))
    body = assert_problem(refused, 401, "unauthorized")
    assert "revoked" in body["detail"]
    assert refused.headers["www-authenticate"].startswith("Bearer")

    missing = await gateway.client.post("/api/v1/keys/zzzzzzzz/revoke", headers=bearer(admin))
    assert_problem(missing, 404, "not-found")


async def test_service_revoke_is_seen_by_the_gateway(gateway: Gateway, unique_team: str) -> None:
    key, plaintext = await gateway.new_key(team=unique_team)
    async with gateway.runtime.sessionmaker() as session:
        await revoke_key(session, key_id=key.id)
        await session.commit()
    assert_problem(
        await gateway.client.get("/api/v1/me", headers=bearer(plaintext)), 401, "unauthorized"
    )


async def test_expired_key_is_refused(gateway: Gateway, unique_team: str) -> None:
    key, plaintext = await gateway.new_key(
        team=unique_team, expires_at=utcnow() + timedelta(hours=1)
    )
    assert (await gateway.client.get("/api/v1/me", headers=bearer(plaintext))).status_code == 200
    async with gateway.runtime.sessionmaker() as session:
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == key.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    gateway.runtime.authenticator.forget(key.id)
    body = assert_problem(
        await gateway.client.get("/api/v1/me", headers=bearer(plaintext)), 401, "unauthorized"
    )
    assert "expired" in body["detail"]


async def test_expiry_is_checked_on_cached_keys(
    settings: Settings, make_settings: Any, unique_team: str
) -> None:
    # The cache must never outlive a key's expiry: the check runs on every call.
    del settings
    tuned = make_settings(api_key_cache_seconds=60)
    await asyncio.to_thread(
        upgrade, service="gateway", database_url=tuned.database_url_of("gateway")
    )
    app = create_app(tuned)
    async with app.router.lifespan_context(app):
        runtime: GatewayRuntime = app.state.runtime
        async with runtime.sessionmaker() as session:
            _key, plaintext = await create_key(
                session,
                team=unique_team,
                role=Role.PARTNER,
                name="short",
                expires_at=utcnow() + timedelta(seconds=1),
            )
            await session.commit()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gw"
        ) as client:
            assert (await client.get("/api/v1/me", headers=bearer(plaintext))).status_code == 200
            await asyncio.sleep(1.1)
            assert_problem(
                await client.get("/api/v1/me", headers=bearer(plaintext)), 401, "unauthorized"
            )


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer garbage",
        "Bearer rk_ABCDEFGH_" + "a" * 43,
        "Bearer rk_abcdefgh_short",
        "Bearer rk_abcdefgh-" + "a" * 43,
        "Bearer rk_abcdefgh_" + "a" * 42 + "!",
        "Bearer rk_abcdefgh_" + "a" * 500,
        "Bearer rk_zzzzzzzz_" + "a" * 43,
    ],
)
async def test_missing_malformed_or_unknown_keys_get_401(
    gateway: Gateway, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    for method, path in [
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/keys"),
        ("GET", "/api/v1/requests"),
    ]:
        response = await gateway.client.request(method, path, headers=headers)
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == 'Bearer realm="riskdesk"'


async def test_wrong_secret_for_a_real_id_gets_401(gateway: Gateway, unique_team: str) -> None:
    key, plaintext = await gateway.new_key(team=unique_team)
    forged = f"rk_{key.id}_" + "A" * 43
    for _ in range(2):  # the second call is served by the cache after the real key is used
        assert_problem(
            await gateway.client.get("/api/v1/me", headers=bearer(forged)), 401, "unauthorized"
        )
        assert (
            await gateway.client.get("/api/v1/me", headers=bearer(plaintext))
        ).status_code == 200


@pytest.mark.parametrize("role", NON_ADMIN_ROLES)
async def test_non_admin_keys_get_403_on_key_admin(
    gateway: Gateway, unique_team: str, role: Role
) -> None:
    key, plaintext = await gateway.new_key(team=unique_team, role=role)
    calls: list[Callable[[], Awaitable[httpx.Response]]] = [
        lambda: gateway.client.post(
            "/api/v1/keys",
            json={"name": "x", "team": unique_team, "role": "admin"},
            headers=bearer(plaintext),
        ),
        lambda: gateway.client.get("/api/v1/keys", headers=bearer(plaintext)),
        lambda: gateway.client.post(f"/api/v1/keys/{key.id}/revoke", headers=bearer(plaintext)),
    ]
    for call in calls:
        body = assert_problem(await call(), 403, "forbidden")
        assert "admin" in body["detail"]
    me = await gateway.client.get("/api/v1/me", headers=bearer(plaintext))
    assert me.status_code == 200
    assert me.json()["role"] == str(role)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "x", "team": "t", "role": "partner", "owner": "me"}, "body.owner"),
        ({"name": "x", "team": "t", "role": "system"}, "body.role"),
        ({"name": "x", "team": "t", "role": "root"}, "body.role"),
        ({"name": "", "team": "t", "role": "partner"}, "body.name"),
        ({"name": "x", "team": "has space", "role": "partner"}, "body.team"),
        (
            {"name": "x", "team": "t", "role": "partner", "expires_at": "2020-01-01T00:00:00Z"},
            "body.expires_at",
        ),
        (
            {"name": "x", "team": "t", "role": "partner", "expires_at": "2099-01-01T00:00:00"},
            "body.expires_at",
        ),
        ({"team": "t", "role": "partner"}, "body.name"),
    ],
)
async def test_invalid_key_bodies_get_422(
    gateway: Gateway, admin: str, payload: dict[str, Any], field: str
) -> None:
    response = await gateway.client.post("/api/v1/keys", json=payload, headers=bearer(admin))
    body = assert_problem(response, 422, "validation-error")
    assert field in [error["field"] for error in body["errors"]]


async def test_non_json_body_gets_400(gateway: Gateway, admin: str) -> None:
    response = await gateway.client.post(
        "/api/v1/keys",
        content=b"{not json",
        headers={**bearer(admin), "Content-Type": "application/json"},
    )
    assert_problem(response, 400, "bad-request")


async def test_migrations_match_the_models_and_reverse(settings: Settings) -> None:
    url = settings.database_url_of("gateway")
    await asyncio.to_thread(upgrade, service="gateway", database_url=url)
    engine = make_engine(url, schema="gateway", pool_size=1)
    try:
        async with engine.connect() as connection:

            def diff(sync_connection: Any) -> list[Any]:
                context = MigrationContext.configure(sync_connection, opts={"compare_type": True})
                return list(compare_metadata(context, Base.metadata))

            assert await connection.run_sync(diff) == []
    finally:
        await engine.dispose()
    await asyncio.to_thread(downgrade, service="gateway", database_url=url, revision="base")
    await asyncio.to_thread(upgrade, service="gateway", database_url=url)


async def test_concurrent_first_calls_share_one_key_lookup(
    gateway: Gateway, unique_team: str
) -> None:
    _key, plaintext = await gateway.new_key(team=unique_team)
    responses = await asyncio.gather(
        *(gateway.client.get("/api/v1/me", headers=bearer(plaintext)) for _ in range(20))
    )
    assert [r.status_code for r in responses] == [200] * 20
    assert not gateway.runtime.authenticator._loading  # no lookup left behind


async def test_key_store_down_is_503_not_500(
    backend: str,
    make_settings: Callable[..., Settings],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if backend != "sqlite":
        pytest.skip("the broken store is a SQLite path; once is enough")
    monkeypatch.setenv(
        "RISKDESK_GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/missing/dir/gateway.db"
    )
    app = create_app(make_settings())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client,
    ):
        me = await client.get("/api/v1/me", headers=bearer("rk_abcdefgh_" + "a" * 43))
        assert_problem(me, 503, "not-ready")
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["database"] == "unreachable"
        assert (await client.get("/healthz")).status_code == 200
