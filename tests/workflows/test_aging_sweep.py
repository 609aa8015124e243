"""The daily aging sweep on real parts: intake and the gateway under uvicorn, the real Temporal dev
server, a worker running `AgingSweepWorkflow` and the notification delivery, and a real webhook
receiver subscribed to `aging.digest`. Plus the schedule, created once."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.client import Client, ScheduleActionStartWorkflow
from temporalio.worker import Worker

from riskdesk.temporal_server import free_port
from services.common.identity import Role
from services.common.migrations import upgrade
from services.common.settings import Settings
from services.common.temporal import connect_temporal
from services.gateway.app import create_app as create_gateway
from services.gateway.keys.service import create_key
from services.gateway.runtime import GatewayRuntime
from services.intake.app import create_app as create_intake
from services.intake.models import Request
from tests.service.test_intake_api import migrate
from tests.workflows.test_notification_delivery import (
    FAST_RETRIES,
    Receiver,
    _offset_subscription_ids,
    assert_signed,
    eventually,
    serve,
)
from workflows import worker as worker_module
from workflows.aging_sweep import (
    AGING_SWEEP_SCHEDULE_ID,
    AgingActivities,
    AgingSweepWorkflow,
    digest_event_id,
    ensure_aging_sweep_schedule,
    owner_id,
)
from workflows.contracts import AGING_SWEEP_WORKFLOW, AgingOwner, AgingSweepInput
from workflows.notification_delivery import NotificationActivities, SubscriptionDeliveryWorkflow
from workflows.sandbox import workflow_runner
from workflows.service_api import ServiceApi, make_http_client


@pytest.fixture
async def client(temporal_address: str) -> Client:
    return await connect_temporal(temporal_address, "default")


@dataclass
class Stack:
    settings: Settings
    client: Client
    gateway: httpx.AsyncClient
    gateway_runtime: GatewayRuntime
    intake_runtime: Any

    async def key(self, *, team: str, role: Role = Role.PARTNER) -> dict[str, str]:
        async with self.gateway_runtime.sessionmaker() as session:
            _key, plaintext = await create_key(session, team=team, role=role, name="sweep test")
            await session.commit()
        return {"Authorization": f"Bearer {plaintext}"}

    async def plant(
        self, *, team: str, idle_days: int, assignee: str | None = None, title: str = "r"
    ) -> int:
        """An open request filed and last changed `idle_days` calendar days ago."""
        at = datetime.now(UTC) - timedelta(days=idle_days)
        async with self.intake_runtime.sessionmaker() as session:
            row = Request(
                team=team,
                request_type="deep_dive",
                title=title,
                description="",
                priority="P2",
                status="in_progress",
                external_refs=[],
                requested_by="seed",
                assignee=assignee,
                version=1,
                created_at=at,
                updated_at=at,
            )
            session.add(row)
            await session.commit()
            return row.id

    async def sweep(self) -> list[str]:
        result: list[str] = await self.client.execute_workflow(
            AGING_SWEEP_WORKFLOW,
            AgingSweepInput(),
            id=f"aging-sweep-test-{uuid.uuid4().hex[:8]}",
            task_queue=self.settings.task_queue,
            result_type=list[str],
            execution_timeout=timedelta(seconds=90),
        )
        return result


@asynccontextmanager
async def running_stack(settings: Settings, client: Client) -> AsyncIterator[Stack]:
    await migrate(settings)
    await asyncio.to_thread(
        upgrade, service="gateway", database_url=settings.database_url_of("gateway")
    )
    await _offset_subscription_ids(settings)
    intake_app = create_intake(settings)
    gateway_app = create_gateway(settings)
    http = make_http_client(settings)
    api = ServiceApi(http=http, settings=settings)
    try:
        async with (
            serve(intake_app, settings.intake_port),
            serve(gateway_app, settings.gateway_port) as gateway_url,
            httpx.AsyncClient(base_url=gateway_url, trust_env=False, timeout=10) as gateway,
            Worker(
                client,
                task_queue=settings.task_queue,
                workflows=[AgingSweepWorkflow, SubscriptionDeliveryWorkflow],
                activities=[*AgingActivities(api).all(), *NotificationActivities(api).activities()],
                workflow_runner=workflow_runner(),
            ),
        ):
            yield Stack(
                settings,
                client,
                gateway,
                gateway_app.state.runtime,
                intake_app.state.runtime,
            )
    finally:
        await http.aclose()


@pytest.fixture
async def stack(make_settings: Callable[..., Settings], client: Client) -> AsyncIterator[Stack]:
    settings = make_settings(gateway_port=free_port(), intake_port=free_port(), **FAST_RETRIES)
    async with running_stack(settings, client) as running:
        yield running


async def test_each_owner_gets_one_signed_digest_a_day(stack: Stack, unique_team: str) -> None:
    other_team = f"{unique_team}-other"
    # Stale on any calendar: 60 calendar days without an update; fresh ones are not listed.
    alice_old = await stack.plant(team=unique_team, idle_days=60, assignee="alice", title="a1")
    alice_older = await stack.plant(team=unique_team, idle_days=90, assignee="alice", title="a2")
    await stack.plant(team=unique_team, idle_days=0, assignee="alice", title="fresh")
    unowned = await stack.plant(team=unique_team, idle_days=45, title="nobody's")
    await stack.plant(team=unique_team, idle_days=0, assignee="bob", title="bob's fresh one")
    await stack.plant(team=other_team, idle_days=60, assignee="alice", title="elsewhere")

    receiver = Receiver()
    async with receiver.running():
        partner = await stack.key(team=unique_team)
        response = await stack.gateway.post(
            "/api/v1/subscriptions",
            json={"event_types": ["aging.digest"], "channel": "webhook", "url": receiver.url},
            headers=partner,
        )
        assert response.status_code == 201, response.text
        secret = response.json()["secret"]

        sent = await stack.sweep()
        mine = sorted(e for e in sent if f":{unique_team}/" in e or f":{unique_team}:" in e)
        assert len(mine) == 2, sent
        assert any(e.startswith(f"aging-digest:{other_team}/alice:") for e in sent)
        assert not any("/bob:" in e and unique_team in e for e in sent)

        await eventually(lambda: len(receiver.received) >= 2)
        bodies = {}
        for received in receiver.received:
            event_id = received.headers["idempotency-key"]
            bodies[event_id] = assert_signed(
                received, secret, event_id=event_id, type_="aging.digest"
            )
        assert sorted(bodies) == mine
        digests = {body["data"]["owner"]: body for body in bodies.values()}
        assert set(digests) == {"alice", unique_team}

        alice = digests["alice"]["data"]
        assert alice["owner_kind"] == "assignee"
        assert alice["team"] == unique_team
        assert alice["timezone"] == "Asia/Kolkata"  # the catch-all policy's calendar
        assert alice["stale_business_days"] == 5
        assert [item["request_id"] for item in alice["stale"]] == [alice_older, alice_old]
        assert alice["stale_count"] == 2
        assert alice["open_count"] == 3
        assert sum(alice["buckets"].values()) == 3
        assert alice["truncated"] is False
        assert all(item["idle_business_days"] >= 5 for item in alice["stale"])
        team_digest = digests[unique_team]["data"]
        assert team_digest["owner_kind"] == "team"
        assert [item["request_id"] for item in team_digest["stale"]] == [unowned]
        assert digests["alice"]["id"] == f"aging-digest:{unique_team}/alice:{alice['date']}"

        # Another sweep the same day (a schedule catch-up, a manual run) sends nothing again.
        again = await stack.sweep()
        assert sorted(e for e in again if e in mine) == mine
        await asyncio.sleep(3)
        assert len(receiver.received) == 2
        sid = response.json()["id"]
        deliveries = await stack.gateway.get(
            f"/api/v1/subscriptions/{sid}/deliveries", headers=partner
        )
        assert deliveries.status_code == 200, deliveries.text
        assert len(deliveries.json()["items"]) == 2
        assert json.loads(receiver.received[0].body)["team"] == unique_team


async def test_the_sweep_schedule_is_created_once(client: Client, settings: Settings) -> None:
    assert AGING_SWEEP_SCHEDULE_ID == "aging-daily-sweep"
    schedule_id = f"aging-daily-sweep-test-{uuid.uuid4().hex[:8]}"
    try:
        assert await ensure_aging_sweep_schedule(
            client, task_queue=settings.task_queue, schedule_id=schedule_id
        )
        assert not await ensure_aging_sweep_schedule(
            client, task_queue=settings.task_queue, schedule_id=schedule_id
        )
        described = await client.get_schedule_handle(schedule_id).describe()
        assert described.schedule.spec.intervals[0].every == timedelta(days=1)
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert action.workflow == AGING_SWEEP_WORKFLOW
        assert action.task_queue == settings.task_queue
    finally:
        await client.get_schedule_handle(schedule_id).delete()


def test_the_worker_runs_the_sweep() -> None:
    assert AgingSweepWorkflow in worker_module.WORKFLOWS


def test_digest_ids_are_per_owner_and_day_and_fit_the_gateway() -> None:
    alice = AgingOwner(team="buyer-risk", assignee="alice", stale_count=1)
    team = AgingOwner(team="buyer-risk", assignee=None, stale_count=1)
    assert owner_id("buyer-risk", "alice") == "buyer-risk/alice"
    assert digest_event_id(alice, "2026-11-30") == "aging-digest:buyer-risk/alice:2026-11-30"
    assert digest_event_id(team, "2026-11-30") == "aging-digest:buyer-risk:2026-11-30"
    assert digest_event_id(team, "2026-12-01") != digest_event_id(team, "2026-11-30")
    long = AgingOwner(team="t" * 100, assignee="a" * 200, stale_count=1)
    long_id = digest_event_id(long, "2026-11-30")
    assert len(long_id) <= 200
    assert long_id.startswith("aging-digest:sha256-")
    assert long_id != digest_event_id(
        AgingOwner(team="t" * 100, assignee="b" * 200, stale_count=1), "2026-11-30"
    )
