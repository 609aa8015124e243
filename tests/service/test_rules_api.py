"""The rule inventory of the sop service in-process (ASGITransport + lifespan) on each backend:
rules and their MO links, weekly metrics (idempotent per rule and week, bulk), deprecation
candidates, and every refusal as problem+json. The deprecation workflow itself is exercised in
tests/workflows/test_rule_deprecation.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.common.identity import Role
from services.common.migrations import upgrade
from services.common.settings import Settings
from services.sop.app import create_app

PROBLEM = "application/problem+json"


def monday(days_ago: int = 0) -> date:
    """The Monday of the week `days_ago` days back."""
    day = datetime.now(UTC).date() - timedelta(days=days_ago)
    return day - timedelta(days=day.weekday())


def rid(prefix: str = "R") -> str:
    """A rule id no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def assert_problem(
    response: httpx.Response, status: int, slug: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if slug is not None:
        assert body["type"].endswith("/" + slug), body
    return body


@dataclass
class Sop:
    http: httpx.AsyncClient
    as_: Callable[..., dict[str, str]]
    team: str

    @property
    def analyst(self) -> dict[str, str]:
        return self.as_(team="risk-mining", role=Role.ANALYST, subject="key-analyst")

    async def rule(self, **fields: Any) -> dict[str, Any]:
        body = {"id": rid(), "name": "ATO velocity", "owner": "ana", "team": self.team, **fields}
        response = await self.http.post("/api/v1/rules", json=body, headers=self.analyst)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def mo(self, **fields: Any) -> dict[str, Any]:
        body = {"name": "Coupon abuse ring", "team": self.team, **fields}
        response = await self.http.post("/api/v1/mos", json=body, headers=self.analyst)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def metric(self, rule_id: str, **fields: Any) -> httpx.Response:
        body = {"week_start": monday().isoformat(), "hits": 0, **fields}
        return await self.http.post(
            f"/api/v1/rules/{rule_id}/metrics", json=body, headers=self.analyst
        )


@pytest.fixture
async def sop(
    settings: Settings, identity_headers: Callable[..., dict[str, str]], unique_team: str
) -> AsyncIterator[Sop]:
    await asyncio.to_thread(upgrade, service="sop", database_url=settings.database_url_of("sop"))
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sop") as http,
    ):
        yield Sop(http=http, as_=identity_headers, team=unique_team)


async def test_rules_are_created_read_listed_changed_and_link_to_mos(sop: Sop) -> None:
    mo = await sop.mo(summary="Stolen coupons resold")
    deployed = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    rule_id = rid("BR-ATO")
    response = await sop.http.post(
        "/api/v1/rules",
        json={
            "id": rule_id,
            "name": "  Coupon redemption burst  ",
            "owner": "ana",
            "team": sop.team,
            "description": "Fires on >20 redemptions/hour",
            "mo_ids": [mo["id"], mo["id"]],
            "deployed_at": deployed,
        },
        headers=sop.analyst,
    )
    assert response.status_code == 201, response.text
    rule = response.json()
    assert response.headers["location"] == f"/api/v1/rules/{rule_id}"
    assert (rule["name"], rule["status"], rule["version"]) == (
        "Coupon redemption burst",
        "active",
        1,
    )
    assert rule["mo_ids"] == [mo["id"]]
    assert rule["last_fired_at"] is None
    assert (await sop.http.get(f"/api/v1/rules/{rule_id}", headers=sop.analyst)).json() == rule

    # The MO lists the rule that catches it: one link, read from both sides.
    mo_now = (await sop.http.get(f"/api/v1/mos/{mo['id']}", headers=sop.analyst)).json()
    assert mo_now["rule_ids"] == [rule_id]

    other = await sop.rule(name="Device farm")
    third = await sop.rule(name="Gift card drain")
    listed = await sop.http.get(
        "/api/v1/rules", params={"team": sop.team, "limit": 2}, headers=sop.analyst
    )
    assert listed.status_code == 200, listed.text
    first_page = listed.json()
    assert len(first_page["items"]) == 2
    assert first_page["next_cursor"]
    rest = await sop.http.get(
        "/api/v1/rules",
        params={"team": sop.team, "limit": 2, "cursor": first_page["next_cursor"]},
        headers=sop.analyst,
    )
    ids = [r["id"] for r in first_page["items"] + rest.json()["items"]]
    assert ids == sorted([rule_id, other["id"], third["id"]])
    by_mo = await sop.http.get("/api/v1/rules", params={"mo_id": mo["id"]}, headers=sop.analyst)
    assert [r["id"] for r in by_mo.json()["items"]] == [rule_id]

    patched = await sop.http.patch(
        f"/api/v1/rules/{other['id']}",
        json={"owner": "bo", "mo_ids": [mo["id"]], "merged_into": rule_id},
        headers=sop.analyst,
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["owner"], patched.json()["merged_into"]) == ("bo", rule_id)
    assert patched.json()["version"] == 2
    mo_now = (await sop.http.get(f"/api/v1/mos/{mo['id']}", headers=sop.analyst)).json()
    assert mo_now["rule_ids"] == sorted([rule_id, other["id"]])
    unlinked = await sop.http.patch(
        f"/api/v1/rules/{rule_id}", json={"mo_ids": []}, headers=sop.analyst
    )
    assert unlinked.json()["mo_ids"] == []
    mo_now = (await sop.http.get(f"/api/v1/mos/{mo['id']}", headers=sop.analyst)).json()
    assert mo_now["rule_ids"] == [other["id"]]


async def test_metrics_are_idempotent_per_rule_and_week(sop: Sop) -> None:
    rule = await sop.rule()
    week = monday(7).isoformat()
    fired = (datetime.now(UTC) - timedelta(days=6)).replace(microsecond=0)
    body = {"week_start": week, "hits": 12, "true_positive_rate": 0.5, "actioned_accounts": 4}
    first = await sop.metric(rule["id"], **body, last_fired_at=fired.isoformat())
    assert first.status_code == 201, first.text
    assert first.json()["result"] == "created"
    again = await sop.metric(rule["id"], **body, last_fired_at=fired.isoformat())
    assert (again.status_code, again.json()["result"]) == (200, "unchanged")
    assert again.json()["recorded_at"] == first.json()["recorded_at"]
    corrected = await sop.metric(
        rule["id"], **{**body, "hits": 13}, last_fired_at=fired.isoformat()
    )
    assert (corrected.status_code, corrected.json()["result"]) == (200, "replaced")

    listed = await sop.http.get(f"/api/v1/rules/{rule['id']}/metrics", headers=sop.analyst)
    assert [(m["week_start"], m["hits"]) for m in listed.json()["items"]] == [(week, 13)]
    now_rule = (await sop.http.get(f"/api/v1/rules/{rule['id']}", headers=sop.analyst)).json()
    assert datetime.fromisoformat(now_rule["last_fired_at"]) == fired

    other = await sop.rule()
    bulk = {
        "items": [
            {"rule_id": rule["id"], **{**body, "hits": 13}, "last_fired_at": fired.isoformat()},
            {"rule_id": rule["id"], "week_start": monday().isoformat(), "hits": 0},
            {"rule_id": other["id"], "week_start": week, "hits": 2, "true_positive_rate": 1.0},
        ]
    }
    posted = await sop.http.post("/api/v1/rules/metrics", json=bulk, headers=sop.analyst)
    assert posted.status_code == 200, posted.text
    result = posted.json()
    assert (result["created"], result["replaced"], result["unchanged"]) == (2, 0, 1)
    assert [i["result"] for i in result["items"]] == ["unchanged", "created", "created"]
    repeat = await sop.http.post("/api/v1/rules/metrics", json=bulk, headers=sop.analyst)
    assert repeat.json()["unchanged"] == 3
    # Hits without a firing time count as the end of their week (capped at now).
    other_now = (await sop.http.get(f"/api/v1/rules/{other['id']}", headers=sop.analyst)).json()
    assert other_now["last_fired_at"] is not None

    # All or nothing: an unknown rule refuses the whole batch and names the item.
    bad = {
        "items": [
            {"rule_id": other["id"], "week_start": monday(14).isoformat(), "hits": 1},
            {"rule_id": "no-such-rule", "week_start": week, "hits": 1},
        ]
    }
    problem = assert_problem(
        await sop.http.post("/api/v1/rules/metrics", json=bad, headers=sop.analyst),
        422,
        "validation-error",
    )
    assert [e["field"] for e in problem["errors"]] == ["body.items.1.rule_id"]
    weeks = await sop.http.get(f"/api/v1/rules/{other['id']}/metrics", headers=sop.analyst)
    assert [m["week_start"] for m in weeks.json()["items"]] == [week]
    dup = {"items": [bulk["items"][1], bulk["items"][1]]}
    problem = assert_problem(
        await sop.http.post("/api/v1/rules/metrics", json=dup, headers=sop.analyst), 422
    )
    assert [e["field"] for e in problem["errors"]] == ["body.items.0", "body.items.1"]


async def test_deprecation_candidates_follow_the_non_impacting_test(sop: Sop) -> None:
    long_ago = (datetime.now(UTC) - timedelta(days=200)).isoformat()
    never_fired = await sop.rule(name="never fired", deployed_at=long_ago)
    quiet = await sop.rule(name="quiet since spring", deployed_at=long_ago)
    await sop.metric(
        quiet["id"],
        week_start=monday(120).isoformat(),
        hits=3,
        true_positive_rate=0.9,
        last_fired_at=(datetime.now(UTC) - timedelta(days=120)).isoformat(),
    )
    busy = await sop.rule(name="busy and precise", deployed_at=long_ago)
    await sop.metric(
        busy["id"],
        week_start=monday(7).isoformat(),
        hits=40,
        true_positive_rate=0.8,
        last_fired_at=(datetime.now(UTC) - timedelta(days=5)).isoformat(),
    )
    noisy = await sop.rule(name="busy but noisy", deployed_at=long_ago)
    for weeks_back, (hits, rate) in enumerate([(100, 0.02), (50, 0.05)], start=1):
        response = await sop.metric(
            noisy["id"],
            week_start=monday(7 * weeks_back).isoformat(),
            hits=hits,
            true_positive_rate=rate,
            last_fired_at=(datetime.now(UTC) - timedelta(days=7 * weeks_back - 1)).isoformat(),
        )
        assert response.status_code == 201, response.text
    await sop.rule(name="deployed today")
    proposed = await sop.rule(name="already proposed", deployed_at=long_ago)
    response = await sop.http.post(
        f"/api/v1/rules/{proposed['id']}/deprecation",
        json={"reason": "no hits", "monitoring_seconds": 3600},
        headers=sop.analyst,
    )
    assert response.status_code == 201, response.text

    async def candidates(**params: Any) -> dict[str, list[str]]:
        response = await sop.http.get(
            "/api/v1/rules/deprecation-candidates",
            params={"team": sop.team, **params},
            headers=sop.analyst,
        )
        assert response.status_code == 200, response.text
        return {
            c["rule"]["id"]: [f["reason"] for f in c["findings"]] for c in response.json()["items"]
        }

    found = await candidates()
    assert found == {
        never_fired["id"]: ["no_hits"],
        quiet["id"]: ["no_hits"],
        noisy["id"]: ["low_precision"],
    }
    # The criteria are parameters: a 3-day window flags the busy rule too, a zero floor no one.
    assert busy["id"] in await candidates(no_hits_days=3)
    assert noisy["id"] not in await candidates(precision_floor=0.0)
    assert quiet["id"] not in await candidates(no_hits_days=150)
    # The quietest come first: never fired, then by when they last fired.
    ordered = list(await candidates())
    assert ordered[0] == never_fired["id"]
    assert ordered.index(quiet["id"]) < ordered.index(noisy["id"])

    # A partner sees only its own team's candidates.
    partner = sop.as_(team=sop.team, role=Role.PARTNER)
    mine = await sop.http.get("/api/v1/rules/deprecation-candidates", headers=partner)
    assert {c["rule"]["team"] for c in mine.json()["items"]} == {sop.team}
    stranger = sop.as_(team="someone-else", role=Role.PARTNER)
    theirs = await sop.http.get(
        "/api/v1/rules/deprecation-candidates", params={"team": sop.team}, headers=stranger
    )
    assert theirs.json()["items"] == []


async def test_refusals_are_problem_documents(sop: Sop) -> None:
    rule = await sop.rule()
    partner = sop.as_(team=sop.team, role=Role.PARTNER)
    stranger = sop.as_(team="someone-else", role=Role.PARTNER)
    approver = sop.as_(team="risk-mining", role=Role.APPROVER)

    assert_problem(await sop.http.get("/api/v1/rules"), 401, "unauthorized")
    # Partners and approvers read but never write the inventory.
    assert (await sop.http.get(f"/api/v1/rules/{rule['id']}", headers=partner)).status_code == 200
    assert (await sop.http.get(f"/api/v1/rules/{rule['id']}", headers=approver)).status_code == 200
    new = {"id": rid(), "name": "x", "owner": "o", "team": sop.team}
    assert_problem(
        await sop.http.post("/api/v1/rules", json=new, headers=partner), 403, "forbidden"
    )
    assert_problem(await sop.http.post("/api/v1/rules", json=new, headers=approver), 403)
    posted = await sop.http.post(
        f"/api/v1/rules/{rule['id']}/metrics",
        json={"week_start": monday().isoformat(), "hits": 1},
        headers=partner,
    )
    assert_problem(posted, 403)
    # Another team's rule does not exist for a partner.
    assert_problem(await sop.http.get(f"/api/v1/rules/{rule['id']}", headers=stranger), 404)
    listed = await sop.http.get("/api/v1/rules", params={"team": sop.team}, headers=stranger)
    assert listed.json()["items"] == []
    assert_problem(await sop.http.get("/api/v1/rules/nope-404", headers=sop.analyst), 404)

    for body, field in [
        ({**new, "id": "bad id!"}, "body.id"),
        ({**new, "surprise": 1}, "body.surprise"),
        ({**new, "name": "   "}, "body.name"),
        (
            {**new, "deployed_at": (datetime.now(UTC) + timedelta(days=2)).isoformat()},
            "body.deployed_at",
        ),
        ({**new, "mo_ids": [0]}, "body.mo_ids.0"),
    ]:
        problem = assert_problem(
            await sop.http.post("/api/v1/rules", json=body, headers=sop.analyst), 422
        )
        assert field in [e["field"] for e in problem["errors"]], problem
    problem = assert_problem(
        await sop.http.post(
            "/api/v1/rules", json={**new, "mo_ids": [2**31 - 2]}, headers=sop.analyst
        ),
        422,
    )
    assert problem["errors"][0]["field"] == "body.mo_ids"
    assert_problem(
        await sop.http.post("/api/v1/rules", json={**new, "id": rule["id"]}, headers=sop.analyst),
        409,
        "conflict",
    )
    assert_problem(
        await sop.http.post(
            "/api/v1/rules",
            content=b"{not json",
            headers={**sop.analyst, "content-type": "application/json"},
        ),
        400,
    )

    for body in [
        {"week_start": (monday() + timedelta(days=1)).isoformat(), "hits": 1},
        {"week_start": (monday() + timedelta(days=7)).isoformat(), "hits": 1},
        {"week_start": monday().isoformat(), "hits": -1},
        {"week_start": monday().isoformat(), "hits": 0, "true_positive_rate": 0.5},
        {"week_start": monday().isoformat(), "hits": 3, "true_positive_rate": 1.5},
    ]:
        assert_problem(await sop.metric(rule["id"], **body), 422, "validation-error")
    assert_problem(await sop.metric("no-such-rule"), 404)

    assert_problem(
        await sop.http.patch(
            f"/api/v1/rules/{rule['id']}", json={"replaced_by": rule["id"]}, headers=sop.analyst
        ),
        422,
    )
    assert_problem(
        await sop.http.patch(
            f"/api/v1/rules/{rule['id']}", json={"name": None}, headers=sop.analyst
        ),
        422,
    )
    assert_problem(
        await sop.http.patch(
            f"/api/v1/rules/{rule['id']}", json={"status": "deprecated"}, headers=sop.analyst
        ),
        422,
    )
    assert_problem(
        await sop.http.get("/api/v1/rules", params={"cursor": "garbage"}, headers=sop.analyst), 422
    )
    assert_problem(
        await sop.http.get(
            "/api/v1/rules/deprecation-candidates",
            params={"precision_floor": 2},
            headers=sop.analyst,
        ),
        422,
    )

    # Deprecation: proposal rules, then decisions refused by role and by stage.
    deprecation = f"/api/v1/rules/{rule['id']}/deprecation"
    assert_problem(await sop.http.post(deprecation, json={}, headers=sop.analyst), 422)
    assert_problem(
        await sop.http.post(
            deprecation,
            json={"reason": "x", "replaced_by": "a", "merged_into": "b"},
            headers=sop.analyst,
        ),
        422,
    )
    assert_problem(
        await sop.http.post(
            deprecation, json={"reason": "x", "replaced_by": "ghost"}, headers=sop.analyst
        ),
        422,
    )
    assert_problem(await sop.http.post(deprecation, json={"reason": "x"}, headers=partner), 403)
    assert_problem(await sop.http.get(deprecation, headers=sop.analyst), 404)
    keyed = {**sop.analyst, "Idempotency-Key": f"propose-{rule['id']}"}
    proposal = {"reason": "no hits in 90 days", "monitoring_seconds": 3600}
    proposed = await sop.http.post(deprecation, json=proposal, headers=keyed)
    assert proposed.status_code == 201, proposed.text
    # A retried proposal replays the first answer instead of a 409.
    replayed = await sop.http.post(deprecation, json=proposal, headers=keyed)
    assert (replayed.status_code, replayed.json()) == (201, proposed.json())
    assert replayed.headers["idempotent-replayed"] == "true"
    assert proposed.json()["stage"] == "proposed"
    assert proposed.json()["workflow_id"] == f"rule-deprecation-{rule['id']}"
    again = assert_problem(
        await sop.http.post(deprecation, json={"reason": "again"}, headers=sop.analyst),
        409,
        "invalid-transition",
    )
    assert (again["current_status"], again["allowed_actions"]) == (
        "deprecation_proposed",
        ["retain", "start_monitoring"],
    )
    decisions = f"{deprecation}/decisions"
    assert_problem(
        await sop.http.post(decisions, json={"decision": "approve"}, headers=sop.analyst), 403
    )
    assert_problem(
        await sop.http.post(decisions, json={"decision": "reject"}, headers=approver), 422
    )
    assert_problem(
        await sop.http.post(decisions, json={"decision": "maybe"}, headers=approver), 422
    )
    not_yet = assert_problem(
        await sop.http.post(decisions, json={"decision": "approve"}, headers=approver), 409
    )
    assert not_yet["stage"] == "proposed"
    # The worker's steps are refused to anyone but the system role.
    assert_problem(
        await sop.http.post(
            f"/internal/rules/{rule['id']}/deprecations/{proposed.json()['id']}/monitoring",
            headers=sop.as_(team="risk-mining", role=Role.ADMIN),
        ),
        403,
    )
