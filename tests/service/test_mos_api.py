"""The MO repository of the sop service in-process on each backend: MOs with indicators, impact and
links (rules that catch them, requests, escalations), the status machine, similarity search ranked
by rapidfuzz scores, and refusals as problem+json."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.common.identity import Role
from services.common.migrations import upgrade
from services.common.settings import Settings
from services.sop.app import create_app
from tests.service.test_rules_api import assert_problem, rid


@dataclass
class Repo:
    http: httpx.AsyncClient
    as_: Callable[..., dict[str, str]]
    team: str

    @property
    def analyst(self) -> dict[str, str]:
        return self.as_(team="risk-mining", role=Role.ANALYST, subject="key-analyst")

    async def mo(self, **fields: Any) -> dict[str, Any]:
        response = await self.http.post(
            "/api/v1/mos", json={"team": self.team, **fields}, headers=self.analyst
        )
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def rule(self) -> str:
        rule_id = rid("MO-RULE")
        body = {"id": rule_id, "name": "r", "owner": "o", "team": self.team}
        response = await self.http.post("/api/v1/rules", json=body, headers=self.analyst)
        assert response.status_code == 201, response.text
        return rule_id


@pytest.fixture
async def repo(
    settings: Settings, identity_headers: Callable[..., dict[str, str]], unique_team: str
) -> AsyncIterator[Repo]:
    await asyncio.to_thread(upgrade, service="sop", database_url=settings.database_url_of("sop"))
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sop") as http,
    ):
        yield Repo(http=http, as_=identity_headers, team=unique_team)


CORPUS = [
    {
        "name": "Coupon abuse ring",
        "summary": "Organised groups create accounts to redeem first-order coupons repeatedly.",
        "indicators": {
            "signals": ["Coupon redemption burst", "shared device id"],
            "behaviours": ["new account farming"],
            "entity_types": ["account", "device"],
        },
    },
    {
        "name": "Account takeover via SIM swap",
        "summary": "Phone numbers are ported to take over accounts and change payout details.",
        "indicators": {
            "signals": ["password reset after sim change"],
            "behaviours": ["payout change"],
            "entity_types": ["account", "phone"],
        },
    },
    {
        "name": "Gift card drain",
        "summary": "Stolen cards buy gift cards that are drained within minutes.",
        "indicators": {
            "signals": ["gift card redemption velocity"],
            "behaviours": ["card testing"],
            "entity_types": ["payment instrument"],
        },
    },
]


async def test_similar_mos_are_ranked_by_score(repo: Repo) -> None:
    created = [await repo.mo(**mo) for mo in CORPUS]
    coupon, ato, gift = (m["id"] for m in created)

    response = await repo.http.get(
        "/api/v1/mos/similar",
        params={"q": "coupon redemption abuse with new accounts", "min_score": 0},
        headers=repo.analyst,
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    mine = [i for i in items if i["mo"]["team"] == repo.team]
    assert [i["mo"]["id"] for i in mine][:1] == [coupon]
    scores = [i["similarity"]["score"] for i in items]
    assert scores == sorted(scores, reverse=True)
    best = mine[0]["similarity"]
    assert best["score"] > 60
    assert set(best) == {"score", "name", "summary", "indicators"}
    assert {i["mo"]["id"]: i["similarity"]["score"] for i in mine}[gift] < best["score"]
    # min_score leaves the weak matches out.
    strict = await repo.http.get(
        "/api/v1/mos/similar",
        params={"q": "coupon redemption abuse with new accounts", "min_score": 60},
        headers=repo.analyst,
    )
    assert coupon in [i["mo"]["id"] for i in strict.json()["items"]]
    assert ato not in [i["mo"]["id"] for i in strict.json()["items"]]

    # An MO found again: its near-duplicate ranks first, the MO itself is left out.
    again = await repo.mo(
        name="Coupon abuse (new account rings)",
        summary="Rings of freshly created accounts redeem first-order coupons again and again.",
        indicators={"signals": ["coupon redemption burst"], "entity_types": ["account"]},
    )
    similar = await repo.http.get(
        f"/api/v1/mos/{again['id']}/similar", params={"limit": 3}, headers=repo.analyst
    )
    assert similar.status_code == 200, similar.text
    ranked = [i["mo"]["id"] for i in similar.json()["items"]]
    assert again["id"] not in ranked
    assert ranked[0] == coupon

    # A partner's search only ever sees its own team's MOs.
    stranger = repo.as_(team="someone-else", role=Role.PARTNER)
    theirs = await repo.http.get(
        "/api/v1/mos/similar", params={"q": "coupon abuse"}, headers=stranger
    )
    assert all(i["mo"]["team"] == "someone-else" for i in theirs.json()["items"])
    assert_problem(await repo.http.get(f"/api/v1/mos/{coupon}/similar", headers=stranger), 404)


async def test_mos_link_to_rules_requests_and_escalations_and_move_through_statuses(
    repo: Repo,
) -> None:
    catcher, other = await repo.rule(), await repo.rule()
    first_seen = (datetime.now(UTC) - timedelta(days=10)).isoformat()
    mo = await repo.mo(
        name="Refund abuse",
        summary="Claims of items not received",
        indicators={"signals": ["INR claims", "inr claims"], "behaviours": ["  Serial   refunds "]},
        first_seen_at=first_seen,
        impact={"accounts_affected": 120, "money_at_risk_per_week": "2500.50", "currency": "EUR"},
        rule_ids=[catcher, catcher],
        request_ids=[42, 7],
        escalation_ids=[3],
    )
    assert mo["status"] == "suspected"
    assert mo["indicators"] == {
        "signals": ["inr claims"],
        "behaviours": ["serial refunds"],
        "entity_types": [],
    }
    assert mo["impact"]["money_at_risk_per_week"] == "2500.50"
    assert (mo["rule_ids"], mo["request_ids"], mo["escalation_ids"]) == ([catcher], [7, 42], [3])
    rule = (await repo.http.get(f"/api/v1/rules/{catcher}", headers=repo.analyst)).json()
    assert rule["mo_ids"] == [mo["id"]]

    for params in ({"rule_id": catcher}, {"request_id": 42}, {"escalation_id": 3}):
        found = await repo.http.get("/api/v1/mos", params=params, headers=repo.analyst)
        assert [m["id"] for m in found.json()["items"]] == [mo["id"]], params
    none = await repo.http.get("/api/v1/mos", params={"request_id": 43}, headers=repo.analyst)
    assert [m for m in none.json()["items"] if m["team"] == repo.team] == []

    url = f"/api/v1/mos/{mo['id']}"
    confirmed = await repo.http.patch(
        url, json={"status": "confirmed", "rule_ids": [catcher, other]}, headers=repo.analyst
    )
    assert confirmed.status_code == 200, confirmed.text
    assert (confirmed.json()["status"], confirmed.json()["version"]) == ("confirmed", 2)
    assert confirmed.json()["rule_ids"] == sorted([catcher, other])
    by_rule = await repo.http.get("/api/v1/rules", params={"mo_id": mo["id"]}, headers=repo.analyst)
    assert sorted(r["id"] for r in by_rule.json()["items"]) == sorted([catcher, other])
    back = assert_problem(
        await repo.http.patch(url, json={"status": "suspected"}, headers=repo.analyst),
        409,
        "invalid-transition",
    )
    assert back["allowed_actions"] == ["mitigated"]
    mitigated = await repo.http.patch(
        url, json={"status": "mitigated", "impact": None}, headers=repo.analyst
    )
    assert (mitigated.json()["status"], mitigated.json()["impact"]) == ("mitigated", None)

    pages: list[int] = []
    cursor = None
    for _ in range(3):
        await repo.mo(name="filler")
    while True:
        params: dict[str, Any] = {
            "team": repo.team,
            "limit": 2,
            **({"cursor": cursor} if cursor else {}),
        }
        page = (await repo.http.get("/api/v1/mos", params=params, headers=repo.analyst)).json()
        pages += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == sorted(pages, reverse=True)
    assert len(pages) == 4


async def test_recording_an_mo_honours_idempotency_keys(repo: Repo) -> None:
    body = {"name": "Returns fraud", "team": repo.team}
    headers = {**repo.analyst, "Idempotency-Key": "mo-create-1"}
    first = await repo.http.post("/api/v1/mos", json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = await repo.http.post("/api/v1/mos", json=body, headers=headers)
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == f"/api/v1/mos/{first.json()['id']}"
    listed = await repo.http.get("/api/v1/mos", params={"team": repo.team}, headers=repo.analyst)
    assert [m["id"] for m in listed.json()["items"]] == [first.json()["id"]]
    assert_problem(
        await repo.http.post("/api/v1/mos", json={**body, "name": "other"}, headers=headers),
        422,
        "idempotency-key-reused",
    )


async def test_mo_refusals_are_problem_documents(repo: Repo) -> None:
    mo = await repo.mo(name="Triangulation fraud")
    partner = repo.as_(team=repo.team, role=Role.PARTNER)
    stranger = repo.as_(team="someone-else", role=Role.PARTNER)
    assert (await repo.http.get(f"/api/v1/mos/{mo['id']}", headers=partner)).status_code == 200
    assert_problem(await repo.http.get(f"/api/v1/mos/{mo['id']}", headers=stranger), 404)
    assert_problem(await repo.http.get("/api/v1/mos/999999999", headers=repo.analyst), 404)
    assert_problem(await repo.http.get("/api/v1/mos/0", headers=repo.analyst), 422)
    assert_problem(
        await repo.http.post("/api/v1/mos", json={"name": "x", "team": repo.team}, headers=partner),
        403,
    )
    assert_problem(
        await repo.http.patch(f"/api/v1/mos/{mo['id']}", json={"name": "y"}, headers=partner), 403
    )
    for body, field in [
        ({"name": "x"}, "body.team"),
        ({"name": "x", "team": repo.team, "status": "solved"}, "body.status"),
        (
            {"name": "x", "team": repo.team, "impact": {"money_at_risk_per_week": "5"}},
            "body.impact",
        ),
        (
            {
                "name": "x",
                "team": repo.team,
                "first_seen_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
            },
            "body.first_seen_at",
        ),
        ({"name": "x", "team": repo.team, "request_ids": [0]}, "body.request_ids.0"),
        (
            {"name": "x", "team": repo.team, "indicators": {"signals": [""]}},
            "body.indicators.signals.0",
        ),
    ]:
        problem = assert_problem(
            await repo.http.post("/api/v1/mos", json=body, headers=repo.analyst), 422
        )
        assert any(e["field"].startswith(field) for e in problem["errors"]), problem
    unknown = assert_problem(
        await repo.http.post(
            "/api/v1/mos",
            json={"name": "x", "team": repo.team, "rule_ids": ["no-such-rule"]},
            headers=repo.analyst,
        ),
        422,
    )
    assert unknown["errors"][0]["field"] == "body.rule_ids"
    assert_problem(
        await repo.http.patch(f"/api/v1/mos/{mo['id']}", json={"name": None}, headers=repo.analyst),
        422,
    )
    assert_problem(await repo.http.get("/api/v1/mos/similar", headers=repo.analyst), 422)
    assert_problem(
        await repo.http.get(
            "/api/v1/mos/similar", params={"q": "ab", "min_score": 101}, headers=repo.analyst
        ),
        422,
    )
    assert_problem(
        await repo.http.get("/api/v1/mos", params={"cursor": "bad"}, headers=repo.analyst), 422
    )
