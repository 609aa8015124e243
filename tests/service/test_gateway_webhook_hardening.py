"""Webhook targets guarded against SSRF at creation, and signing secrets encrypted at rest, through
the real gateway app and database (delivery-time checks: tests/workflows/test_webhook_target_guard.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError
from sqlalchemy import select

from services.common.db import utcnow
from services.common.identity import Identity, Role, sign_identity
from services.common.migrations import upgrade
from services.common.secret_box import SecretBox
from services.common.settings import Settings
from services.gateway.app import create_app
from services.gateway.keys.service import create_key
from services.gateway.notifications.models import Delivery, Subscription
from services.gateway.runtime import GatewayRuntime

PROBLEM = "application/problem+json"


class Gateway:
    """A gateway app in this process and an httpx client on it."""

    def __init__(self, client: httpx.AsyncClient, runtime: GatewayRuntime) -> None:
        self.client = client
        self.runtime = runtime
        self.settings = runtime.settings

    async def key(self, *, team: str, role: Role = Role.PARTNER) -> dict[str, str]:
        async with self.runtime.sessionmaker() as session:
            _key, plaintext = await create_key(session, team=team, role=role, name="test")
            await session.commit()
        return {"Authorization": f"Bearer {plaintext}"}

    def system(self) -> dict[str, str]:
        token = sign_identity(
            Identity(subject="worker", team="risk-mining", role=Role.SYSTEM),
            secret=self.settings.identity_secret,
            ttl_seconds=60,
        )
        return {"X-Riskdesk-Identity": token}

    async def subscribe(self, team: str, **body: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/subscriptions",
            json={"event_types": ["sla.warning"], **body},
            headers=await self.key(team=team),
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def delivery_of(self, team: str, subscription_id: int) -> dict[str, Any]:
        """Emit an event for `team` and read the resulting delivery as the worker does."""
        event = {
            "event_id": f"hardening:{uuid.uuid4().hex}",
            "type": "sla.warning",
            "team": team,
            "occurred_at": datetime.now(UTC).isoformat(),
            "subject": {"kind": "request", "id": "1"},
            "data": {"threshold": 50},
        }
        posted = await self.client.post("/internal/events", json=event, headers=self.system())
        assert posted.status_code == 202, posted.text
        async with self.runtime.sessionmaker() as session:
            delivery_id = await session.scalar(
                select(Delivery.id).where(
                    Delivery.subscription_id == subscription_id,
                    Delivery.event_id == event["event_id"],
                )
            )
        assert delivery_id is not None
        response = await self.client.get(
            f"/internal/deliveries/{delivery_id}", headers=self.system()
        )
        return {"status": response.status_code, "body": response.json()}

    async def row(self, subscription_id: int) -> Subscription:
        async with self.runtime.sessionmaker() as session:
            row = await session.get(Subscription, subscription_id)
        assert row is not None
        return row


@pytest.fixture
def open_gateway(make_settings: Callable[..., Settings]) -> Callable[..., Any]:
    """Start a gateway (migrated; Temporal unreachable on purpose) with settings overrides."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Gateway]:
        settings = make_settings(temporal_address="127.0.0.1:1", **overrides)
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

    return start


REFUSED = [
    ("https://127.0.0.1/hook", "loopback"),
    ("https://localhost:8443/hook", "loopback"),
    ("https://[::1]/hook", "loopback"),
    ("https://10.1.2.3/hook", "private"),
    ("https://192.168.0.10/hook", "private"),
    ("https://172.16.5.4/hook", "private"),
    ("https://169.254.169.254/latest/meta-data", "link-local"),
    ("https://[fe80::1]/hook", "link-local"),
    ("https://224.0.0.1/hook", "multicast"),
    ("https://240.0.0.1/hook", "reserved"),
    ("https://0.0.0.0/hook", "unspecified"),
    ("https://[::ffff:10.0.0.1]/hook", "private"),
    ("https://100.64.0.1/hook", "not publicly routable"),
    ("https://riskdesk-no-such-host.invalid/hook", "does not resolve"),
    ("http://93.184.215.14/hook", "must use https"),
    ("http://127.0.0.1:9/hook", "must use https"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
async def test_private_or_plain_http_targets_are_refused_with_a_clear_422(
    open_gateway: Callable[..., Any], unique_team: str, url: str, reason: str
) -> None:
    async with open_gateway(webhook_allow_private_targets=False) as gateway:
        partner = await gateway.key(team=unique_team)
        response = await gateway.client.post(
            "/api/v1/subscriptions",
            json={"event_types": ["sla.warning"], "channel": "webhook", "url": url},
            headers=partner,
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == PROBLEM
        problem = response.json()
        assert reason in problem["detail"], problem
        (error,) = problem["errors"]
        assert error["field"] == "body.url"
        assert error["code"] in {"target_refused", "url_invalid"}
        listed = await gateway.client.get("/api/v1/subscriptions", headers=partner)
        assert listed.json()["items"] == []


async def test_public_https_targets_are_accepted_and_dev_allows_local_ones(
    open_gateway: Callable[..., Any], unique_team: str
) -> None:
    async with open_gateway(webhook_allow_private_targets=False) as gateway:
        for url in ("https://93.184.215.14/hook", "https://[2606:4700:4700::1111]:8443/h"):
            await gateway.subscribe(unique_team, channel="webhook", url=url)
    async with open_gateway(webhook_allow_private_targets=True) as dev:
        for url in ("http://127.0.0.1:9/hook", "https://10.1.2.3/hook", "http://localhost/h"):
            await dev.subscribe(unique_team, channel="webhook", url=url)
        # Even in development, plain http goes to this machine only.
        response = await dev.client.post(
            "/api/v1/subscriptions",
            json={"event_types": ["sla.warning"], "channel": "webhook", "url": "http://10.1.2.3/"},
            headers=await dev.key(team=unique_team),
        )
        assert response.status_code == 422, response.text


async def test_secrets_are_stored_encrypted_and_decrypted_only_for_the_worker(
    open_gateway: Callable[..., Any], unique_team: str
) -> None:
    key = Fernet.generate_key().decode()
    async with open_gateway(secrets_key=key) as gateway:
        created = await gateway.subscribe(
            unique_team, channel="webhook", url="http://127.0.0.1:9/hook"
        )
        secret = created["secret"]
        row = await gateway.row(created["id"])
        assert row.secret == ""
        assert row.secret_encrypted is not None
        assert secret not in row.secret_encrypted
        assert SecretBox([key]).decrypt(row.secret_encrypted) == secret
        found = await gateway.delivery_of(unique_team, created["id"])
        assert found["status"] == 200, found
        assert found["body"]["subscription"]["secret"] == secret
        # The public API never shows it again.
        read = await gateway.client.get(
            f"/api/v1/subscriptions/{created['id']}", headers=await gateway.key(team=unique_team)
        )
        assert "secret" not in read.json()

    # Rotation: a new key first, the old one kept to decrypt.
    rotated = f"{Fernet.generate_key().decode()},{key}"
    async with open_gateway(secrets_key=rotated) as gateway:
        found = await gateway.delivery_of(unique_team, created["id"])
        assert found["body"]["subscription"]["secret"] == secret

    # The old key dropped too early: the secret is unreadable, a 409 problem (never a 500).
    async with open_gateway(secrets_key=Fernet.generate_key().decode()) as gateway:
        found = await gateway.delivery_of(unique_team, created["id"])
        assert found["status"] == 409, found
        assert "RISKDESK_SECRETS_KEY" in found["body"]["detail"]
        # E-mail deliveries are not signed, so they need no secret and still go.
        mail = await gateway.subscribe(unique_team, channel="email", email="ops@example.com")
        async with gateway.runtime.sessionmaker() as session:
            # Sealed under the old key, like every row made before the key change.
            mail_row = await session.get(Subscription, mail["id"])
            assert mail_row is not None
            mail_row.secret_encrypted = SecretBox([key]).encrypt("whsec_old")
            await session.commit()
        found = await gateway.delivery_of(unique_team, mail["id"])
        assert found["status"] == 200, found
        assert found["body"]["subscription"]["secret"] == ""


async def test_legacy_clear_secrets_sign_until_the_gateway_encrypts_them_at_start(
    open_gateway: Callable[..., Any], unique_team: str
) -> None:
    key = Fernet.generate_key().decode()
    legacy_secret = "whsec_legacy_" + uuid.uuid4().hex
    async with open_gateway(secrets_key=key) as gateway:
        async with gateway.runtime.sessionmaker() as session:
            row = Subscription(
                team=unique_team,
                event_types=["sla.warning"],
                channel="webhook",
                url="http://127.0.0.1:9/hook",
                secret=legacy_secret,  # as rows made before gateway_0006 are
                created_at=utcnow(),
            )
            session.add(row)
            await session.commit()
            legacy_id = row.id
        # Not encrypted yet (this gateway started before the row existed), and it still signs.
        assert (await gateway.row(legacy_id)).secret_encrypted is None
        found = await gateway.delivery_of(unique_team, legacy_id)
        assert found["body"]["subscription"]["secret"] == legacy_secret
    async with open_gateway(secrets_key=key) as gateway:
        row = await gateway.row(legacy_id)
        assert row.secret == ""
        assert row.secret_encrypted is not None
        assert SecretBox([key]).decrypt(row.secret_encrypted) == legacy_secret
        found = await gateway.delivery_of(unique_team, legacy_id)
        assert found["body"]["subscription"]["secret"] == legacy_secret


def test_a_production_gateway_requires_a_valid_secrets_key() -> None:
    strong: dict[str, Any] = {"environment": "production", "identity_secret": "s" * 40}
    # Other processes do not need the key; the gateway refuses to be built without it.
    assert Settings(**strong).secrets_key is None
    with pytest.raises(ValueError, match="RISKDESK_SECRETS_KEY must be set in production"):
        create_app(Settings(**strong))
    with pytest.raises(ValidationError, match="Fernet keys"):
        Settings(**strong, secrets_key="not-a-key")
    good = Fernet.generate_key().decode()
    with pytest.raises(ValidationError, match="Fernet keys"):
        Settings(**strong, secrets_key=f"{good},short")
    assert Settings(**strong, secrets_key=good).secrets_key == good
    create_app(Settings(**strong, secrets_key=good))
    assert Settings(**strong, secrets_key=good).webhook_allow_private_targets is False
    # Outside production a public development key stands in.
    box = SecretBox.from_settings(Settings(environment="development"))
    assert box.decrypt(box.encrypt("x")) == "x"
