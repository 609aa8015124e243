"""The SLA activities against the real gateway (in-process): policy resolution and events.

They are called directly, as the worker would run them, through a ServiceApi whose client reaches
the gateway app in-process; the gateway checks the worker's system identity like any call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.common.business_time import parse_business_duration
from services.common.settings import Settings
from tests.service.test_gateway_calendars import Gateway
from tests.service.test_gateway_calendars import gateway as gateway
from workflows.contracts import PublishSlaEventInput, ResolveSlaPolicyInput
from workflows.request_lifecycle import SlaActivities
from workflows.service_api import ServiceApi, ServiceCallError
from workflows.sla_clock import RESOLUTION, Clock


@pytest.fixture
async def activities(gateway: Gateway, settings: Settings) -> AsyncIterator[SlaActivities]:
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(transport=transport) as http:
        yield SlaActivities(ServiceApi(http=http, settings=settings))


async def test_the_gateway_resolves_a_policy_the_clocks_can_run_on(
    activities: SlaActivities,
) -> None:
    policy = await activities.resolve_sla_policy(
        ResolveSlaPolicyInput(request_id=1, request_type="deep_dive", priority="P1")
    )
    assert policy.policy_id == "p1-high"
    assert parse_business_duration(policy.resolution_target) == timedelta(hours=24)
    assert policy.warning_thresholds == [50, 75, 90]
    clock = Clock.start(
        name=RESOLUTION,
        target=parse_business_duration(policy.resolution_target),
        calendar=policy.calendar,
        thresholds=policy.warning_thresholds,
        at=datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
    )
    assert clock.due_at() is not None

    with pytest.raises(ServiceCallError) as refused:
        await activities.resolve_sla_policy(
            ResolveSlaPolicyInput(request_id=1, request_type="deep_dive", priority="P9")
        )
    assert refused.value.non_retryable


async def test_the_gateway_takes_published_events_and_ignores_a_repeat(
    activities: SlaActivities,
) -> None:
    event = PublishSlaEventInput(
        event_id=f"request-1:resolution:breached:{datetime.now(UTC).timestamp()}",
        type="sla.breached",
        team="buyer-risk",
        occurred_at=datetime.now(UTC),
        request_id=1,
        data={
            "request_id": 1,
            "clock": "resolution",
            "due_at": datetime.now(UTC).isoformat(),
            "breached_at": datetime.now(UTC).isoformat(),
        },
    )
    await activities.publish_sla_event(event)
    await activities.publish_sla_event(event)
