"""`GET /api/v1/alerts/aging` on each backend: the real gateway asks the real intake (both
in-process), with the gateway's calendars and keys; partner isolation, filters and problems."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from riskdesk.temporal_server import free_port
from services.common.identity import Role
from services.common.migrations import upgrade
from services.common.settings import Settings
from services.gateway.app import create_app
from services.gateway.keys.service import create_key
from services.gateway.proxy import make_http_client
from services.gateway.runtime import GatewayRuntime
from tests.service.test_intake_aging import AgingIntake, running_intake
from tests.service.test_intake_api import assert_problem

ALERTS = "/api/v1/alerts/aging"


@dataclass
class Stack:
    gateway: httpx.AsyncClient
    runtime: GatewayRuntime
    intake: AgingIntake

    async def key(self, *, team: str, role: Role = Role.PARTNER) -> dict[str, str]:
        async with self.runtime.sessionmaker() as session:
            _key, plaintext = await create_key(session, team=team, role=role, name="aging test")
            await session.commit()
        return {"Authorization": f"Bearer {plaintext}"}

    async def alerts(self, headers: dict[str, str], **params: Any) -> dict[str, Any]:
        response = await self.gateway.get(ALERTS, params=params, headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
async def stack(
    settings: Settings, identity_headers: Callable[..., dict[str, str]]
) -> AsyncIterator[Stack]:
    await asyncio.to_thread(
        upgrade, service="gateway", database_url=settings.database_url_of("gateway")
    )
    async with running_intake(settings, identity_headers) as intake:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            runtime: GatewayRuntime = app.state.runtime
            # The gateway reaches this in-process intake whatever URL it builds.
            original = runtime.http
            transport = httpx.ASGITransport(app=intake.app)
            async with (
                httpx.AsyncClient(transport=transport) as to_intake,
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://gateway"
                ) as client,
            ):
                runtime.http = to_intake
                try:
                    yield Stack(client, runtime, intake)
                finally:
                    runtime.http = original


async def seed(stack: Stack, team: str, other: str) -> dict[str, int]:
    now = datetime.now(UTC)
    plant = stack.intake.seed
    return {
        "young": await plant(team=team, days_old=1, at=now, assignee="alice"),
        "stale": await plant(team=team, days_old=9, idle_days=6, at=now, assignee="alice"),
        "old": await plant(team=team, days_old=40, at=now),
        "done": await plant(team=team, days_old=40, at=now, status="closed"),
        "foreign": await plant(team=other, days_old=20, at=now, assignee="alice"),
    }


async def test_partners_see_their_team_and_staff_every_team(stack: Stack, unique_team: str) -> None:
    other = f"{unique_team}-other"
    ids = await seed(stack, unique_team, other)
    partner = await stack.key(team=unique_team)

    own = await stack.alerts(partner, calendar_id="24x7")
    assert own["calendar_id"] == "24x7"
    assert own["timezone"] == "UTC"
    assert own["stale_business_days"] == 5
    assert own["open_count"] == 3
    assert own["buckets"] == {"0-2": 1, "3-7": 0, "8-14": 1, "15-30": 0, "30+": 1}
    assert {(g["owner"], g["bucket"], g["count"]) for g in own["groups"]} == {
        ("alice", "0-2", 1),
        ("alice", "8-14", 1),
        (None, "30+", 1),
    }
    assert [(s["id"], s["owner"], s["age_business_days"]) for s in own["stale"]] == [
        (ids["old"], None, 40),
        (ids["stale"], "alice", 9),
    ]
    assert own["stale_by_owner"] == [
        {"team": unique_team, "owner": None, "count": 1},
        {"team": unique_team, "owner": "alice", "count": 1},
    ]
    # Another team's filter shows nothing of that team.
    foreign = await stack.alerts(partner, calendar_id="24x7", team=other)
    assert (foreign["open_count"], foreign["stale"]) == (0, [])

    analyst = await stack.key(team="risk-mining", role=Role.ANALYST)
    everyone = await stack.alerts(analyst, calendar_id="24x7", limit=1000)
    assert {unique_team, other} <= {g["team"] for g in everyone["groups"]}
    theirs = await stack.alerts(analyst, calendar_id="24x7", team=other)
    assert theirs["open_count"] == 1
    assert theirs["groups"] == [{"team": other, "owner": "alice", "bucket": "15-30", "count": 1}]
    assert [s["id"] for s in theirs["stale"]] == [ids["foreign"]]


async def test_owner_bucket_and_threshold_filters(stack: Stack, unique_team: str) -> None:
    ids = await seed(stack, unique_team, f"{unique_team}-other")
    analyst = await stack.key(team="risk-mining", role=Role.ANALYST)
    common = {"calendar_id": "24x7", "team": unique_team}

    alice = await stack.alerts(analyst, owner="alice", **common)
    assert alice["open_count"] == 2
    assert [s["id"] for s in alice["stale"]] == [ids["stale"]]
    oldest = await stack.alerts(analyst, bucket="30+", **common)
    assert oldest["open_count"] == 1
    assert [s["id"] for s in oldest["stale"]] == [ids["old"]]
    patient = await stack.alerts(analyst, stale_days=7, **common)
    assert [s["id"] for s in patient["stale"]] == [ids["old"]]
    one = await stack.alerts(analyst, limit=1, **common)
    assert (len(one["stale"]), one["stale_count"], one["truncated"]) == (1, 2, True)


async def test_the_default_calendar_is_the_catch_all_policy_s(
    stack: Stack, unique_team: str
) -> None:
    partner = await stack.key(team=unique_team)
    report = await stack.alerts(partner)
    assert report["calendar_id"] == "india"
    assert report["timezone"] == "Asia/Kolkata"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"bucket": "31+"}, "query.bucket"),
        ({"stale_days": 0}, "query.stale_days"),
        ({"stale_days": 366}, "query.stale_days"),
        ({"limit": 0}, "query.limit"),
        ({"limit": 1001}, "query.limit"),
        ({"owner": "a\u0001b"}, "query.owner"),
        ({"team": ""}, "query.team"),
        ({"calendar_id": "atlantis"}, "query.calendar_id"),
    ],
)
async def test_bad_filters_are_422_problems(
    stack: Stack, unique_team: str, params: dict[str, Any], field: str
) -> None:
    partner = await stack.key(team=unique_team)
    response = await stack.gateway.get(ALERTS, params=params, headers=partner)
    problem = assert_problem(response, 422)
    assert field in {error["field"] for error in problem["errors"]}, problem


async def test_a_key_is_required_and_alerts_are_not_forwarded(
    stack: Stack, unique_team: str
) -> None:
    assert_problem(await stack.gateway.get(ALERTS), 401)
    assert_problem(
        await stack.gateway.get(ALERTS, headers={"Authorization": "Bearer rk_nope_nope"}), 401
    )
    partner = await stack.key(team=unique_team)
    # Only the gateway serves `alerts`: nothing else under it exists or reaches a service.
    assert_problem(await stack.gateway.get("/api/v1/alerts/other", headers=partner), 404)
    assert_problem(await stack.gateway.post(ALERTS, headers=partner), 404)


async def test_intake_down_is_a_502_problem(stack: Stack, unique_team: str) -> None:
    partner = await stack.key(team=unique_team)
    stack.runtime.http = make_http_client(stack.runtime.settings)
    saved = dict(stack.runtime.upstreams)
    stack.runtime.upstreams["intake"] = f"http://127.0.0.1:{free_port()}"
    try:
        response = await stack.gateway.get(ALERTS, headers=partner)
    finally:
        await stack.runtime.http.aclose()
        stack.runtime.upstreams.update(saved)
    assert_problem(response, 502, "service-unavailable")
