"""The weekly report through the real gateway, with the real intake, escalation and SOP apps
(in-process) on each backend: values by hand, last week and change, goals and RAG, notes, the
three formats, a stored week unchanged by later data, the live current week, access and 422s,
and the internal build that publishes `report.weekly`; then the workflow on the dev server."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio.client import Client
from temporalio.worker import Worker

from riskdesk.temporal_server import free_port
from services.common.identity import IDENTITY_HEADER, Identity, Role, sign_identity
from services.common.migrations import upgrade
from services.common.service_app import ServiceRuntime
from services.common.settings import Settings
from services.escalation.app import create_app as create_escalation
from services.gateway.app import create_app as create_gateway
from services.gateway.keys.service import create_key
from services.gateway.notifications.models import NotificationEvent
from services.gateway.runtime import GatewayRuntime
from services.intake.app import create_app as create_intake
from services.intake.models import Request
from services.sop.app import create_app as create_sop
from tests.service.sop_stack import migrate_sop
from tests.service.test_escalation_api import migrate as migrate_escalation
from tests.service.test_escalation_api import serve
from tests.service.test_escalation_stats import escalation
from tests.service.test_intake_api import assert_problem
from tests.service.test_intake_api import migrate as migrate_intake
from workflows.sandbox import workflow_runner
from workflows.service_api import ServiceApi, make_http_client
from workflows.weekly_report import (
    WeeklyReportActivities,
    WeeklyReportInput,
    WeeklyReportWorkflow,
    week_just_ended,
)

REPORT = "/api/v1/reports/weekly"
WEEK, LAST_WEEK = "2019-W20", "2019-W19"
MONDAY = datetime(2019, 5, 13, tzinfo=UTC)
DAY = timedelta(days=1)


class RoutingTransport(httpx.AsyncBaseTransport):
    """Sends each upstream URL's calls to that service's in-process app."""

    def __init__(self, routes: dict[str, httpx.AsyncBaseTransport]) -> None:
        self.routes = routes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.routes[request.url.netloc.decode()].handle_async_request(request)


@dataclass
class Stack:
    gateway: httpx.AsyncClient
    runtime: GatewayRuntime
    intake: ServiceRuntime
    escalation: ServiceRuntime
    app: Any
    settings: Settings
    upstream: httpx.AsyncClient

    async def key(self, *, role: Role, team: str = "risk-mining") -> dict[str, str]:
        async with self.runtime.sessionmaker() as session:
            _key, plaintext = await create_key(session, team=team, role=role, name=f"{role} key")
            await session.commit()
        return {"Authorization": f"Bearer {plaintext}"}

    async def file(self, team: str, created_at: datetime, **fields: Any) -> None:
        async with self.intake.sessionmaker() as session:
            values: dict[str, Any] = {
                "team": team,
                "request_type": "deep_dive",
                "title": "t",
                "description": "",
                "priority": "P2",
                "status": "in_progress",
                "external_refs": [],
                "requested_by": "seed",
                "version": 1,
                "created_at": created_at,
                "updated_at": created_at,
                **fields,
            }
            session.add(Request(**values))
            await session.commit()

    async def report(self, headers: dict[str, str], **params: Any) -> httpx.Response:
        return await self.gateway.get(REPORT, params=params, headers=headers)

    async def json(self, headers: dict[str, str], **params: Any) -> dict[str, Any]:
        response = await self.report(headers, **params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    await asyncio.to_thread(
        upgrade, service="gateway", database_url=settings.database_url_of("gateway")
    )
    await migrate_intake(settings)
    await migrate_escalation(settings)
    await migrate_sop(settings)
    apps = {"intake": create_intake(settings), "escalation": create_escalation(settings)}
    apps["sop"] = create_sop(settings)
    gateway = create_gateway(settings)
    async with (
        apps["intake"].router.lifespan_context(apps["intake"]),
        apps["escalation"].router.lifespan_context(apps["escalation"]),
        apps["sop"].router.lifespan_context(apps["sop"]),
        gateway.router.lifespan_context(gateway),
    ):
        runtime: GatewayRuntime = gateway.state.runtime
        routes: dict[str, httpx.AsyncBaseTransport] = {
            httpx.URL(url).netloc.decode(): httpx.ASGITransport(app=apps[service])
            for service, url in runtime.upstreams.items()
        }
        original = runtime.http
        async with (
            httpx.AsyncClient(transport=RoutingTransport(routes)) as upstream,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=gateway), base_url="http://gateway"
            ) as client,
        ):
            runtime.http = upstream
            try:
                yield Stack(
                    client,
                    runtime,
                    apps["intake"].state.runtime,
                    apps["escalation"].state.runtime,
                    gateway,
                    settings,
                    upstream,
                )
            finally:
                runtime.http = original


def metric(report: dict[str, Any], key: str) -> dict[str, Any]:
    found: dict[str, Any] = next(m for m in report["metrics"] if m["key"] == key)
    return found


async def seed_weeks(stack: Stack, team: str, monday: datetime = MONDAY) -> None:
    """The week before `monday`: 1 request filed; its week: 3 filed, 2 closed, resolution times
    2 h and 6 h (one breached), one escalation opened. (Each test reports on a week of its own:
    on PostgreSQL the stored reports are shared by the session's tests.)"""
    await stack.file(team, monday - 3 * DAY)
    for day in (0, 2, 4):
        await stack.file(team, monday + day * DAY)
    for hours, breached in ((2, None), (6, monday + DAY)):
        await stack.file(
            team,
            monday - 30 * DAY,
            status="closed",
            resolution="done",
            closed_at=monday + 3 * DAY,
            resolution_stopped_at=monday + 3 * DAY,
            resolution_business_seconds=hours * 3600.0,
            breached_at=breached,
        )
    async with stack.escalation.sessionmaker() as session:
        session.add(escalation(team, created_at=monday + DAY))
        await session.commit()


async def test_a_past_week_by_hand_stored_unchanged_with_goals_and_notes(
    stack: Stack, unique_team: str, backend: str
) -> None:
    await seed_weeks(stack, unique_team)
    pm = await stack.key(role=Role.PROGRAM_MANAGER)
    analyst = await stack.key(role=Role.ANALYST)
    # A goal before the week is first read: 5 filed a week, higher is better.
    put = await stack.gateway.put(
        "/api/v1/reports/goals/requests_filed", json={"target": 5}, headers=pm
    )
    assert put.status_code == 200, put.text
    assert put.json()["default"] is False

    report = await stack.json(analyst, week=WEEK)
    assert (report["week"], report["previous_week"]) == (WEEK, LAST_WEEK)
    assert report["final"] is True
    assert report["stored"] is True
    filed = metric(report, "requests_filed")
    # 3 filed, 1 the week before: +2, better; goal 5, band max(0.5, 1) = 1 -> 3 < 4 is red.
    assert (filed["value"], filed["previous"], filed["change"]) == (3, 1, 2)
    assert filed["improved"] is True
    assert (filed["goal"], filed["goal_set"], filed["rag"]) == (5, True, "red")
    assert filed["needs_path_to_green"] is True
    assert [p["week"] for p in filed["trend"]] == [
        "2019-W13", "2019-W14", "2019-W15", "2019-W16", "2019-W17", "2019-W18", "2019-W19", WEEK
    ]  # fmt: skip
    assert [p["value"] for p in filed["trend"]][-2:] == [1, 3]
    assert metric(report, "requests_closed")["value"] == 2
    # 2 h and 6 h: p50 4 h (goal 40, lower is better: green), p90 5.6 h.
    resolution = metric(report, "resolution_p50_hours")
    assert (resolution["value"], resolution["rag"], resolution["direction"]) == (
        4,
        "green",
        "lower",
    )
    assert metric(report, "resolution_p90_hours")["value"] == 5.6
    # One of the two met its SLA: 50 % against 95 % (band 5 % of 95): red.
    attainment = metric(report, "sla_attainment_pct")
    assert (attainment["value"], attainment["rag"]) == (50, "red")
    assert metric(report, "sla_breaches")["value"] == 1
    assert metric(report, "escalations_opened")["value"] == 1
    assert metric(report, "resolution_p50_hours")["previous"] is None  # nothing resolved in W19
    assert report["summary"]["red"] >= 2
    assert sum(report["summary"].values()) == len(report["metrics"])
    if backend == "sqlite":  # PostgreSQL's tables are shared with the session's other tests
        assert metric(report, "backlog")["value"] == 4
        assert report["aging"]["buckets"]["30+"] == 0

    # A note on the red metric; it shows on the next read.
    note = await stack.gateway.put(
        f"/api/v1/reports/weekly/{WEEK}/notes/requests_filed",
        json={"note": "Two partner teams onboard next week <script>x</script>"},
        headers=pm,
    )
    assert note.status_code == 200, note.text
    # Later data in the stored week, and a new goal: the stored report does not change.
    await stack.file(unique_team, MONDAY + DAY)
    await stack.gateway.put("/api/v1/reports/goals/requests_filed", json={"target": 1}, headers=pm)
    again = await stack.json(analyst, week=WEEK)
    assert again["built_at"] == report["built_at"]
    again_filed = metric(again, "requests_filed")
    assert (again_filed["value"], again_filed["goal"], again_filed["rag"]) == (3, 5, "red")
    assert again_filed["note"]["text"] == "Two partner teams onboard next week <script>x</script>"
    assert again_filed["needs_path_to_green"] is False
    assert [{k: v for k, v in m.items() if k not in ("note", "needs_path_to_green")} for m in again["metrics"]] == [
        {k: v for k, v in m.items() if k not in ("note", "needs_path_to_green")} for m in report["metrics"]
    ]  # fmt: skip

    # Markdown and HTML of the same stored report.
    markdown = await stack.report(analyst, week=WEEK, format="markdown")
    assert markdown.status_code == 200
    assert markdown.headers["content-type"].startswith("text/markdown")
    text = markdown.text
    assert "# Weekly flash report 2019-W20" in text
    assert re.search(r"\| Requests filed \| 3 \| 1 \| \+2 \| 5 \| RED \| \S+ \|", text), text
    assert "**Requests filed** (red): Two partner teams onboard next week" in text
    assert "| 30+ |" in text
    html = await stack.report({**analyst, "Accept": "text/html"}, week=WEEK)
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    page = html.text
    assert page.startswith("<!doctype html>")
    assert 'data-metric="requests_filed"' in page
    assert page.count('<svg class="trend"') == len(report["metrics"])
    assert '<svg class="bars"' in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page
    assert "<script>" not in page
    as_json = await stack.report({**analyst, "Accept": "text/html"}, week=WEEK, format="json")
    assert as_json.headers["content-type"].startswith("application/json")

    # The week after reads this stored week as its "last week".
    next_week = await stack.json(analyst, week="2019-W21")
    assert metric(next_week, "requests_filed")["previous"] == 3


async def test_the_running_week_is_live_and_not_stored(stack: Stack, unique_team: str) -> None:
    analyst = await stack.key(role=Role.ANALYST)
    first = await stack.json(analyst)
    year, week, _ = datetime.now(UTC).isocalendar()
    assert first["week"] == f"{year}-W{week:02d}"
    assert (first["final"], first["stored"]) == (False, False)
    await stack.file(unique_team, datetime.now(UTC))
    second = await stack.json(analyst)
    assert metric(second, "requests_filed")["value"] == metric(first, "requests_filed")["value"] + 1
    assert second["built_at"] > first["built_at"]


async def test_access_goals_and_bad_input(stack: Stack) -> None:
    partner = await stack.key(role=Role.PARTNER, team="buyer-risk")
    approver = await stack.key(role=Role.APPROVER)
    analyst = await stack.key(role=Role.ANALYST)
    admin = await stack.key(role=Role.ADMIN)
    for headers in (partner, approver):
        assert_problem(await stack.report(headers, week=WEEK), 403)
    assert_problem(await stack.report({}, week=WEEK), 401)
    for params in (
        {"week": "2019-W99"},
        {"week": "19-W20"},
        {"week": "2099-W01"},
        {"format": "pdf"},
        {"week": "0001-W01"},
        {"week": "0000-W01"},
        {"week": "2000-W02"},
    ):
        assert_problem(await stack.report(analyst, **params), 422)
    goal = "/api/v1/reports/goals/backlog"
    assert_problem(await stack.gateway.put(goal, json={"target": 10}, headers=analyst), 403)
    assert_problem(await stack.gateway.put(goal, json={"target": 10, "x": 1}, headers=admin), 422)
    assert_problem(
        await stack.gateway.put(goal, json={"target": 10, "amber_within": 2}, headers=admin), 422
    )
    assert_problem(
        await stack.gateway.put("/api/v1/reports/goals/nope", json={"target": 1}, headers=admin),
        404,
    )
    ok = await stack.gateway.put(goal, json={"target": None, "amber_within": 0.2}, headers=admin)
    assert ok.status_code == 200, ok.text
    goals = (await stack.gateway.get("/api/v1/reports/goals", headers=analyst)).json()
    backlog = next(g for g in goals if g["metric"] == "backlog")
    assert (backlog["target"], backlog["amber_within"], backlog["default"]) == (None, 0.2, False)
    assert next(g for g in goals if g["metric"] == "sla_attainment_pct")["target"] == 95
    notes = f"/api/v1/reports/weekly/{WEEK}/notes"
    assert_problem(
        await stack.gateway.put(f"{notes}/backlog", json={"note": " "}, headers=admin), 422
    )
    assert_problem(await stack.gateway.put(f"{notes}/nope", json={"note": "x"}, headers=admin), 404)
    assert_problem(
        await stack.gateway.put(
            "/api/v1/reports/weekly/2099-W01/notes/backlog", json={"note": "x"}, headers=admin
        ),
        422,
    )
    assert_problem(
        await stack.gateway.put(f"{notes}/backlog", json={"note": "x"}, headers=partner), 403
    )


def system_headers(settings: Settings) -> dict[str, str]:
    identity = Identity(subject="worker", team="risk-mining", role=Role.SYSTEM)
    return {
        IDENTITY_HEADER: sign_identity(identity, secret=settings.identity_secret, ttl_seconds=60)
    }


async def test_internal_build_stores_once_and_publishes_to_subscribers(
    stack: Stack, unique_team: str
) -> None:
    week, monday = "2018-W20", datetime(2018, 5, 14, tzinfo=UTC)
    await seed_weeks(stack, unique_team, monday)
    partner = await stack.key(role=Role.PARTNER, team=unique_team)
    created = await stack.gateway.post(
        "/api/v1/subscriptions",
        json={
            "event_types": ["report.weekly"],
            "channel": "webhook",
            "url": "https://hooks.example.com/riskdesk",
        },
        headers=partner,
    )
    assert created.status_code == 201, created.text
    path = f"/internal/reports/weekly/{week}"
    first = await stack.gateway.post(path, headers=system_headers(stack.settings))
    assert first.status_code == 200, first.text
    body = first.json()
    event_id = f"report-weekly:{week}:{unique_team}"
    assert body["created"] is True
    assert event_id in body["events"]
    second = await stack.gateway.post(path, headers=system_headers(stack.settings))
    assert second.json()["created"] is False
    assert second.json()["built_at"] == body["built_at"]
    async with stack.runtime.sessionmaker() as session:
        event = (
            await session.execute(
                select(NotificationEvent).where(NotificationEvent.event_id == event_id)
            )
        ).scalar_one()
    assert (event.type, event.team, event.deliveries) == ("report.weekly", unique_team, 1)
    assert event.data["week"] == week
    filed = next(m for m in event.data["metrics"] if m["key"] == "requests_filed")
    assert (filed["value"], filed["previous"]) == (3, 1)
    # Only the worker may build; a week that has not ended is not stored.
    analyst = await stack.key(role=Role.ANALYST)
    assert_problem(await stack.gateway.post(path, headers=analyst), 401)
    current = week_just_ended(datetime.now(UTC) + timedelta(days=7))
    assert_problem(
        await stack.gateway.post(
            f"/internal/reports/weekly/{current}", headers=system_headers(stack.settings)
        ),
        409,
    )


async def test_the_workflow_builds_and_publishes_through_the_gateway(
    stack: Stack, unique_team: str
) -> None:
    """The schedule's workflow on the real dev server, calling the gateway over real HTTP."""
    week, monday = "2017-W20", datetime(2017, 5, 15, tzinfo=UTC)
    await seed_weeks(stack, unique_team, monday)
    partner = await stack.key(role=Role.PARTNER, team=unique_team)
    await stack.gateway.post(
        "/api/v1/subscriptions",
        json={"event_types": ["report.weekly"], "channel": "email", "email": "pm@example.com"},
        headers=partner,
    )
    port = free_port()
    settings = stack.settings.model_copy(update={"gateway_port": port})
    client = await Client.connect(settings.temporal_address)
    http = make_http_client(settings)
    async with serve(stack.app, port):
        # uvicorn ran the app's lifespan again: its new runtime reaches the in-process services.
        stack.app.state.runtime.http = stack.upstream
        try:
            async with Worker(
                client,
                task_queue=settings.task_queue,
                workflows=[WeeklyReportWorkflow],
                activities=WeeklyReportActivities(ServiceApi(http=http, settings=settings)).all(),
                workflow_runner=workflow_runner(),
            ):
                result = await client.execute_workflow(
                    WeeklyReportWorkflow.run,
                    WeeklyReportInput(week=week),
                    id=f"weekly-report-test-{uuid.uuid4().hex[:8]}",
                    task_queue=settings.task_queue,
                    execution_timeout=timedelta(seconds=60),
                )
        finally:
            await http.aclose()
    assert result.week == week
    assert result.created is True
    assert f"report-weekly:{week}:{unique_team}" in result.events
    analyst = await stack.key(role=Role.ANALYST)
    stored = await stack.json(analyst, week=week)
    assert stored["stored"] is True
    assert metric(stored, "requests_filed")["value"] == 3


def test_the_week_just_ended() -> None:
    assert week_just_ended(datetime(2026, 11, 30, 6, 0, tzinfo=UTC)) == "2026-W48"  # a Monday
    assert week_just_ended(datetime(2026, 1, 5, 6, 0, tzinfo=UTC)) == "2026-W01"
    assert week_just_ended(datetime(2027, 1, 4, 6, 0, tzinfo=UTC)) == "2026-W53"
