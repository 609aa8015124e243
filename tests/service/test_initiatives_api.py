"""OP1 initiatives on each backend, in-process (ASGITransport + lifespan): proposing (partner and
staff), the score, the life from proposed to measured with realised-versus-expected, PATCH with
If-Match, lists (filters, sorts, cursors), the roadmap, partner isolation, and every refusal as
problem+json."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from services.common.db import make_engine
from services.common.identity import Role
from services.common.migrations import downgrade, upgrade
from services.common.settings import Settings
from services.intake.app import create_app
from services.intake.models import Base

PATH = "/api/v1/initiatives"
PROBLEM = "application/problem+json"


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


def idea(**fields: Any) -> dict[str, Any]:
    """A valid proposal body (overridable)."""
    return {
        "title": "Gift-card drain detector",
        "problem": "Gift-card balances are drained within minutes of an account takeover.",
        "proposal": "Score redemptions with a sequence model and hold the risky ones.",
        "ai": True,
        "expected_benefit": {
            "accounts_protected_per_year": 400,
            "money_saved_per_year": "250000.00",
            "currency": "USD",
            "analyst_hours_saved_per_year": "200",
        },
        "effort_person_weeks": "10",
        "confidence": "medium",
        "reach": 12000,
        "dependencies": ["feature store v2", "feature store v2", "redemption events stream"],
        **fields,
    }


@dataclass
class Intake:
    http: httpx.AsyncClient
    as_: Callable[..., dict[str, str]]
    team: str

    @property
    def partner(self) -> dict[str, str]:
        return self.as_(team=self.team, role=Role.PARTNER, subject="key-partner")

    @property
    def pm(self) -> dict[str, str]:
        return self.as_(team="program-office", role=Role.PROGRAM_MANAGER, subject="key-pm")

    @property
    def analyst(self) -> dict[str, str]:
        return self.as_(team="risk-mining", role=Role.ANALYST, subject="key-analyst")

    async def propose(self, **fields: Any) -> dict[str, Any]:
        body = idea(**{"team": self.team, "source_kind": "risk_mining", **fields})
        response = await self.http.post(PATH, json=body, headers=self.analyst)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def act(
        self, initiative_id: int, action: str, headers: dict[str, str] | None = None, **body: Any
    ) -> httpx.Response:
        return await self.http.post(
            f"{PATH}/{initiative_id}/transitions",
            json={"action": action, **body},
            headers=headers or self.pm,
        )

    async def move(self, initiative_id: int, *actions: str, **body: Any) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for action in actions:
            response = await self.act(initiative_id, action, **body)
            assert response.status_code == 200, response.text
            result = response.json()
        return result


@pytest.fixture
async def intake(
    settings: Settings, identity_headers: Callable[..., dict[str, str]], unique_team: str
) -> AsyncIterator[Intake]:
    await asyncio.to_thread(
        upgrade, service="intake", database_url=settings.database_url_of("intake")
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake") as http,
    ):
        yield Intake(http=http, as_=identity_headers, team=unique_team)


async def test_an_idea_is_proposed_scored_committed_delivered_and_measured(intake: Intake) -> None:
    response = await intake.http.post(PATH, json=idea(), headers=intake.partner)
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"{PATH}/{created['id']}"
    assert (created["team"], created["source_kind"], created["status"]) == (
        intake.team,
        "partner",
        "proposed",
    )
    assert created["proposed_by"] == "key-partner"
    assert created["dependencies"] == ["feature store v2", "redemption events stream"]
    # value = 250,000 + 400 x 50 + 200 h x 75 = 285,000; score = 285 x 0.8 / 10
    assert Decimal(created["expected_benefit"]["value_usd"]) == Decimal(285_000)
    assert created["confidence"] == 0.8
    assert created["score"] == 22.8
    assert (created["realised_benefit"], created["realisation"]) == (None, None)

    initiative_id = created["id"]
    read = await intake.http.get(f"{PATH}/{initiative_id}", headers=intake.partner)
    assert read.status_code == 200
    assert read.headers["etag"] == '"1"'
    assert read.json() == created

    # Partners propose and read; only staff move initiatives.
    assert_problem(await intake.act(initiative_id, "shortlist", intake.partner), 403, "forbidden")
    approver = intake.as_(team="risk-mining", role=Role.APPROVER)
    assert_problem(await intake.act(initiative_id, "shortlist", approver), 403)
    # Out of order: 409 naming what is allowed now.
    early = assert_problem(await intake.act(initiative_id, "deliver"), 409, "invalid-transition")
    assert (early["current_status"], early["allowed_actions"]) == (
        "proposed",
        ["drop", "shortlist"],
    )

    await intake.move(initiative_id, "shortlist")
    no_quarter = assert_problem(await intake.act(initiative_id, "commit"), 422)
    assert no_quarter["errors"][0]["field"] == "body.target_quarter"
    committed = await intake.move(initiative_id, "commit", target_quarter="2027-Q2")
    assert (committed["status"], committed["target_quarter"]) == ("committed", "2027-Q2")
    assert committed["committed_at"] is not None
    delivered = await intake.move(initiative_id, "start", "deliver")
    assert delivered["status"] == "delivered"
    assert delivered["delivered_at"] is not None

    assert_problem(await intake.act(initiative_id, "measure"), 422)
    measured = await intake.act(
        initiative_id,
        "measure",
        realised={
            "accounts_protected_per_year": 300,
            "money_saved_per_year": "200000",
            "currency": "EUR",
        },
    )
    assert measured.status_code == 200, measured.text
    done = measured.json()
    assert done["status"] == "measured"
    assert done["closed_at"] is not None
    # Realised: 200,000 EUR x 1.08 + 300 x 50 = 231,000 against 285,000 expected.
    assert Decimal(done["realised_benefit"]["value_usd"]) == Decimal(231_000)
    assert done["realisation"] == {
        "value": round(231_000 / 285_000, 4),
        "accounts_protected": 0.75,
        "money_saved": round(216_000 / 250_000, 4),
        "analyst_hours_saved": 0.0,
    }
    # Measured is terminal; the partner still reads the outcome.
    terminal = assert_problem(await intake.act(initiative_id, "drop", reason="late"), 409)
    assert terminal["allowed_actions"] == []
    seen = await intake.http.get(f"{PATH}/{initiative_id}", headers=intake.partner)
    assert seen.json()["realisation"]["accounts_protected"] == 0.75


async def test_a_dropped_idea_keeps_its_reason_and_goes_nowhere(intake: Intake) -> None:
    created = await intake.propose(target_quarter="2027-Q1")
    initiative_id = created["id"]
    no_reason = assert_problem(await intake.act(initiative_id, "drop"), 422)
    assert no_reason["errors"][0]["field"] == "body.reason"
    # A quarter set at proposal is enough to commit.
    await intake.move(initiative_id, "shortlist", "commit")
    dropped = await intake.move(initiative_id, "drop", reason="vendor tool covers it")
    assert (dropped["status"], dropped["drop_reason"]) == ("dropped", "vendor tool covers it")
    assert_problem(await intake.act(initiative_id, "start"), 409, "invalid-transition")
    # The state is checked before the fields; a field that does not belong is a 422, not ignored.
    fresh = await intake.propose()
    stray = assert_problem(
        await intake.act(fresh["id"], "shortlist", target_quarter="2027-Q3"), 422
    )
    assert stray["errors"][0]["field"] == "body.target_quarter"


async def test_patch_needs_if_match_rescores_and_partners_edit_only_proposals(
    intake: Intake,
) -> None:
    response = await intake.http.post(PATH, json=idea(), headers=intake.partner)
    initiative_id, path = response.json()["id"], f"{PATH}/{response.json()['id']}"
    change = {"effort_person_weeks": "5", "confidence": 1}
    assert_problem(await intake.http.patch(path, json=change, headers=intake.partner), 428)
    stale = {**intake.partner, "If-Match": '"7"'}
    assert_problem(await intake.http.patch(path, json=change, headers=stale), 412)
    garbage = {**intake.partner, "If-Match": "nonsense"}
    assert_problem(await intake.http.patch(path, json=change, headers=garbage), 412)

    edited = await intake.http.patch(
        path, json=change, headers={**intake.partner, "If-Match": '"1"'}
    )
    assert edited.status_code == 200, edited.text
    assert edited.headers["etag"] == '"2"'
    # Re-scored: 285 x 1.0 / 5.
    assert (edited.json()["score"], edited.json()["version"]) == (57.0, 2)
    cleared = await intake.http.patch(
        path,
        json={"reach": None, "title": "Drain detector"},
        headers={**intake.pm, "If-Match": '"2"'},
    )
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["reach"], cleared.json()["title"]) == (None, "Drain detector")
    benefit = {"expected_benefit": {"money_saved_per_year": "50000", "currency": "GBP"}}
    rebenefit = await intake.http.patch(
        path, json=benefit, headers={**intake.pm, "If-Match": '"3"'}
    )
    assert rebenefit.status_code == 200, rebenefit.text
    # The benefit is replaced whole: 50,000 GBP x 1.27 = 63,500; score 63.5 x 1.0 / 5.
    assert rebenefit.json()["expected_benefit"]["accounts_protected_per_year"] == 0
    assert rebenefit.json()["score"] == 12.7

    no_null = assert_problem(
        await intake.http.patch(
            path, json={"title": None}, headers={**intake.pm, "If-Match": '"4"'}
        ),
        422,
    )
    assert no_null["errors"][0]["field"] == "body.title"
    await intake.move(initiative_id, "shortlist")
    late = await intake.http.patch(
        path, json={"ai": False}, headers={**intake.partner, "If-Match": '"5"'}
    )
    assert_problem(late, 409)
    approver = intake.as_(team="risk-mining", role=Role.APPROVER)
    assert_problem(
        await intake.http.patch(path, json={"ai": False}, headers={**approver, "If-Match": '"5"'}),
        403,
    )
    staff = await intake.http.patch(
        path, json={"ai": False}, headers={**intake.pm, "If-Match": '"5"'}
    )
    assert staff.status_code == 200, staff.text
    assert staff.json()["ai"] is False


async def test_partners_see_only_their_team_and_propose_only_for_it(
    intake: Intake, unique_team: str
) -> None:
    mine = (await intake.http.post(PATH, json=idea(), headers=intake.partner)).json()
    other = await intake.propose(team=f"{unique_team}-other")
    assert_problem(await intake.http.get(f"{PATH}/{other['id']}", headers=intake.partner), 404)
    assert_problem(
        await intake.http.patch(
            f"{PATH}/{other['id']}",
            json={"ai": False},
            headers={**intake.partner, "If-Match": '"1"'},
        ),
        404,
    )
    assert_problem(
        await intake.http.post(PATH, json=idea(team="someone-else"), headers=intake.partner), 403
    )
    approver = intake.as_(team="risk-mining", role=Role.APPROVER)
    assert_problem(await intake.http.post(PATH, json=idea(team=intake.team), headers=approver), 403)
    listed = await intake.http.get(PATH, headers=intake.partner)
    assert [i["id"] for i in listed.json()["items"]] == [mine["id"]]
    asked_other = await intake.http.get(
        PATH, params={"team": f"{unique_team}-other"}, headers=intake.partner
    )
    assert asked_other.json() == {"items": [], "next_cursor": None}


async def test_lists_filter_sort_by_score_and_page(intake: Intake) -> None:
    low = await intake.propose(effort_person_weeks="50", ai=False, source_kind="engineering")
    high = await intake.propose(effort_person_weeks="1", target_quarter="2027-Q3")
    mid = await intake.propose(effort_person_weeks="5", source_kind="ml")
    same = await intake.propose(effort_person_weeks="5", source_kind="ml")
    await intake.move(high["id"], "shortlist")

    async def ids(**params: Any) -> list[int]:
        collected: list[int] = []
        cursor = None
        while True:
            query = {"team": intake.team, "limit": 2, **params}
            if cursor:
                query["cursor"] = cursor
            response = await intake.http.get(PATH, params=query, headers=intake.analyst)
            assert response.status_code == 200, response.text
            page = response.json()
            assert len(page["items"]) <= 2
            collected += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                return collected

    assert await ids() == [same["id"], mid["id"], high["id"], low["id"]]
    assert await ids(sort="created_at") == [low["id"], high["id"], mid["id"], same["id"]]
    # Ties on score are broken by id, the same way on every page.
    assert await ids(sort="-score") == [high["id"], same["id"], mid["id"], low["id"]]
    assert await ids(sort="score") == [low["id"], mid["id"], same["id"], high["id"]]
    assert await ids(status="shortlisted") == [high["id"]]
    assert await ids(status=["proposed", "shortlisted"], sort="-score") == [
        high["id"],
        same["id"],
        mid["id"],
        low["id"],
    ]
    assert await ids(ai="false") == [low["id"]]
    assert await ids(source_kind="ml", sort="-score") == [same["id"], mid["id"]]
    assert await ids(quarter="2027-Q3") == [high["id"]]

    for bad in (
        {"status": "nope"},
        {"quarter": "2027-Q5"},
        {"sort": "title"},
        {"limit": 0},
        {"ai": "maybe"},
        {"cursor": "not-a-cursor"},
    ):
        assert_problem(await intake.http.get(PATH, params=bad, headers=intake.analyst), 422)
    wrong_kind = await intake.http.get(
        PATH, params={"sort": "-score", "cursor": "eyJpZCI6MX0"}, headers=intake.analyst
    )
    assert_problem(wrong_kind, 422)


async def test_the_roadmap_groups_planned_work_by_quarter_with_totals(intake: Intake) -> None:
    first = await intake.propose(target_quarter="2027-Q1", effort_person_weeks="4")
    second = await intake.propose(
        target_quarter="2027-Q1",
        effort_person_weeks="2",
        ai=False,
        expected_benefit={"money_saved_per_year": "10000", "currency": "EUR"},
    )
    third = await intake.propose(effort_person_weeks="8")
    proposed_only = await intake.propose(target_quarter="2027-Q1")
    next_year = await intake.propose(target_quarter="2028-Q1")
    dropped = await intake.propose(target_quarter="2027-Q2")
    await intake.move(first["id"], "shortlist", "commit", "start")
    await intake.move(second["id"], "shortlist", "commit")
    await intake.move(third["id"], "shortlist")
    await intake.move(third["id"], "commit", target_quarter="2027-Q4")
    await intake.move(third["id"], "start", "deliver")
    await intake.move(
        third["id"], "measure", realised={"money_saved_per_year": "285000", "currency": "USD"}
    )
    await intake.move(next_year["id"], "shortlist", "commit")
    await intake.move(dropped["id"], "shortlist", "commit")
    await intake.move(dropped["id"], "drop", reason="no longer needed")
    assert proposed_only["status"] == "proposed"

    response = await intake.http.get(
        f"{PATH}/roadmap", params={"year": 2027, "team": intake.team}, headers=intake.pm
    )
    assert response.status_code == 200, response.text
    roadmap = response.json()
    assert roadmap["year"] == 2027
    assert [q["quarter"] for q in roadmap["quarters"]] == [
        "2027-Q1",
        "2027-Q2",
        "2027-Q3",
        "2027-Q4",
    ]
    q1, q2, q3, q4 = roadmap["quarters"]
    # Best score first: 285 x 0.8 / 4 = 57 before 10.8 x 0.8 / 2 = 4.32.
    assert [(i["id"], i["status"]) for i in q1["items"]] == [
        (first["id"], "in_progress"),
        (second["id"], "committed"),
    ]
    assert (q2["items"], q3["items"]) == ([], [])
    assert [(i["id"], i["status"]) for i in q4["items"]] == [(third["id"], "measured")]
    totals = q1["totals"]
    assert totals["initiatives"] == 2
    assert totals["by_status"] == {"committed": 1, "in_progress": 1}
    assert totals["ai_initiatives"] == 1
    assert Decimal(totals["effort_person_weeks"]) == Decimal(6)
    assert Decimal(totals["expected_value_usd"]) == Decimal(285_000) + Decimal(10_800)
    assert {
        k: Decimal(v) for k, v in totals["expected_money_saved_per_year_by_currency"].items()
    } == {
        "EUR": Decimal(10_000),
        "USD": Decimal(250_000),
    }
    assert totals["expected_accounts_protected_per_year"] == 400
    assert totals["realisation"] is None
    assert q4["totals"]["realisation"] == 1.0
    assert Decimal(q4["items"][0]["realised_value_usd"]) == Decimal(285_000)
    year = roadmap["totals"]
    assert year["initiatives"] == 3
    assert Decimal(year["realised_value_usd"]) == Decimal(285_000)
    assert year["realisation"] == 1.0

    # The partner's roadmap is its own team's (the same here); another team's is empty.
    mine = await intake.http.get(f"{PATH}/roadmap", params={"year": 2027}, headers=intake.partner)
    assert mine.json()["totals"]["initiatives"] == 3
    other = await intake.http.get(
        f"{PATH}/roadmap", params={"year": 2027, "team": "x"}, headers=intake.partner
    )
    assert other.json()["totals"]["initiatives"] == 0
    bad_queries: list[dict[str, Any]] = [
        {},
        {"year": 1999},
        {"year": "next"},
        {"year": 2027, "team": "a\x01"},
    ]
    for bad in bad_queries:
        assert_problem(await intake.http.get(f"{PATH}/roadmap", params=bad, headers=intake.pm), 422)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"confidence": 1.5}, "body.confidence"),
        ({"confidence": "certain"}, "body.confidence"),
        ({"effort_person_weeks": "0"}, "body.effort_person_weeks"),
        ({"effort_person_weeks": "1.25"}, "body.effort_person_weeks"),
        ({"target_quarter": "2027-Q0"}, "body.target_quarter"),
        ({"expected_benefit": {"currency": "XYZ"}}, "body.expected_benefit.currency"),
        ({"expected_benefit": {"money_saved_per_year": "-1"}}, "body.expected_benefit"),
        ({"problem": ""}, "body.problem"),
        ({"title": "a\x00b"}, "body.title"),
        ({"surprise": 1}, "body.surprise"),
        ({"dependencies": ["x"] * 21}, "body.dependencies"),
        ({"source_kind": "marketing"}, "body.source_kind"),
        ({"ai": None}, "body.ai"),
    ],
)
async def test_invalid_proposals_are_422_naming_the_field(
    intake: Intake, change: dict[str, Any], field: str
) -> None:
    response = await intake.http.post(PATH, json=idea(**change), headers=intake.partner)
    body = assert_problem(response, 422, "validation-error")
    assert any(e["field"].startswith(field) for e in body["errors"]), body["errors"]


async def test_staff_name_team_and_kind_and_posts_are_idempotent(intake: Intake) -> None:
    no_team = assert_problem(
        await intake.http.post(PATH, json=idea(source_kind="ml"), headers=intake.pm), 422
    )
    assert no_team["errors"][0]["field"] == "body.team"
    no_kind = assert_problem(
        await intake.http.post(PATH, json=idea(team=intake.team), headers=intake.pm), 422
    )
    assert no_kind["errors"][0]["field"] == "body.source_kind"

    headers = {**intake.partner, "Idempotency-Key": "op1-idea-1"}
    first = await intake.http.post(PATH, json=idea(), headers=headers)
    again = await intake.http.post(PATH, json=idea(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert_problem(await intake.http.post(PATH, json=idea(title="other"), headers=headers), 422)
    listed = await intake.http.get(PATH, headers=intake.partner)
    assert len(listed.json()["items"]) == 1

    for bad_id in ("0", "abc", str(2**31)):
        assert_problem(await intake.http.get(f"{PATH}/{bad_id}", headers=intake.pm), 422)
    assert_problem(await intake.http.get(f"{PATH}/{2**31 - 1}", headers=intake.pm), 404)
    assert_problem(await intake.act(2**31 - 1, "shortlist"), 404)
    assert_problem(
        await intake.http.post(f"{PATH}/1/transitions", json={"action": "fly"}, headers=intake.pm),
        422,
    )
    # Without the gateway's identity token: 401.
    assert_problem(await intake.http.get(PATH), 401)


async def test_the_initiative_migration_matches_the_model_and_goes_down_and_up_alone(
    settings: Settings,
) -> None:
    url = settings.database_url_of("intake")
    await asyncio.to_thread(upgrade, service="intake", database_url=url)

    def inspect_sync(connection: Connection) -> tuple[set[str], list[Any]]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        drift = [
            diff
            for diff in compare_metadata(context, Base.metadata)
            if "initiative" in repr(diff) and "initiative_id" not in repr(diff)
        ]
        return set(inspect(connection).get_table_names()), drift

    async def state() -> tuple[set[str], list[Any]]:
        engine = make_engine(url, schema="intake", pool_size=1)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(inspect_sync)
        finally:
            await engine.dispose()

    tables, drift = await state()
    assert "initiative" in tables
    assert drift == [], f"the migration differs from the model: {drift}"
    # Only this branch goes down; requests stay.
    await asyncio.to_thread(
        downgrade, service="intake", database_url=url, revision="intake_0006@intake_0002"
    )
    try:
        tables, _ = await state()
        assert "initiative" not in tables
        assert "request" in tables
    finally:
        await asyncio.to_thread(upgrade, service="intake", database_url=url)
    assert "initiative" in (await state())[0]
