"""`GET /api/v1/stats/sops` on each backend: real rows with chosen instants, the expected
aggregates computed by hand (parity by the same rule as `GET /parity`); staff only and 422s."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.common.db import utcnow
from services.common.identity import Role
from services.common.service_app import ServiceRuntime
from services.common.settings import Settings
from services.sop.app import create_app
from services.sop.rules.models import Rule, RuleDeprecation
from services.sop.sops.models import Org, Sop, SopAdoption, SopRollout, SopRolloutOrg, SopVersion
from tests.service.sop_stack import assert_problem, migrate_sop

STATS = "/api/v1/stats/sops"
WEEK = "2021-W10"
MONDAY = datetime(2021, 3, 8, tzinfo=UTC)
DAY = timedelta(days=1)


@dataclass
class Running:
    http: httpx.AsyncClient
    runtime: ServiceRuntime
    as_: Callable[..., dict[str, str]]

    async def add(self, *rows: Any) -> None:
        async with self.runtime.sessionmaker() as session:
            for row in rows:
                session.add(row)
                await session.flush()
            await session.commit()

    async def stats(self, **params: Any) -> dict[str, Any]:
        headers = self.as_(team="risk-mining", role=Role.ADMIN)
        response = await self.http.get(STATS, params=params, headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
async def sop(
    settings: Settings, identity_headers: Callable[..., dict[str, str]]
) -> AsyncIterator[Running]:
    await migrate_sop(settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sop") as http:
            yield Running(http, app.state.runtime, identity_headers)


def a_sop(team: str, **fields: Any) -> Sop:
    values: dict[str, Any] = {
        "key": f"SOP-{uuid.uuid4().hex[:12]}",
        "title": "t",
        "owning_team": team,
        "owner": "olga",
        "approval_policy": {},
        "review_interval_days": 90,
        "next_review_at": MONDAY + 100 * DAY,
        "created_by": "seed",
        "created_at": MONDAY - 100 * DAY,
        "updated_at": MONDAY - 100 * DAY,
        **fields,
    }
    return Sop(**values)


def version(sop_id: int, number: int, **fields: Any) -> SopVersion:
    values: dict[str, Any] = {
        "sop_id": sop_id,
        "number": number,
        "status": "approved",
        "content": "",
        "change_summary": "",
        "author": "ana",
        "review_round": 1,
        "created_at": MONDAY - 10 * DAY,
        "updated_at": MONDAY - 10 * DAY,
        **fields,
    }
    return SopVersion(**values)


async def test_every_number_of_a_week_by_hand(sop: Running, unique_team: str) -> None:
    team = unique_team
    orgs = [
        Org(id=f"{team}-{name}", name=name, kind="site", lead_subject="lead", created_at=MONDAY)
        for name in ("in", "cr", "sj")
    ]
    await sop.add(*orgs)
    # SOP 1: newest effective v2; org in adopted v2, cr v1, sj targeted by a rollout only.
    # SOP 2: effective v1, org in adopted it. SOP 3: nothing effective (no pairs counted).
    # Parity = 2 at parity / 4 pairs.
    one, two, three = (
        a_sop(team, effective_version=2, next_review_at=MONDAY + 3 * DAY),
        a_sop(team, effective_version=1, next_review_at=MONDAY - 5 * DAY),
        a_sop(team, next_review_at=MONDAY + 8 * DAY),
    )
    await sop.add(one, two, three)
    # Versions: approved in the week after 2 h, 4 h, 10 h under review; one submitted in the
    # week and not approved; one approved the week before.
    v = [
        version(one.id, 1, submitted_at=MONDAY - 9 * DAY, approved_at=MONDAY - 8 * DAY),
        version(one.id, 2, submitted_at=MONDAY, approved_at=MONDAY + timedelta(hours=2)),
        version(two.id, 1, submitted_at=MONDAY - DAY, approved_at=MONDAY + timedelta(hours=3)),
        version(
            three.id,
            1,
            submitted_at=MONDAY + DAY,
            approved_at=MONDAY + DAY + timedelta(hours=10),
        ),
        version(three.id, 2, status="in_review", submitted_at=MONDAY + 2 * DAY),
    ]
    await sop.add(*v)
    rollout = SopRollout(
        sop_id=one.id,
        version_id=v[1].id,
        version_number=2,
        status="in_progress",
        reminder_interval_seconds=3600,
        created_by="pm",
        created_at=MONDAY,
    )
    await sop.add(rollout)

    def target(org: Org, **fields: Any) -> SopRolloutOrg:
        values: dict[str, Any] = {
            "rollout_id": rollout.id,
            "org_id": org.id,
            "wave": 1,
            "starts_at": MONDAY,
            "due_at": MONDAY + 2 * DAY,
            "reminders_sent": 0,
            "late": False,
            **fields,
        }
        return SopRolloutOrg(**values)

    await sop.add(
        target(orgs[0], acknowledged_at=MONDAY + DAY),
        target(orgs[1], acknowledged_at=MONDAY + 9 * DAY),  # late: overdue at the week's end
        target(orgs[2]),  # never acknowledged: overdue
        SopAdoption(sop_id=one.id, org_id=orgs[0].id, version_number=2, adopted_at=MONDAY),
        SopAdoption(sop_id=one.id, org_id=orgs[1].id, version_number=1, adopted_at=MONDAY),
        SopAdoption(sop_id=two.id, org_id=orgs[0].id, version_number=1, adopted_at=MONDAY),
    )
    # Rules: two deprecated and one retained in the week, one deprecated the week after.
    rules = [
        Rule(
            id=f"{team}-r{i}",
            name="r",
            owner="o",
            team=team,
            description="",
            status="deprecated",
            deployed_at=MONDAY - 300 * DAY,
            version=1,
            created_by="seed",
            created_at=MONDAY - 300 * DAY,
            updated_at=MONDAY,
        )
        for i in range(4)
    ]
    await sop.add(*rules)
    for rule, outcome, finished in (
        (rules[0], "deprecated", MONDAY + DAY),
        (rules[1], "deprecated", MONDAY + 6 * DAY),
        (rules[2], "retained", MONDAY + 2 * DAY),
        (rules[3], "deprecated", MONDAY + 7 * DAY),
    ):
        await sop.add(
            RuleDeprecation(
                rule_id=rule.id,
                stage=outcome,
                reason="no hits",
                proposed_by="pm",
                proposed_at=MONDAY - 30 * DAY,
                monitoring_seconds=60,
                criteria={},
                outcome=outcome,
                finished_at=finished,
            )
        )

    body = await sop.stats(week=WEEK, team=team)
    assert (body["versions_submitted"], body["versions_approved"]) == (3, 3)
    # 2 h, 27 h (submitted the Sunday before), 10 h: p50 10 h, p90 = 10 + 0.8 * 17 = 23.6 h.
    assert body["approval_cycle_time"] == {
        "count": 3,
        "p50_seconds": 36000.0,
        "p90_seconds": 84960.0,
    }
    assert body["reviews_overdue"] == 2  # reviews due the week before and on Thursday
    assert body["acknowledgements_overdue"] == 2
    parity = body["parity"]
    assert (parity["pairs"], parity["at_parity"], parity["parity"]) == (4, 2, 0.5)
    assert body["rules"] == {"deprecated": 2, "retained": 1}
    # The same parity through `GET /parity` (the rule it must agree with).
    response = await sop.http.get(
        "/api/v1/parity", headers=sop.as_(team="risk-mining", role=Role.ADMIN)
    )
    assert response.status_code == 200, response.text
    listed = [s for s in response.json()["sops"] if s["sop_id"] in (one.id, two.id)]
    pairs = sum(len(s["orgs"]) for s in listed)
    at = sum(o["at_parity"] for s in listed for o in s["orgs"])
    assert (pairs, at) == (4, 2)
    assert parity["computed_at"] <= utcnow().isoformat().replace("+00:00", "Z")


async def test_only_staff_and_bad_periods(sop: Running) -> None:
    for role in (Role.PARTNER, Role.APPROVER):
        response = await sop.http.get(
            STATS, params={"week": WEEK}, headers=sop.as_(team="buyer-risk", role=role)
        )
        assert_problem(response, 403)
    staff = sop.as_(team="risk-mining", role=Role.ANALYST)
    for params in ({"week": "2021-W00"}, {"to": "2021-03-08"}, {"week": WEEK, "team": ""}):
        response = await sop.http.get(STATS, params=params, headers=staff)
        assert_problem(response, 422)
