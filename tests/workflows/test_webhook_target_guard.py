"""The SSRF guard at delivery time, on real parts: a target that became private since the
subscription was made is refused before anything is sent and dead-lettered with the reason; a
vetted target is reached at the very address that was checked."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from riskdesk.temporal_server import free_port
from services.common.migrations import upgrade
from services.common.settings import Settings
from services.common.temporal import connect_temporal
from services.common.webhook_target import WebhookTarget
from services.gateway.app import create_app
from tests.workflows.test_notification_delivery import (
    FAST_RETRIES,
    Receiver,
    Stack,
    _offset_subscription_ids,
    _statuses,
    eventually,
    serve,
)
from workflows.notification_delivery import NotificationActivities, SubscriptionDeliveryWorkflow
from workflows.service_api import ServiceApi, make_http_client


@pytest.fixture
async def client(temporal_address: str) -> Client:
    return await connect_temporal(temporal_address, "default")


@asynccontextmanager
async def gateway_and_strict_worker(
    make_settings: Callable[..., Settings], client: Client
) -> AsyncIterator[Stack]:
    """A gateway that accepted local targets (as DNS pointing a public name at 127.0.0.1 would
    let through) and a worker running with the production rule."""
    settings = make_settings(gateway_port=free_port(), **FAST_RETRIES)
    strict = settings.model_copy(update={"webhook_allow_private_targets": False})
    await asyncio.to_thread(
        upgrade, service="gateway", database_url=settings.database_url_of("gateway")
    )
    await _offset_subscription_ids(settings)
    app = create_app(settings)
    http = make_http_client(strict)
    api = ServiceApi(http=http, settings=strict)
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


async def test_a_target_turned_private_is_refused_and_dead_lettered_without_retries(
    make_settings: Callable[..., Settings], client: Client, unique_team: str
) -> None:
    receiver = Receiver()
    async with receiver.running(), gateway_and_strict_worker(make_settings, client) as stack:
        partner = await stack.key(team=unique_team)
        sub = await stack.subscribe(
            partner, event_types=["sla.warning"], channel="webhook", url=receiver.url
        )
        await stack.emit(unique_team, event_id=f"guard:{sub['id']}:1")
        await eventually(lambda: _statuses(stack, partner, sub["id"], ["dead"]), within=20)
        assert receiver.received == []  # nothing was sent
        (item,) = await stack.deliveries(partner, sub["id"])
        assert "webhook target refused" in item["last_error"]
        assert "must use https" in item["last_error"]
        # Refused once, not retried: a forbidden target stays forbidden.
        assert [a["outcome"] for a in item["attempts"]] == ["failed"]
        assert "webhook target refused" in item["attempts"][0]["error"]

        https_sub = await stack.subscribe(
            partner, event_types=["sla.breached"], channel="webhook", url="https://127.0.0.1:9/h"
        )
        await stack.emit(unique_team, event_id=f"guard:{https_sub['id']}:2", type_="sla.breached")
        await eventually(lambda: _statuses(stack, partner, https_sub["id"], ["dead"]), within=20)
        (item,) = await stack.deliveries(partner, https_sub["id"])
        assert "must not point at a loopback address" in item["last_error"]


async def test_a_vetted_target_is_reached_at_the_checked_address_with_its_own_host(
    make_settings: Callable[..., Settings],
) -> None:
    receiver = Receiver()
    settings = make_settings()
    http = make_http_client(settings)
    activities = NotificationActivities(ServiceApi(http=http, settings=settings))
    # A name that resolves nowhere: reaching the receiver proves the checked address was used.
    name = "receiver.riskdesk-test.invalid"
    target = WebhookTarget(
        url=f"http://{name}:{receiver.port}/hook",
        host=name,
        addresses=[ipaddress.ip_address("127.0.0.1")],
    )
    event: dict[str, Any] = {
        "event_id": "pinned-1",
        "type": "sla.warning",
        "team": "t",
        "occurred_at": "2026-11-28T00:00:00+00:00",
        "subject": {"kind": "request", "id": "1"},
        "data": {},
    }
    try:
        async with receiver.running():
            status = await activities._post_webhook(
                {"secret": "whsec_x", "url": target.url}, event, target
            )
    finally:
        await http.aclose()
    assert status == 200
    (request,) = receiver.received
    assert request.headers["host"] == f"{name}:{receiver.port}"
    assert request.headers["idempotency-key"] == "pinned-1"
