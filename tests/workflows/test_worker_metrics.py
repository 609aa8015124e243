"""The worker's metrics: its counters move when real activities run, and both endpoints serve.

Notifications go through the real stack of the delivery tests (gateway under uvicorn, a worker on
the real Temporal dev server, a webhook receiver that fails once); SLA breaches through the real
in-process gateway, as the SLA activity tests do; the endpoints through `run_worker` itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import httpx
import pytest

from riskdesk.temporal_server import free_port
from services.common.settings import Settings
from tests.service.test_gateway_calendars import Gateway
from tests.service.test_gateway_calendars import gateway as gateway
from tests.workflows.test_notification_delivery import (
    Receiver,
    StartStack,
    eventually,
)
from tests.workflows.test_notification_delivery import client as client
from tests.workflows.test_notification_delivery import start_stack as start_stack
from workflows.contracts import PublishSlaEventInput
from workflows.metrics import WORKER_REGISTRY, serve_worker_registry, temporal_runtime
from workflows.request_lifecycle import SlaActivities
from workflows.service_api import ServiceApi
from workflows.worker import run_worker


def notifications(channel: str, outcome: str) -> float:
    value = WORKER_REGISTRY.get_sample_value(
        "riskdesk_notifications_total", {"channel": channel, "outcome": outcome}
    )
    return value or 0.0


def breaches() -> float:
    return WORKER_REGISTRY.get_sample_value("riskdesk_sla_breaches_total") or 0.0


async def test_a_failed_then_delivered_webhook_counts_one_of_each(
    start_stack: StartStack, unique_team: str
) -> None:
    failed, delivered = notifications("webhook", "failed"), notifications("webhook", "delivered")
    receiver = Receiver(script=[500])
    async with (
        receiver.running(),
        start_stack(delivery_initial_interval_seconds=0.5) as stack,
    ):
        partner = await stack.key(team=unique_team)
        await stack.subscribe(
            partner, event_types=["sla.warning"], channel="webhook", url=receiver.url
        )
        await stack.emit(unique_team, event_id=f"metrics:{uuid.uuid4().hex}")
        await eventually(lambda: notifications("webhook", "delivered") == delivered + 1)
        assert notifications("webhook", "failed") == failed + 1
        assert len(receiver.received) == 2


@pytest.fixture
async def sla_activities(gateway: Gateway, settings: Settings) -> AsyncIterator[SlaActivities]:
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(transport=transport) as http:
        yield SlaActivities(ServiceApi(http=http, settings=settings))


def sla_event(type_: str) -> PublishSlaEventInput:
    now = datetime.now(UTC)
    kind = "breached" if type_ == "sla.breached" else "warning:75"
    return PublishSlaEventInput(
        event_id=f"request-1:resolution:{kind}:{uuid.uuid4().hex}",
        type=type_,
        team="buyer-risk",
        occurred_at=now,
        request_id=1,
        data={"request_id": 1, "clock": "resolution", "due_at": now.isoformat()},
    )


async def test_a_breach_counts_once_even_when_the_activity_publishes_it_again(
    sla_activities: SlaActivities,
) -> None:
    before = breaches()
    breach = sla_event("sla.breached")
    await sla_activities.publish_sla_event(breach)
    assert breaches() == before + 1
    await sla_activities.publish_sla_event(breach)  # a retried activity: the gateway says 200
    assert breaches() == before + 1
    await sla_activities.publish_sla_event(sla_event("sla.warning"))
    assert breaches() == before + 1


def _port_pair() -> int:
    # Both the SDK's port and the next one must be free.
    for _ in range(50):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports")


async def _scrape(url: str, needle: str) -> str:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        found = ""

        async def has_it() -> bool:
            nonlocal found
            with contextlib.suppress(httpx.HTTPError):
                found = (await http.get(url)).text
            return needle in found

        await eventually(has_it, within=20)
        return found


async def test_run_worker_serves_the_sdk_metrics_and_the_riskdesk_counters(
    make_settings: Callable[..., Settings],
) -> None:
    port = _port_pair()
    settings = make_settings(worker_metrics_port=port)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop))
    try:
        sdk = await _scrape(f"http://127.0.0.1:{port}/metrics", "riskdesk_worker_")
        assert not [line for line in sdk.splitlines() if line.startswith("temporal_")]
        ours = await _scrape(f"http://127.0.0.1:{port + 1}/metrics", "riskdesk_sla_breaches_total")
        assert "# TYPE riskdesk_notifications_total counter" in ours
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=30)


async def test_worker_metrics_port_zero_serves_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    assert temporal_runtime(make_settings(worker_metrics_port=0)) is None


async def test_a_taken_metrics_port_leaves_the_worker_running_without_it(
    make_settings: Callable[..., Settings],
) -> None:
    # Two workers on one host with the default port: the second must still start.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert temporal_runtime(make_settings(worker_metrics_port=port)) is None
        serve_worker_registry(make_settings(worker_metrics_port=port - 1))  # logs, no raise
