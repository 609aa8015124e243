"""`GET /api/v1/stats/intake` on each backend: real rows with chosen instants and durations, the
expected aggregates computed by hand; periods, staff-only access and 422s."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import inspect

from services.common.identity import Role
from services.common.migrations import downgrade, upgrade
from services.common.settings import Settings
from services.intake.models import Request, RequestEvent
from tests.service.test_intake_aging import AgingIntake, running_intake
from tests.service.test_intake_api import assert_problem

STATS = "/api/v1/stats/intake"
WEEK = "2021-W10"  # Monday 2021-03-08 .. Sunday 2021-03-14, far from every other test's rows
MONDAY = datetime(2021, 3, 8, tzinfo=UTC)


@pytest.fixture
async def intake(
    settings: Settings, identity_headers: Callable[..., dict[str, str]]
) -> AsyncIterator[AgingIntake]:
    async with running_intake(settings, identity_headers) as running:
        yield running


async def plant(intake: AgingIntake, **fields: Any) -> int:
    """One request row; `created_at` and friends as given (there is no API to file in the past)."""
    values: dict[str, Any] = {
        "request_type": "deep_dive",
        "title": "t",
        "description": "",
        "priority": "P2",
        "status": "in_progress",
        "external_refs": [],
        "requested_by": "seed",
        "version": 1,
        "created_at": MONDAY,
        **fields,
    }
    values.setdefault("updated_at", values["created_at"])
    async with intake.runtime.sessionmaker() as session:
        row = Request(**values)
        session.add(row)
        await session.commit()
        return row.id


async def event(
    intake: AgingIntake, request_id: int, version: int, action: str, at: datetime
) -> None:
    async with intake.runtime.sessionmaker() as session:
        session.add(
            RequestEvent(
                id=str(uuid.uuid4()),
                request_id=request_id,
                request_version=version,
                kind="transitioned",
                action=action,
                from_status="in_progress",
                to_status="resolved" if action == "resolve" else "in_progress",
                actor="seed",
                actor_role="analyst",
                data={},
                occurred_at=at,
            )
        )
        await session.commit()


async def stats(intake: AgingIntake, **params: Any) -> dict[str, Any]:
    response = await intake.http.get(STATS, params=params, headers=intake.staff())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_every_number_of_a_week_by_hand(intake: AgingIntake, unique_team: str) -> None:
    team, other = unique_team, f"{unique_team}-x"
    day = timedelta(days=1)
    # Filed in the week: 3 deep dives and 1 data request of `team`, 1 of `other`.
    ids = [
        await plant(intake, team=team, created_at=MONDAY + day * i, status="new") for i in range(3)
    ]
    await plant(intake, team=team, request_type="data_request", created_at=MONDAY + 6 * day)
    await plant(intake, team=other, created_at=MONDAY + day)
    # Outside the week on both sides: before counts in the backlog, after counts nowhere.
    await plant(intake, team=team, created_at=MONDAY - day)
    await plant(intake, team=team, created_at=MONDAY + 7 * day)
    # Closed in the week: two done, one rejected (one of them filed the week before, so the
    # backlog at the week's end is 1 + 4 + 1 (before) - 3 (closed) ... computed below).
    for resolution, created in (("done", -10), ("done", -3), ("rejected", -8)):
        await plant(
            intake,
            team=team,
            status="closed",
            resolution=resolution,
            created_at=MONDAY + created * day,
            closed_at=MONDAY + 2 * day,
        )
    # Closed the week after: still in the backlog at the end of this one.
    await plant(
        intake,
        team=team,
        status="closed",
        resolution="done",
        created_at=MONDAY - 20 * day,
        closed_at=MONDAY + 8 * day,
    )
    # Clocks stopped in the week: resolution 100, 200, 300, 400, 1000 s (one breached);
    # first response 60 and 120 s; a stop the week before counts nowhere.
    for seconds, breached in ((100, False), (200, False), (300, True), (400, False), (1000, False)):
        await plant(
            intake,
            team=team,
            status="resolved",
            created_at=MONDAY - 30 * day,
            resolution_stopped_at=MONDAY + 3 * day,
            resolution_business_seconds=float(seconds),
            breached_at=MONDAY - 29 * day if breached else None,
        )
    for seconds in (60, 120):
        await plant(
            intake,
            team=team,
            created_at=MONDAY - 40 * day,
            first_response_stopped_at=MONDAY + 4 * day,
            first_response_business_seconds=float(seconds),
        )
    await plant(
        intake,
        team=team,
        created_at=MONDAY - 40 * day,
        first_response_stopped_at=MONDAY - day,
        first_response_business_seconds=9999.0,
        resolution_stopped_at=MONDAY - day,
        resolution_business_seconds=9999.0,
    )
    # Breaches in the week: two (one of them of a request filed long before).
    await plant(intake, team=team, created_at=MONDAY - 50 * day, breached_at=MONDAY + day)
    await plant(intake, team=team, created_at=MONDAY - 50 * day, breached_at=MONDAY + 5 * day)
    # Actions: 4 resolves and 1 reopen in the week, 1 resolve after it.
    for version, offset in enumerate((1, 2, 3, 4), start=1):
        await event(intake, ids[0], version, "resolve", MONDAY + offset * day)
    await event(intake, ids[0], 5, "reopen", MONDAY + 5 * day)
    await event(intake, ids[0], 6, "resolve", MONDAY + 9 * day)

    body = await stats(intake, week=WEEK, team=team)
    assert body["period"]["week"] == WEEK
    assert body["period"]["start"].startswith("2021-03-08T00:00:00")
    assert body["period"]["as_of"].startswith("2021-03-15T00:00:00")
    assert body["filed"] == 4
    assert body["filed_by_team_type"] == [
        {"team": team, "request_type": "data_request", "count": 1},
        {"team": team, "request_type": "deep_dive", "count": 3},
    ]
    assert body["closed"] == 3
    assert body["closed_by_resolution"] == {"done": 2, "rejected": 1}
    # Filed before the end: 4 (week) + 1 (day before) + 3 (closed ones) + 1 (closed later)
    # + 5 resolved + 2 + 1 (first responses) + 2 (breaches) = 19; closed before the end: 3.
    assert body["backlog"] == 16
    assert body["resolution"] == {"count": 5, "p50_seconds": 300.0, "p90_seconds": 760.0}
    assert body["first_response"] == {"count": 2, "p50_seconds": 90.0, "p90_seconds": 114.0}
    assert body["sla"] == {"resolved": 5, "met": 4, "attainment": 0.8, "breaches": 2}
    assert body["reopen"] == {"resolved": 4, "reopened": 1, "rate": 0.25}

    # The same week as dates; the other team alone.
    same = await stats(intake, **{"from": "2021-03-08", "to": "2021-03-14", "team": team})
    assert same["period"]["week"] == WEEK
    assert {k: v for k, v in same.items() if k != "period"} == {
        k: v for k, v in body.items() if k != "period"
    }
    theirs = await stats(intake, week=WEEK, team=other)
    assert (theirs["filed"], theirs["closed"], theirs["backlog"]) == (1, 0, 1)
    assert theirs["resolution"] == {"count": 0, "p50_seconds": None, "p90_seconds": None}
    assert theirs["sla"]["attainment"] is None
    assert theirs["reopen"]["rate"] is None

    # Two days only: Tuesday and Wednesday.
    short = await stats(intake, **{"from": "2021-03-09", "to": "2021-03-10", "team": team})
    assert short["period"]["week"] is None
    assert short["filed"] == 2  # created Tuesday and Wednesday
    assert short["closed"] == 3  # all closed on Wednesday
    assert short["sla"]["breaches"] == 1


async def test_default_period_is_the_current_week(intake: AgingIntake, unique_team: str) -> None:
    await plant(intake, team=unique_team, created_at=datetime.now(UTC))
    body = await stats(intake, team=unique_team)
    year, week, _ = datetime.now(UTC).isocalendar()
    assert body["period"]["week"] == f"{year}-W{week:02d}"
    assert body["filed"] == 1
    assert body["backlog"] == 1


@pytest.mark.parametrize("role", [Role.PARTNER, Role.APPROVER])
async def test_only_staff_read_stats(intake: AgingIntake, role: Role) -> None:
    response = await intake.http.get(
        STATS, params={"week": WEEK}, headers=intake.as_(team="buyer-risk", role=role)
    )
    assert_problem(response, 403)


@pytest.mark.parametrize(
    "params",
    [
        {"week": "2021-W60"},
        {"week": "2021-10"},
        {"week": "1990-W01"},
        {"week": "2021-W10", "from": "2021-03-08", "to": "2021-03-14"},
        {"from": "2021-03-08"},
        {"to": "2021-03-08"},
        {"from": "2021-03-14", "to": "2021-03-08"},
        {"from": "2020-01-01", "to": "2021-06-01"},
        {"from": "yesterday", "to": "2021-03-08"},
        {"week": WEEK, "team": ""},
    ],
)
async def test_bad_periods_are_422(intake: AgingIntake, params: dict[str, str]) -> None:
    response = await intake.http.get(STATS, params=params, headers=intake.staff())
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["field"].startswith("query.")


async def test_a_call_without_identity_is_401(intake: AgingIntake) -> None:
    response = await intake.http.get(STATS, params={"week": WEEK})
    assert_problem(response, 401)
    assert isinstance(intake.http, httpx.AsyncClient)


async def test_the_stats_migration_goes_down_and_up_alone(
    intake: AgingIntake, settings: Settings
) -> None:
    def shape(connection: Any) -> tuple[set[str], set[str]]:
        inspector = inspect(connection)
        columns = {column["name"] for column in inspector.get_columns("request")}
        indexes = {index["name"] for index in inspector.get_indexes("request")}
        indexes |= {index["name"] for index in inspector.get_indexes("request_event")}
        return columns, indexes

    async def current() -> tuple[set[str], set[str]]:
        async with intake.runtime.engine.connect() as connection:
            return await connection.run_sync(shape)

    url = settings.database_url_of("intake")
    await asyncio.to_thread(
        downgrade, service="intake", database_url=url, revision="intake_0008@intake_0002"
    )
    try:
        columns, indexes = await current()
        assert "resolution_business_seconds" not in columns
        assert "ix_request_event_action_occurred_at" not in indexes
        assert "breached_at" in columns
    finally:
        await asyncio.to_thread(upgrade, service="intake", database_url=url)
    columns, indexes = await current()
    assert {"first_response_stopped_at", "resolution_stopped_at"} <= columns
    assert {"ix_request_closed_at", "ix_request_resolution_stopped_at"} <= indexes
