"""Notification delivery end to end on real parts: the gateway under uvicorn, its outbox, the real
Temporal dev server, a worker running `SubscriptionDeliveryWorkflow` and its activities, a real
webhook receiver (Starlette under uvicorn) and a real SMTP server (aiosmtpd).
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from typing import Any

import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio.client import Client
from temporalio.worker import Worker

from riskdesk.temporal_server import free_port
from services.common.db import make_engine, make_sessionmaker, utcnow
from services.common.identity import Role
from services.common.migrations import upgrade
from services.common.settings import Settings
from services.common.temporal import connect_temporal
from services.common.webhook_signature import verify
from services.gateway.app import create_app
from services.gateway.keys.service import create_key
from services.gateway.notifications.models import Subscription
from services.gateway.notifications.service import retry_policy_of
from services.gateway.runtime import GatewayRuntime
from workflows.contracts import (
    DELIVER_SIGNAL,
    DeliverSignal,
    SubscriptionDeliveryInput,
)
from workflows.notification_delivery import NotificationActivities, SubscriptionDeliveryWorkflow
from workflows.service_api import ServiceApi, make_http_client

FAST_RETRIES: dict[str, Any] = {
    "delivery_initial_interval_seconds": 0.2,
    "delivery_backoff_coefficient": 2.0,
    "delivery_max_interval_seconds": 1.0,
    "delivery_max_attempts": 100,
    "delivery_give_up_seconds": 120.0,
    "webhook_timeout_seconds": 2.0,
    "service_timeout_seconds": 5.0,
    "delivery_idle_seconds": 5.0,
}


@asynccontextmanager
async def serve(app: Any, port: int) -> AsyncIterator[str]:
    """Run an ASGI app under uvicorn on `port` in this event loop; yields its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """A webhook receiver that records every request and answers from a script (then 200)."""

    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    always: int = 200

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            self.received.append(
                Received(dict(request.headers), await request.body(), time.monotonic())
            )
            status = self.script.pop(0) if self.script else self.always
            return Response(status_code=status)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def running(self) -> Any:
        return serve(self.app(), self.port)


@dataclass
class Stack:
    settings: Settings
    gateway: httpx.AsyncClient
    runtime: GatewayRuntime
    api: ServiceApi

    async def key(self, *, team: str, role: Role = Role.PARTNER) -> dict[str, str]:
        async with self.runtime.sessionmaker() as session:
            _key, plaintext = await create_key(session, team=team, role=role, name="test")
            await session.commit()
        return {"Authorization": f"Bearer {plaintext}"}

    async def subscribe(self, headers: dict[str, str], **body: Any) -> dict[str, Any]:
        response = await self.gateway.post("/api/v1/subscriptions", json=body, headers=headers)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def emit(self, team: str, *, event_id: str, type_: str = "sla.warning") -> None:
        response = await self.gateway.post(
            "/internal/events",
            json={
                "event_id": event_id,
                "type": type_,
                "team": team,
                "occurred_at": datetime.now(UTC).isoformat(),
                "subject": {"kind": "request", "id": "42"},
                "data": {"request_id": 42, "clock": "resolution", "threshold": 75},
            },
            headers=self.api.headers(),
        )
        assert response.status_code in (200, 202), response.text

    async def deliveries(self, headers: dict[str, str], sid: int) -> list[dict[str, Any]]:
        response = await self.gateway.get(
            f"/api/v1/subscriptions/{sid}/deliveries", headers=headers
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool], *, within: float = 30
) -> None:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


StartStack = Callable[..., Any]


@pytest.fixture
async def client(temporal_address: str) -> Client:
    return await connect_temporal(temporal_address, "default")


@pytest.fixture
def start_stack(make_settings: Callable[..., Settings], client: Client) -> StartStack:
    """Gateway (uvicorn) + worker on the test task queue, with settings overrides."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Stack]:
        settings = make_settings(gateway_port=free_port(), **{**FAST_RETRIES, **overrides})
        await asyncio.to_thread(
            upgrade, service="gateway", database_url=settings.database_url_of("gateway")
        )
        await _offset_subscription_ids(settings)
        app = create_app(settings)
        http = make_http_client(settings)
        api = ServiceApi(http=http, settings=settings)
        try:
            async with (
                serve(app, settings.gateway_port) as url,
                httpx.AsyncClient(base_url=url, trust_env=False, timeout=10) as gateway,
                Worker(
                    client,
                    task_queue=settings.task_queue,
                    workflows=[SubscriptionDeliveryWorkflow],
                    activities=NotificationActivities(api).activities(),
                ),
            ):
                yield Stack(settings=settings, gateway=gateway, runtime=app.state.runtime, api=api)
        finally:
            await http.aclose()

    return start


async def _offset_subscription_ids(settings: Settings) -> None:
    """Start this test's subscription ids at a random offset.

    Each test has its own SQLite file, so ids would restart at 1, and `subscription-1` of the
    previous test may still be running (idle) on that test's task queue: the new signal would go
    to it. A placeholder row with a random id makes the next ids unique to this test.
    """
    engine = make_engine(settings.database_url_of("gateway"), schema="gateway")
    try:
        async with make_sessionmaker(engine)() as session:
            session.add(
                Subscription(
                    id=secrets.randbelow(1_000_000_000) + 1_000_000,
                    team="placeholder",
                    event_types=[],
                    channel="webhook",
                    url="https://placeholder.invalid/",
                    secret="placeholder",
                    created_at=utcnow(),
                    deactivated_at=utcnow(),
                )
            )
            await session.commit()
    finally:
        await engine.dispose()


def assert_signed(request: Received, secret: str, *, event_id: str, type_: str) -> dict[str, Any]:
    import json

    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == event_id
    assert request.headers["x-riskdesk-event"] == type_
    assert verify(secret, request.headers["x-riskdesk-signature"], request.body)
    # A wrong secret or a changed body fails verification.
    assert not verify(secret + "x", request.headers["x-riskdesk-signature"], request.body)
    assert not verify(secret, request.headers["x-riskdesk-signature"], request.body + b" ")
    body: dict[str, Any] = json.loads(request.body)
    assert body["id"] == event_id
    assert body["type"] == type_
    return body


async def test_event_is_delivered_once_signed_even_when_posted_twice(
    start_stack: StartStack, unique_team: str
) -> None:
    receiver = Receiver()
    async with receiver.running(), start_stack() as stack:
        partner = await stack.key(team=unique_team)
        sub = await stack.subscribe(
            partner, event_types=["sla.warning"], channel="webhook", url=receiver.url
        )
        event_id = f"request-42:resolution:warning:75:{uuid.uuid4().hex[:6]}"
        await stack.emit(unique_team, event_id=event_id)
        await stack.emit(unique_team, event_id=event_id)  # a retried activity posting again
        await eventually(lambda: len(receiver.received) >= 1)
        await eventually(lambda: _statuses(stack, partner, sub["id"], ["delivered"]), within=10)
        await asyncio.sleep(1.0)  # room for a (wrong) second delivery to show up
        assert len(receiver.received) == 1
        body = assert_signed(
            receiver.received[0], sub["secret"], event_id=event_id, type_="sla.warning"
        )
        assert body["team"] == unique_team
        assert body["subject"] == {"kind": "request", "id": "42"}
        assert body["data"]["threshold"] == 75
        (item,) = await stack.deliveries(partner, sub["id"])
        assert [a["outcome"] for a in item["attempts"]] == ["delivered"]
        assert item["attempts"][0]["status_code"] == 200


async def _statuses(stack: Stack, headers: dict[str, str], sid: int, expected: list[str]) -> bool:
    items = await stack.deliveries(headers, sid)
    return [item["status"] for item in reversed(items)] == expected


async def test_receiver_failing_twice_gets_it_on_the_third_attempt(
    start_stack: StartStack, unique_team: str
) -> None:
    receiver = Receiver(script=[500, 500])
    # The server schedules retries on a timer of about a second: a 1 s start shows the backoff.
    async with (
        receiver.running(),
        start_stack(
            delivery_initial_interval_seconds=1.0, delivery_max_interval_seconds=10.0
        ) as stack,
    ):
        partner = await stack.key(team=unique_team)
        sub = await stack.subscribe(
            partner, event_types=["sla.breached"], channel="webhook", url=receiver.url
        )
        event_id = f"request-42:resolution:breached:{uuid.uuid4().hex[:6]}"
        await stack.emit(unique_team, event_id=event_id, type_="sla.breached")
        await eventually(lambda: _statuses(stack, partner, sub["id"], ["delivered"]))
        assert len(receiver.received) == 3
        for request in receiver.received:
            # Every retry carries the same idempotency key and a fresh valid signature.
            assert_signed(request, sub["secret"], event_id=event_id, type_="sla.breached")
        (item,) = await stack.deliveries(partner, sub["id"])
        assert [(a["outcome"], a["status_code"]) for a in item["attempts"]] == [
            ("failed", 500),
            ("failed", 500),
            ("delivered", 200),
        ]
        assert item["attempt_count"] == 3
        # Backoff: the gaps between attempts grow.
        gaps = [b.at - a.at for a, b in zip(receiver.received, receiver.received[1:], strict=False)]
        assert gaps[0] >= 0.9
        assert gaps[1] >= 1.8


async def test_receiver_down_then_up_gets_everything_in_order(
    start_stack: StartStack, unique_team: str
) -> None:
    receiver = Receiver()
    async with start_stack() as stack:
        partner = await stack.key(team=unique_team)
        sub = await stack.subscribe(
            partner,
            event_types=["sla.warning", "sla.breached"],
            channel="webhook",
            url=receiver.url,
        )
        first = f"request-42:resolution:warning:90:{uuid.uuid4().hex[:6]}"
        second = f"request-42:resolution:breached:{uuid.uuid4().hex[:6]}"
        await stack.emit(unique_team, event_id=first)
        await stack.emit(unique_team, event_id=second, type_="sla.breached")

        async def failed_a_few_times() -> bool:
            items = await stack.deliveries(partner, sub["id"])
            return any(item["attempt_count"] >= 2 for item in items)

        await eventually(failed_a_few_times)
        items = await stack.deliveries(partner, sub["id"])
        assert {item["status"] for item in items} == {"pending"}
        # The second waits behind the first: nothing was tried for it while the first failed.
        assert next(i for i in items if i["event_id"] == second)["attempt_count"] == 0
        first_error = next(i for i in items if i["event_id"] == first)["attempts"][0]
        assert first_error["status_code"] is None
        assert "Connect" in first_error["error"]

        async with receiver.running():
            await eventually(
                lambda: _statuses(stack, partner, sub["id"], ["delivered", "delivered"])
            )
            await asyncio.sleep(0.5)
        assert [r.headers["idempotency-key"] for r in receiver.received] == [first, second]


async def test_receiver_that_never_recovers_ends_dead_and_replay_delivers(
    start_stack: StartStack, unique_team: str
) -> None:
    receiver = Receiver(always=503)
    async with receiver.running(), start_stack(delivery_max_attempts=3) as stack:
        partner = await stack.key(team=unique_team)
        admin = await stack.key(team="risk-mining", role=Role.ADMIN)
        sub = await stack.subscribe(
            partner, event_types=["sla.warning"], channel="webhook", url=receiver.url
        )
        doomed = f"request-42:first_response:warning:50:{uuid.uuid4().hex[:6]}"
        await stack.emit(unique_team, event_id=doomed)
        await eventually(lambda: _statuses(stack, partner, sub["id"], ["dead"]))
        (dead,) = await stack.deliveries(partner, sub["id"])
        assert dead["attempt_count"] == 3
        assert len(receiver.received) == 3
        assert dead["dead_at"] is not None
        assert "503" in dead["last_error"]

        # Later events still flow (the dead one no longer blocks the queue) once it recovers.
        receiver.always = 200
        later = f"request-42:first_response:warning:75:{uuid.uuid4().hex[:6]}"
        await stack.emit(unique_team, event_id=later)
        await eventually(lambda: _statuses(stack, partner, sub["id"], ["dead", "delivered"]))

        replay = await stack.gateway.post(
            f"/api/v1/subscriptions/{sub['id']}/deliveries/{dead['id']}/replay", headers=admin
        )
        assert replay.status_code == 202, replay.text
        await eventually(lambda: _statuses(stack, partner, sub["id"], ["delivered", "delivered"]))
        keys = [r.headers["idempotency-key"] for r in receiver.received]
        assert keys == [doomed, doomed, doomed, later, doomed]
        (replayed,) = [
            i for i in await stack.deliveries(partner, sub["id"]) if i["id"] == dead["id"]
        ]
        assert replayed["replays"] == 1
        assert replayed["attempt_count"] == 4


@dataclass
class Mailbox:
    messages: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


async def test_email_subscription_arrives_at_the_smtp_server(
    start_stack: StartStack, unique_team: str
) -> None:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        async with start_stack(
            smtp_host="127.0.0.1", smtp_port=port, smtp_from="alerts@riskdesk.test"
        ) as stack:
            analyst = await stack.key(team="risk-mining", role=Role.ANALYST)
            sub = await stack.subscribe(
                analyst,
                team=unique_team,
                event_types=["sla.breached"],
                channel="email",
                email="owner@example.com",
            )
            event_id = f"request-42:resolution:breached:{uuid.uuid4().hex[:6]}"
            await stack.emit(unique_team, event_id=event_id, type_="sla.breached")
            await eventually(lambda: _statuses(stack, analyst, sub["id"], ["delivered"]))
    finally:
        controller.stop()
    (envelope,) = mailbox.messages
    assert envelope.mail_from == "alerts@riskdesk.test"
    assert envelope.rcpt_tos == ["owner@example.com"]
    message = message_from_bytes(envelope.content)
    assert message["Subject"] == f"[riskdesk] sla.breached: request 42 ({unique_team})"
    text = message.get_payload(decode=True).decode()
    assert f"Event id: {event_id}" in text
    assert "threshold: 75" in text
    assert sub["secret"] not in envelope.content.decode()


async def test_smtp_server_down_retries_then_dead(
    start_stack: StartStack, unique_team: str
) -> None:
    async with start_stack(smtp_port=free_port(), delivery_max_attempts=2) as stack:
        partner = await stack.key(team=unique_team)
        sub = await stack.subscribe(
            partner, event_types=["aging.digest"], channel="email", email="me@example.com"
        )
        await stack.emit(unique_team, event_id=f"digest-{uuid.uuid4().hex}", type_="aging.digest")
        await eventually(lambda: _statuses(stack, partner, sub["id"], ["dead"]))
        (dead,) = await stack.deliveries(partner, sub["id"])
        assert [a["outcome"] for a in dead["attempts"]] == ["failed", "failed"]
        assert (
            "Connection" in dead["attempts"][0]["error"]
            or "refused" in dead["attempts"][0]["error"]
        )


async def test_deactivated_subscription_gets_nothing_queued_before(
    start_stack: StartStack, unique_team: str
) -> None:
    receiver = Receiver()
    async with start_stack() as stack:  # receiver down: the delivery stays queued
        partner = await stack.key(team=unique_team)
        sub = await stack.subscribe(
            partner, event_types=["sla.warning"], channel="webhook", url=receiver.url
        )
        await stack.emit(unique_team, event_id=f"w-{uuid.uuid4().hex}")

        async def tried() -> bool:
            return (await stack.deliveries(partner, sub["id"]))[0]["attempt_count"] >= 1

        await eventually(tried)
        await stack.gateway.delete(f"/api/v1/subscriptions/{sub['id']}", headers=partner)
        async with receiver.running():
            await eventually(lambda: _statuses(stack, partner, sub["id"], ["dead"]))
        assert receiver.received == []
        (dead,) = await stack.deliveries(partner, sub["id"])
        assert dead["last_error"] == "subscription deactivated"


async def test_repeated_and_stale_signals_never_send_twice_even_in_a_new_run(
    start_stack: StartStack, unique_team: str, client: Client
) -> None:
    receiver = Receiver()
    async with receiver.running(), start_stack(delivery_idle_seconds=1.0) as stack:
        partner = await stack.key(team=unique_team)
        sub = await stack.subscribe(
            partner, event_types=["request.status_changed"], channel="webhook", url=receiver.url
        )
        await stack.emit(unique_team, event_id=str(uuid.uuid4()), type_="request.status_changed")
        await eventually(lambda: _statuses(stack, partner, sub["id"], ["delivered"]))
        (item,) = await stack.deliveries(partner, sub["id"])
        handle = client.get_workflow_handle(f"subscription-{sub['id']}")
        # Same run: a repeated signal is ignored; a stale generation sends nothing.
        await handle.signal(DELIVER_SIGNAL, DeliverSignal(delivery_id=item["id"]))
        await handle.signal(DELIVER_SIGNAL, DeliverSignal(delivery_id=item["id"], generation=5))
        # The run ends once idle; a late redelivery starts a new run, which forgets the ids it
        # saw, and still sends nothing: the delivery is no longer pending.
        assert await asyncio.wait_for(handle.result(), timeout=30) == {"delivered": 2, "dead": 0}
        new_run = await client.start_workflow(
            SubscriptionDeliveryWorkflow.run,
            SubscriptionDeliveryInput(
                subscription_id=sub["id"], policy=retry_policy_of(stack.settings)
            ),
            id=f"subscription-{sub['id']}",
            task_queue=stack.settings.task_queue,
            start_signal=DELIVER_SIGNAL,
            start_signal_args=[DeliverSignal(delivery_id=item["id"])],
        )
        assert await asyncio.wait_for(new_run.result(), timeout=30) == {"delivered": 1, "dead": 0}
        assert len(receiver.received) == 1
        (after,) = await stack.deliveries(partner, sub["id"])
        assert after["attempt_count"] == 1
