"""`GET /api/v1/stats/escalations` on each backend: real rows with chosen instants, the expected
aggregates computed by hand; staff-only access and 422s."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.common.identity import Role
from services.common.service_app import ServiceRuntime
from services.common.settings import Settings
from services.escalation.action_items.models import ActionItem
from services.escalation.app import create_app
from services.escalation.gaps.models import Gap
from services.escalation.models import Escalation
from tests.service.test_escalation_api import assert_problem, migrate

STATS = "/api/v1/stats/escalations"
WEEK = "2021-W10"
MONDAY = datetime(2021, 3, 8, tzinfo=UTC)
DAY = timedelta(days=1)


@dataclass
class Running:
    http: httpx.AsyncClient
    runtime: ServiceRuntime
    as_: Callable[..., dict[str, str]]

    async def add(self, row: Any) -> int:
        async with self.runtime.sessionmaker() as session:
            session.add(row)
            await session.commit()
            return int(row.id)

    async def stats(self, **params: Any) -> dict[str, Any]:
        headers = self.as_(team="risk-mining", role=Role.PROGRAM_MANAGER)
        response = await self.http.get(STATS, params=params, headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
async def esc(
    settings: Settings, identity_headers: Callable[..., dict[str, str]]
) -> AsyncIterator[Running]:
    await migrate(settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://escalation") as http:
            yield Running(http, app.state.runtime, identity_headers)


def escalation(team: str, **fields: Any) -> Escalation:
    values: dict[str, Any] = {
        "team": team,
        "source": "sev2_ticket",
        "severity": "sev2",
        "title": "t",
        "summary": "",
        "owner": "olga",
        "customer_impact": "",
        "business_impact": "",
        "timeline": [],
        "status": "open",
        "rca_version": 0,
        "created_by": "seed",
        "version": 1,
        "created_at": MONDAY,
        **fields,
    }
    values.setdefault("updated_at", values["created_at"])
    return Escalation(**values)


def item(escalation_id: int, **fields: Any) -> ActionItem:
    values: dict[str, Any] = {
        "escalation_id": escalation_id,
        "title": "fix",
        "description": "",
        "owner": "ana",
        "priority": "P2",
        "calendar": {},
        "status": "open",
        "created_by": "seed",
        "version": 1,
        "created_at": MONDAY,
        **fields,
    }
    values.setdefault("updated_at", values["created_at"])
    return ActionItem(**values)


def week_of(at: datetime) -> str:
    year, week, _ = at.isocalendar()
    return f"{year}-W{week:02d}"


def gap(team: str, identified: datetime, **fields: Any) -> Gap:
    values: dict[str, Any] = {
        "title": "gap",
        "description": "",
        "owning_team": team,
        "status": "identified",
        "identified_at": identified,
        "identified_week": week_of(identified),
        "created_by": "seed",
        "version": 1,
        "created_at": identified,
        "updated_at": identified,
        **fields,
    }
    return Gap(**values)


async def test_every_number_of_a_week_by_hand(esc: Running, unique_team: str) -> None:
    team = unique_team
    # Opened in the week: two sev2 tickets, one executive; one the week before, one after.
    first = await esc.add(escalation(team, created_at=MONDAY + DAY))
    await esc.add(escalation(team, created_at=MONDAY + 2 * DAY))
    await esc.add(escalation(team, source="executive", severity="exec", created_at=MONDAY))
    await esc.add(escalation(f"{team}-x", created_at=MONDAY))
    # Closed in the week after 1 h, 3 h and 10 h open; one closed after the week (still open
    # at its end).
    for hours in (1, 3, 10):
        await esc.add(
            escalation(
                team,
                status="closed",
                created_at=MONDAY - 2 * DAY,
                closed_at=MONDAY - 2 * DAY + timedelta(hours=hours),
            )
        )
    await esc.add(
        escalation(team, status="closed", created_at=MONDAY - DAY, closed_at=MONDAY + 9 * DAY)
    )
    await esc.add(escalation(team, created_at=MONDAY + 8 * DAY))
    # Action items: two overdue at the week's end (one completed only after it), one done in
    # time, one due after the week.
    await esc.add(item(first, due_at=MONDAY + 2 * DAY))
    await esc.add(
        item(first, due_at=MONDAY + 3 * DAY, status="done", completed_at=MONDAY + 10 * DAY)
    )
    await esc.add(
        item(first, due_at=MONDAY + 3 * DAY, status="done", completed_at=MONDAY + 2 * DAY)
    )
    await esc.add(item(first, due_at=MONDAY + 20 * DAY, created_at=MONDAY - 5 * DAY))
    # Gaps: two identified this week (one quantified too), one closed this week.
    await esc.add(gap(team, MONDAY + DAY))
    await esc.add(gap(team, MONDAY + 2 * DAY, quantified_at=MONDAY + 3 * DAY, quantified_week=WEEK))
    await esc.add(gap(team, MONDAY - 30 * DAY, closed_at=MONDAY + DAY, closed_week=WEEK))

    body = await esc.stats(week=WEEK, team=team)
    assert body["opened"] == 3
    assert body["opened_by_source_severity"] == [
        {"source": "executive", "severity": "exec", "count": 1},
        {"source": "sev2_ticket", "severity": "sev2", "count": 2},
    ]
    assert body["closed"] == 0  # all three closed the week before
    before = await esc.stats(week="2021-W09", team=team)
    assert before["closed"] == 3
    # 1, 3, 10 h: p50 3 h, p90 = 3 + 0.8 * 7 = 8.6 h.
    assert before["closure_time"] == {"count": 3, "p50_seconds": 10800.0, "p90_seconds": 30960.0}
    # Open at the week's end: 3 opened in it + 1 the day before (closed later).
    assert body["open"] == 4
    assert body["action_items"] == {"created": 3, "completed": 1, "overdue": 2}
    assert body["gaps"] == {"identified": 2, "quantified": 1, "closed": 1}


async def test_only_staff_and_bad_periods(esc: Running) -> None:
    for role in (Role.PARTNER, Role.APPROVER):
        response = await esc.http.get(
            STATS, params={"week": WEEK}, headers=esc.as_(team="buyer-risk", role=role)
        )
        assert_problem(response, 403)
    staff = esc.as_(team="risk-mining", role=Role.ANALYST)
    for params in ({"week": "2021-W99"}, {"from": "2021-03-08"}, {"week": WEEK, "team": "a\x01"}):
        response = await esc.http.get(STATS, params=params, headers=staff)
        assert_problem(response, 422)
    assert date.fromisoformat("2021-03-08") == MONDAY.date()
