"""Intake's aging report (`POST /internal/requests/aging`) on each backend: buckets per team,
assignee and age, the stale list, filters, partner isolation and 422s.

Rows are written straight into the intake's own tables with chosen `created_at`/`updated_at`
(there is no API to file a request in the past); everything else goes through the real app.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import inspect

from services.common.identity import Role
from services.common.migrations import downgrade, upgrade
from services.common.service_app import ServiceRuntime
from services.common.settings import Settings
from services.intake.app import create_app
from services.intake.models import Request
from tests.service.test_intake_api import assert_problem, migrate

AGING = "/internal/requests/aging"
ALWAYS_UTC: dict[str, Any] = {"timezone": "UTC", "always_open": True}
INDIA: dict[str, Any] = {
    "timezone": "Asia/Kolkata",
    "hours": {day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": {"country": "IN", "subdivision": None},
}
AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # a Monday


@dataclass
class AgingIntake:
    """A running intake app, its client, and a way to plant requests of any age."""

    http: httpx.AsyncClient
    runtime: ServiceRuntime
    as_: Callable[..., dict[str, str]]
    app: Any

    async def seed(
        self,
        *,
        team: str,
        days_old: float,
        idle_days: float | None = None,
        status: str = "in_progress",
        assignee: str | None = None,
        at: datetime = AT,
        title: str = "Refund abuse",
    ) -> int:
        """A request filed `days_old` days before `at`, last changed `idle_days` before it."""
        created = at - timedelta(days=days_old)
        updated = at - timedelta(days=days_old if idle_days is None else idle_days)
        async with self.runtime.sessionmaker() as session:
            row = Request(
                team=team,
                request_type="deep_dive",
                title=title,
                description="",
                priority="P2",
                status=status,
                external_refs=[],
                requested_by="seed",
                assignee=assignee,
                version=1,
                created_at=created,
                updated_at=updated,
            )
            session.add(row)
            await session.commit()
            return row.id

    async def report(self, headers: dict[str, str], **body: Any) -> httpx.Response:
        payload = {"calendar": ALWAYS_UTC, "at": AT.isoformat(), **body}
        return await self.http.post(AGING, json=payload, headers=headers)

    async def ok(self, headers: dict[str, str], **body: Any) -> dict[str, Any]:
        response = await self.report(headers, **body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def staff(self) -> dict[str, str]:
        return self.as_(team="risk-mining", role=Role.ANALYST, subject="analyst-1")


@asynccontextmanager
async def running_intake(
    settings: Settings, identity_headers: Callable[..., dict[str, str]]
) -> AsyncIterator[AgingIntake]:
    """Migrated intake app with its lifespan running, reached in-process."""
    await migrate(settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as http:
            yield AgingIntake(http, app.state.runtime, identity_headers, app)


@pytest.fixture
async def intake(
    settings: Settings, identity_headers: Callable[..., dict[str, str]]
) -> AsyncIterator[AgingIntake]:
    async with running_intake(settings, identity_headers) as running:
        yield running


@dataclass
class Seeded:
    ids: dict[str, int]


async def seed_team(intake: AgingIntake, team: str) -> Seeded:
    """Ten open requests across every bucket and both sides of the stale edge (5 days)."""
    plan: dict[str, dict[str, Any]] = {
        "a": {"days_old": 0, "assignee": "alice"},
        "b": {"days_old": 2, "assignee": "alice"},
        "c": {"days_old": 3, "assignee": "bob"},
        "d": {"days_old": 7, "idle_days": 5, "assignee": "alice"},  # stale, on the edge
        "e": {"days_old": 8, "idle_days": 4},  # a day short of stale
        "f": {"days_old": 14},
        "g": {"days_old": 15, "idle_days": 6, "assignee": "bob"},
        "h": {"days_old": 30, "assignee": "alice"},
        "i": {"days_old": 31, "idle_days": 10},
        "j": {"days_old": 100, "idle_days": 7, "assignee": "bob", "status": "waiting_on_requester"},
        # Neither resolved nor closed requests age.
        "resolved": {"days_old": 50, "status": "resolved", "assignee": "alice"},
        "closed": {"days_old": 50, "status": "closed"},
    }
    ids = {}
    for name, fields in plan.items():
        ids[name] = await intake.seed(team=team, title=f"request {name}", **fields)
    return Seeded(ids)


async def test_buckets_groups_and_the_stale_list_stalest_first(
    intake: AgingIntake, unique_team: str
) -> None:
    seeded = await seed_team(intake, unique_team)
    other = await intake.seed(team=f"{unique_team}-other", days_old=40)
    report = await intake.ok(intake.staff(), team=unique_team, stale_business_days=5)

    assert report["as_of"].startswith("2026-11-30T12:00:00")
    assert report["as_of_date"] == "2026-11-30"
    assert report["timezone"] == "UTC"
    assert report["stale_business_days"] == 5
    assert report["open_count"] == 10
    assert report["buckets"] == {"0-2": 2, "3-7": 2, "8-14": 2, "15-30": 2, "30+": 2}
    groups = {(g["assignee"], g["bucket"]): g["count"] for g in report["groups"]}
    assert groups == {
        ("alice", "0-2"): 2,
        ("alice", "3-7"): 1,
        ("alice", "15-30"): 1,
        ("bob", "3-7"): 1,
        ("bob", "15-30"): 1,
        ("bob", "30+"): 1,
        (None, "8-14"): 2,
        (None, "30+"): 1,
    }
    assert {g["team"] for g in report["groups"]} == {unique_team}

    names = {v: k for k, v in seeded.ids.items()}
    stale = report["stale"]
    assert [names[item["id"]] for item in stale] == ["h", "f", "i", "j", "g", "d"]
    assert [item["idle_business_days"] for item in stale] == [30, 14, 10, 7, 6, 5]
    assert [(item["age_business_days"], item["bucket"]) for item in stale] == [
        (30, "15-30"),
        (14, "8-14"),
        (31, "30+"),
        (100, "30+"),
        (15, "15-30"),
        (7, "3-7"),
    ]
    assert stale[3]["status"] == "waiting_on_requester"
    assert report["stale_count"] == 6
    assert report["truncated"] is False
    assert report["stale_by_owner"] == [
        {"team": unique_team, "assignee": None, "count": 2},
        {"team": unique_team, "assignee": "alice", "count": 2},
        {"team": unique_team, "assignee": "bob", "count": 2},
    ]
    assert other not in {item["id"] for item in stale}


async def test_filters_narrow_counts_and_list(intake: AgingIntake, unique_team: str) -> None:
    seeded = await seed_team(intake, unique_team)
    names = {v: k for k, v in seeded.ids.items()}
    staff = intake.staff()

    def stale_names(report: dict[str, Any]) -> list[str]:
        return [names[item["id"]] for item in report["stale"]]

    oldest = await intake.ok(staff, team=unique_team, bucket="30+")
    assert (oldest["open_count"], oldest["buckets"]["30+"]) == (2, 2)
    assert stale_names(oldest) == ["i", "j"]
    youngest = await intake.ok(staff, team=unique_team, bucket="0-2")
    assert youngest["buckets"] == {"0-2": 2, "3-7": 0, "8-14": 0, "15-30": 0, "30+": 0}
    assert youngest["stale"] == []
    middle = await intake.ok(staff, team=unique_team, bucket="15-30")
    assert stale_names(middle) == ["h", "g"]

    alice = await intake.ok(staff, team=unique_team, assignee="alice")
    assert alice["open_count"] == 4
    assert stale_names(alice) == ["h", "d"]
    nobody = await intake.ok(staff, team=unique_team, unassigned=True)
    assert nobody["open_count"] == 3
    assert stale_names(nobody) == ["f", "i"]

    first_two = await intake.ok(staff, team=unique_team, limit=2)
    assert stale_names(first_two) == ["h", "f"]
    assert (first_two["stale_count"], first_two["truncated"]) == (6, True)

    patient = await intake.ok(staff, team=unique_team, stale_business_days=30)
    assert stale_names(patient) == ["h"]
    # Later, everything is older: the same rows move up a bucket, and more are stale.
    later = await intake.ok(staff, team=unique_team, at=(AT + timedelta(days=1)).isoformat())
    assert later["buckets"] == {"0-2": 1, "3-7": 2, "8-14": 2, "15-30": 2, "30+": 3}
    assert "e" in stale_names(later)


async def test_partners_age_their_own_team_only(intake: AgingIntake, unique_team: str) -> None:
    await seed_team(intake, unique_team)
    other_team = f"{unique_team}-x"
    other = await intake.seed(team=other_team, days_old=40, assignee="carol")
    partner = intake.as_(team=unique_team, role=Role.PARTNER)

    own = await intake.ok(partner)
    assert own["open_count"] == 10
    assert {g["team"] for g in own["groups"]} == {unique_team}
    assert other not in {item["id"] for item in own["stale"]}
    assert await intake.ok(partner, team=unique_team) == own
    # Another team's filter shows nothing rather than that team's requests.
    foreign = await intake.ok(partner, team=other_team)
    assert (foreign["open_count"], foreign["stale"], foreign["groups"]) == (0, [], [])
    assert foreign["buckets"] == dict.fromkeys(["0-2", "3-7", "8-14", "15-30", "30+"], 0)

    # Staff and the worker see every team.
    for headers in (
        intake.staff(),
        intake.as_(team="risk-mining", role=Role.SYSTEM, subject="worker"),
    ):
        everything = await intake.ok(headers)
        teams = {g["team"] for g in everything["groups"]}
        assert {unique_team, other_team} <= teams
        assert other in {item["id"] for item in (await intake.ok(headers, limit=1000))["stale"]}


async def test_business_days_follow_the_calendar(intake: AgingIntake, unique_team: str) -> None:
    # Filed Monday 23rd in Kolkata; seen Monday 30th: Tue 24 (holiday) and the weekend skipped.
    at = datetime(2026, 11, 30, 6, 30, tzinfo=UTC)  # 12:00 in Kolkata
    filed = await intake.seed(team=unique_team, days_old=7, at=at, assignee="alice")
    report = await intake.ok(
        intake.staff(), team=unique_team, calendar=INDIA, at=at.isoformat(), stale_business_days=4
    )
    assert report["as_of_date"] == "2026-11-30"
    assert report["timezone"] == "Asia/Kolkata"
    assert report["buckets"]["3-7"] == 1
    assert [(i["id"], i["age_business_days"]) for i in report["stale"]] == [(filed, 4)]
    stricter = await intake.ok(
        intake.staff(), team=unique_team, calendar=INDIA, at=at.isoformat(), stale_business_days=5
    )
    assert stricter["stale"] == []


async def test_the_stale_threshold_defaults_to_the_setting(
    make_settings: Callable[..., Settings],
    identity_headers: Callable[..., dict[str, str]],
    unique_team: str,
) -> None:
    settings = make_settings(aging_stale_business_days=2)
    async with running_intake(settings, identity_headers) as intake:
        one = await intake.seed(team=unique_team, days_old=1)
        two = await intake.seed(team=unique_team, days_old=2)
        report = await intake.ok(intake.staff(), team=unique_team)
        assert report["stale_business_days"] == 2
        assert [item["id"] for item in report["stale"]] == [two]
        assert one not in {item["id"] for item in report["stale"]}


def test_the_default_setting_is_five_business_days() -> None:
    assert Settings().aging_stale_business_days == 5


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"calendar": {"timezone": "Mars/Olympus", "always_open": True}}, "body.calendar.timezone"),
        ({"calendar": {"timezone": "UTC", "hours": {"mon": [["18:00", "09:00"]]}}}, None),
        ({"calendar": None}, "body.calendar"),
        ({"stale_business_days": 0}, "body.stale_business_days"),
        ({"stale_business_days": 366}, "body.stale_business_days"),
        ({"limit": 1001}, "body.limit"),
        ({"bucket": "31+"}, "body.bucket"),
        ({"assignee": "alice", "unassigned": True}, "body"),
        ({"at": "2026-11-30T12:00:00"}, "body.at"),
        ({"team": "bad\u0001team"}, "body.team"),
        ({"colour": "red"}, "body.colour"),
    ],
)
async def test_bad_queries_are_422_problems(
    intake: AgingIntake, body: dict[str, Any], field: str | None
) -> None:
    problem = assert_problem(await intake.report(intake.staff(), **body), 422)
    if field is not None:
        assert field in {error["field"] for error in problem["errors"]}, problem


async def test_a_call_without_identity_is_refused(intake: AgingIntake) -> None:
    response = await intake.http.post(AGING, json={"calendar": ALWAYS_UTC})
    assert_problem(response, 401)
    assert_problem(await intake.http.get(AGING, headers=intake.staff()), 405)


async def test_the_stale_list_has_its_index(intake: AgingIntake) -> None:
    def indexes(connection: Any) -> dict[str, list[str]]:
        return {
            index["name"]: index["column_names"]
            for index in inspect(connection).get_indexes("request")
        }

    async with intake.runtime.engine.connect() as connection:
        found = await connection.run_sync(indexes)
    assert found["ix_request_status_updated_at_id"] == ["status", "updated_at", "id"]


async def test_the_index_migration_goes_down_and_up_alone(
    intake: AgingIntake, settings: Settings
) -> None:
    def names(connection: Any) -> set[str]:
        return {index["name"] for index in inspect(connection).get_indexes("request")}

    async def current() -> set[str]:
        async with intake.runtime.engine.connect() as connection:
            return await connection.run_sync(names)

    url = settings.database_url_of("intake")
    # Only this branch (intake_0005) goes down; the other heads stay where they are.
    await asyncio.to_thread(
        downgrade, service="intake", database_url=url, revision="intake_0005@intake_0002"
    )
    try:
        assert "ix_request_status_updated_at_id" not in await current()
        assert "ix_request_status_id" in await current()
    finally:
        await asyncio.to_thread(upgrade, service="intake", database_url=url)
    assert "ix_request_status_updated_at_id" in await current()


async def test_many_rows_are_aged_quickly(intake: AgingIntake, unique_team: str) -> None:
    # 300 stale rows: the ages come from one calendar walk, not one per row.
    for index in range(300):
        await intake.seed(team=unique_team, days_old=index % 200 + 5, idle_days=index % 40 + 5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    report = await intake.ok(
        intake.staff(), team=unique_team, calendar=INDIA, limit=1000, stale_business_days=1
    )
    assert loop.time() - started < 5
    assert report["open_count"] == 300
    assert report["stale_count"] == len(report["stale"]) == 300
