"""Intake's SLA surface on each backend: the internal record route, the `breached`/`due_before`
filters and `GET /requests/{id}/sla`, with the real outbox, Temporal dev server and a worker.

The worker runs the real `record_sla` and `auto_close_request` activities against this in-process
intake (ASGITransport); only the gateway's side (`resolve_sla_policy`, `publish_sla_event`) is
stood in for, under the real activity names.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import inspect
from temporalio.worker import Worker

from riskdesk.temporal_server import free_port
from services.common.db import make_engine
from services.common.identity import Role
from services.common.migrations import downgrade, upgrade
from services.common.settings import Settings
from services.common.temporal import connect_temporal
from services.intake.app import create_app
from tests.service.test_intake_api import assert_problem, eventually, migrate
from tests.workflows.test_sla_clocks import FakeServices, policy
from workflows.request_lifecycle import RequestLifecycleWorkflow, SlaActivities
from workflows.sandbox import workflow_runner
from workflows.service_api import ServiceApi


class SlaIntake:
    """A running intake app, its client, and the fake gateway side of its worker."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        app: Any,
        fake: FakeServices,
        as_: Callable[..., dict[str, str]],
    ) -> None:
        self.http, self.app, self.fake, self.as_ = http, app, fake, as_

    async def file(self, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
        body = {"request_type": "deep_dive", "title": "Refund abuse", **fields}
        response = await self.http.post("/api/v1/requests", json=body, headers=headers)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def read(self, request_id: int, headers: dict[str, str]) -> dict[str, Any]:
        response = await self.http.get(f"/api/v1/requests/{request_id}", headers=headers)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def listed(self, headers: dict[str, str], **params: Any) -> list[int]:
        response = await self.http.get("/api/v1/requests", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]


@asynccontextmanager
async def running_intake(
    settings: Settings,
    identity_headers: Callable[..., dict[str, str]],
    fake: FakeServices,
    *,
    worker: bool = True,
) -> AsyncIterator[SlaIntake]:
    await migrate(settings)
    app = create_app(settings)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        transport = httpx.ASGITransport(app=app)
        http = await stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://intake")
        )
        if worker:
            # The worker's own client reaches this intake in-process, whatever URL it builds.
            worker_http = await stack.enter_async_context(httpx.AsyncClient(transport=transport))
            real = SlaActivities(ServiceApi(http=worker_http, settings=settings))
            temporal = await connect_temporal(settings.temporal_address, "default")
            await stack.enter_async_context(
                Worker(
                    temporal,
                    task_queue=settings.task_queue,
                    workflows=[RequestLifecycleWorkflow],
                    workflow_runner=workflow_runner(),
                    activities=[
                        fake.resolve_sla_policy,
                        fake.publish_sla_event,
                        real.record_sla,
                        real.auto_close_request,
                        real.fetch_request_events,
                    ],
                )
            )
        yield SlaIntake(http, app, fake, identity_headers)


@pytest.fixture
def fake() -> FakeServices:
    return FakeServices(
        policies={
            "P1": policy(first_response="PT1H", resolution="PT4S", thresholds=[], policy_id="p1"),
            "P3": policy(first_response="PT1H", resolution="PT2H", thresholds=[], policy_id="p3"),
        }
    )


@pytest.fixture
async def intake(
    settings: Settings, identity_headers: Callable[..., dict[str, str]], fake: FakeServices
) -> AsyncIterator[SlaIntake]:
    async with running_intake(settings, identity_headers, fake) as running:
        yield running


def instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


async def test_breaches_are_recorded_on_the_request_and_filterable(
    intake: SlaIntake, unique_team: str
) -> None:
    partner = intake.as_(team=unique_team, role=Role.PARTNER, subject="key-partner")
    analyst = intake.as_(team="risk-mining", role=Role.ANALYST)
    hot = await intake.file(partner, priority="P1")
    calm = await intake.file(partner, priority="P3")
    created = instant(hot["created_at"])
    assert created is not None
    assert (hot["sla_due_at"], hot["breached_at"]) == (None, None)

    # The workflow records the deadline, then the breach (4 s after filing), on the request.
    breached = await eventually(
        lambda: intake.read(hot["id"], partner), lambda r: r["breached_at"] is not None
    )
    assert instant(breached["breached_at"]) == created + timedelta(seconds=4)
    assert instant(breached["sla_due_at"]) == created + timedelta(seconds=4)
    assert breached["version"] == 1  # SLA times are not a change of the request
    quiet = await eventually(
        lambda: intake.read(calm["id"], partner), lambda r: r["sla_due_at"] is not None
    )
    calm_created = instant(calm["created_at"])
    assert calm_created is not None
    assert instant(quiet["sla_due_at"]) == calm_created + timedelta(hours=1)
    assert quiet["breached_at"] is None

    assert await intake.listed(partner, breached="true") == [hot["id"]]
    assert await intake.listed(partner, breached="false") == [calm["id"]]
    assert await intake.listed(analyst, team=unique_team, breached=True) == [hot["id"]]
    soon = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    later = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    assert await intake.listed(partner, due_before=soon) == [hot["id"]]
    assert await intake.listed(partner, due_before=later) == [calm["id"], hot["id"]]
    assert await intake.listed(partner, due_before=later, breached="false") == [calm["id"]]
    bad = await intake.http.get(
        "/api/v1/requests", params={"due_before": "2026-01-01T00:00:00"}, headers=partner
    )
    assert_problem(bad, 422, "validation-error")
    assert_problem(
        await intake.http.get("/api/v1/requests", params={"breached": "maybe"}, headers=partner),
        422,
    )

    # The clocks as the workflow computes them.
    sla = await intake.http.get(f"/api/v1/requests/{hot['id']}/sla", headers=partner)
    assert sla.status_code == 200, sla.text
    body = sla.json()
    assert (body["request_id"], body["policy_id"]) == (hot["id"], "p1")
    clocks = {clock["name"]: clock for clock in body["clocks"]}
    assert clocks["resolution"]["state"] == "breached"
    assert clocks["resolution"]["target"] == "PT4S"
    assert clocks["resolution"]["remaining_seconds"] == 0
    assert instant(clocks["resolution"]["breached_at"]) == created + timedelta(seconds=4)
    assert clocks["first_response"]["state"] == "running"
    assert 0 < clocks["first_response"]["remaining_seconds"] < 3600

    # Triage stops first response; once every clock stops, nothing is due any more.
    assert (
        await intake.http.post(
            f"/api/v1/requests/{hot['id']}/transitions", json={"action": "triage"}, headers=analyst
        )
    ).status_code == 200
    await eventually(
        lambda: intake.http.get(f"/api/v1/requests/{hot['id']}/sla", headers=partner),
        lambda r: (
            {c["name"]: c["state"] for c in r.json()["clocks"]}["first_response"] == "stopped"
        ),
    )
    # Partners see only their own team's clocks.
    stranger = intake.as_(team=f"{unique_team}-x", role=Role.PARTNER)
    assert_problem(
        await intake.http.get(f"/api/v1/requests/{hot['id']}/sla", headers=stranger),
        404,
        "not-found",
    )
    assert_problem(await intake.http.get("/api/v1/requests/2147483600/sla", headers=analyst), 404)


async def test_auto_close_closes_a_resolved_request_as_system(
    settings: Settings,
    identity_headers: Callable[..., dict[str, str]],
    unique_team: str,
) -> None:
    fake = FakeServices(
        policies={"P2": policy(resolution="PT1H", thresholds=[], auto_close_after="PT1S")}
    )
    async with running_intake(settings, identity_headers, fake) as intake:
        analyst = intake.as_(team="risk-mining", role=Role.ANALYST)
        request = await intake.file(analyst, team=unique_team)
        for action in ("triage", "start", "resolve"):
            moved = await intake.http.post(
                f"/api/v1/requests/{request['id']}/transitions",
                json={"action": action},
                headers=analyst,
            )
            assert moved.status_code == 200, moved.text
        closed = await eventually(
            lambda: intake.read(request["id"], analyst), lambda r: r["status"] == "closed"
        )
        assert closed["resolution"] == "done"
        events = await intake.http.get(f"/api/v1/requests/{request['id']}/events", headers=analyst)
        last = events.json()["items"][-1]
        assert (last["action"], last["actor_role"]) == ("close", "system")
        # The workflow ended with the close, and recorded no running deadline.
        final = await eventually(
            lambda: intake.read(request["id"], analyst), lambda r: r["sla_due_at"] is None
        )
        assert final["breached_at"] is None


async def test_the_internal_record_route_is_for_the_system_only(
    settings: Settings,
    identity_headers: Callable[..., dict[str, str]],
    fake: FakeServices,
    unique_team: str,
) -> None:
    async with running_intake(settings, identity_headers, fake, worker=False) as intake:
        partner = intake.as_(team=unique_team, role=Role.PARTNER)
        system = intake.as_(team="risk-mining", role=Role.SYSTEM, subject="worker")
        request = await intake.file(partner)
        path = f"/internal/requests/{request['id']}/sla"
        due = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
        body = {
            "sla_due_at": due.isoformat(),
            "breached_at": None,
            "first_response_due_at": due.isoformat(),
            "resolution_due_at": (due + timedelta(hours=8)).isoformat(),
        }
        for role in (Role.PARTNER, Role.ANALYST, Role.ADMIN, Role.PROGRAM_MANAGER):
            headers = intake.as_(team=unique_team, role=role)
            assert_problem(await intake.http.put(path, json=body, headers=headers), 403)
        assert_problem(await intake.http.put(path, json=body), 401, "unauthorized")
        assert (await intake.read(request["id"], partner))["sla_due_at"] is None

        stored = await intake.http.put(path, json=body, headers=system)
        assert stored.status_code == 204, stored.text
        assert stored.content == b""
        after = await intake.read(request["id"], partner)
        assert instant(after["sla_due_at"]) == due
        assert after["version"] == request["version"]
        assert after["updated_at"] == request["updated_at"]
        # Idempotent; and a breach recorded shows in the breached queue.
        breach = {**body, "breached_at": (due - timedelta(hours=1)).isoformat()}
        for _ in range(2):
            assert (await intake.http.put(path, json=breach, headers=system)).status_code == 204
        assert await intake.listed(partner, breached="true") == [request["id"]]

        assert_problem(
            await intake.http.put("/internal/requests/2147483600/sla", json=body, headers=system),
            404,
            "not-found",
        )
        for bad in (
            {**body, "sla_due_at": "2030-01-02T03:04:05"},  # no zone
            {**body, "sla_due_at": "soon"},
            {**body, "surprise": 1},
            [body],
        ):
            assert_problem(await intake.http.put(path, json=bad, headers=system), 422)
        assert_problem(
            await intake.http.put("/internal/requests/0/sla", json=body, headers=system), 422
        )


async def test_sla_is_pending_before_the_workflow_and_503_without_temporal(
    make_settings: Callable[..., Settings],
    identity_headers: Callable[..., dict[str, str]],
    fake: FakeServices,
    unique_team: str,
    tmp_path: Path,
) -> None:
    partner = identity_headers(team=unique_team, role=Role.PARTNER)
    async with running_intake(make_settings(), identity_headers, fake, worker=False) as intake:
        # The outbox holds the first event back: no workflow exists yet.
        await intake.app.state.runtime.dispatcher.stop()
        request = await intake.file(partner)
        response = await intake.http.get(f"/api/v1/requests/{request['id']}/sla", headers=partner)
        assert response.status_code == 200, response.text
        assert [(c["name"], c["state"]) for c in response.json()["clocks"]] == [
            ("first_response", "pending"),
            ("resolution", "pending"),
        ]
        assert response.json()["policy_id"] is None

    down = make_settings(
        temporal_address=f"127.0.0.1:{free_port()}", data_dir=tmp_path / "temporal-down"
    )
    async with running_intake(down, identity_headers, fake, worker=False) as intake:
        request = await intake.file(partner)
        problem = assert_problem(
            await intake.http.get(f"/api/v1/requests/{request['id']}/sla", headers=partner), 503
        )
        assert "Temporal" in problem["detail"]


async def test_the_sla_migration_is_reversible(settings: Settings) -> None:
    url = settings.database_url_of("intake")
    await asyncio.to_thread(upgrade, service="intake", database_url=url)
    await asyncio.to_thread(downgrade, service="intake", database_url=url, revision="intake_0001")

    async def columns() -> set[str]:
        engine = make_engine(url, schema="intake", pool_size=1)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(
                    lambda sync: {c["name"] for c in inspect(sync).get_columns("request")}
                )
        finally:
            await engine.dispose()

    assert "breached_at" not in await columns()
    await asyncio.to_thread(upgrade, service="intake", database_url=url)
    assert {"sla_due_at", "breached_at", "first_response_due_at", "resolution_due_at"} <= (
        await columns()
    )
