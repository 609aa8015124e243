"""One stack for the whole fault suite (starting it costs ~15 s), on one backend only.

The suite runs once per `make test`: on the scratch PostgreSQL when TEST_DATABASE_URL is set (the
production shape), else on SQLite files. Every test uses its own partner team, so their requests
and notifications never mix.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bench.sla_lateness import WebhookReceiver, api, create_partner, create_policy, subscribe
from tests.faults.stack import FaultStack

# P1 requests left `new` breach their first-response target this long after filing.
FIRST_RESPONSE_SECONDS = 10


@dataclass
class Faults:
    """The running stack, a webhook receiver, and a gateway client with the admin key."""

    stack: FaultStack
    receiver: WebhookReceiver
    client: httpx.AsyncClient

    @property
    def admin_key(self) -> str:
        return self.stack.admin_key

    async def team(self, name: str) -> Team:
        """A new partner team subscribed to its SLA breaches, and an analyst key."""
        team = f"{name}-{uuid.uuid4().hex[:6]}"
        partner = await create_partner(self.client, self.admin_key, team)
        created = await api(
            self.client,
            "POST",
            "/api/v1/keys",
            self.admin_key,
            expect=201,
            json={"name": f"analyst for {team}", "team": "risk-mining", "role": "analyst"},
        )
        subscription = await subscribe(self.client, partner, self.receiver.url, ["sla.breached"])
        return Team(team, partner, str(created["key"]), subscription)


@dataclass
class Team:
    """A partner team of one test: its keys and its webhook subscription."""

    name: str
    partner_key: str
    analyst_key: str
    subscription: dict[str, Any]


@pytest.fixture(scope="package")
def faults_database_url(request: pytest.FixtureRequest) -> str | None:
    """The scratch PostgreSQL when TEST_DATABASE_URL is set, else None (SQLite files)."""
    # A sync fixture: postgres_url runs its own event loop to create the database.
    if os.environ.get("TEST_DATABASE_URL"):
        return str(request.getfixturevalue("postgres_url"))
    return None


@pytest.fixture(scope="package")
async def faults(
    faults_database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Faults]:
    """The stack, started once for the suite, with a short-target P1 policy matched first."""
    stack = FaultStack.create(tmp_path_factory.mktemp("faults") / "data", faults_database_url)
    receiver = WebhookReceiver()
    try:
        await stack.start_all()
        async with (
            receiver.running(),
            httpx.AsyncClient(base_url=stack.gateway_url, timeout=15, trust_env=False) as client,
        ):
            await _short_p1_policy(client, stack.admin_key)
            yield Faults(stack=stack, receiver=receiver, client=client)
    finally:
        stack.stop()


async def _short_p1_policy(client: httpx.AsyncClient, admin_key: str) -> None:
    # First in match order (policies live as long as a shared PostgreSQL database does).
    existing = (await api(client, "GET", "/api/v1/sla/policies", admin_key))["items"]
    order = min(p["order"] for p in existing) - 1
    assert order >= 0, existing
    await create_policy(
        client,
        admin_key,
        policy_id=f"faults-p1-{uuid.uuid4().hex[:6]}",
        order=order,
        first_response=f"PT{FIRST_RESPONSE_SECONDS}S",
        resolution="PT1H",
        thresholds=[],
    )
