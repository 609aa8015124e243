"""ML models in the rule inventory on each backend, in-process: `kind` on create, read and list,
model metrics through the same metrics endpoints (validated per kind, single and bulk), model
criteria on a deprecation proposal, and the model candidate list. The monitored deprecation of a
model runs in tests/workflows/test_model_deprecation.py."""

from __future__ import annotations

from typing import Any

import httpx

from tests.service.test_rules_api import Sop, assert_problem, monday, rid, sop  # noqa: F401

MODEL_WEEK = {"threshold": 0.72, "precision": 0.81, "recall": 0.44, "volume_actioned": 120}


async def model(on: Sop, **fields: Any) -> dict[str, Any]:
    """A new ML model in the inventory."""
    return await on.rule(kind="model", name="Gift-card drain GBDT", **fields)


async def week_of(on: Sop, rule_id: str, **fields: Any) -> httpx.Response:
    """Post one weekly snapshot (this week unless `week_start` says otherwise)."""
    return await on.http.post(
        f"/api/v1/rules/{rule_id}/metrics",
        json={"week_start": monday().isoformat(), **fields},
        headers=on.analyst,
    )


async def test_models_are_kind_model_and_rules_stay_rules(sop: Sop) -> None:  # noqa: F811
    created = await model(sop)
    assert (created["kind"], created["status"]) == ("model", "active")
    rule = await sop.rule()
    assert rule["kind"] == "rule"
    read = await sop.http.get(f"/api/v1/rules/{created['id']}", headers=sop.analyst)
    assert read.json()["kind"] == "model"

    async def listed(**params: Any) -> list[str]:
        response = await sop.http.get(
            "/api/v1/rules", params={"team": sop.team, **params}, headers=sop.analyst
        )
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await listed(kind="model") == [created["id"]]
    assert await listed(kind="rule") == [rule["id"]]
    assert sorted(await listed()) == sorted([created["id"], rule["id"]])
    assert_problem(
        await sop.http.get("/api/v1/rules", params={"kind": "llm"}, headers=sop.analyst), 422
    )
    bad = await sop.http.post(
        "/api/v1/rules",
        json={"id": rid(), "name": "x", "owner": "ana", "team": sop.team, "kind": "heuristic"},
        headers=sop.analyst,
    )
    assert assert_problem(bad, 422)["errors"][0]["field"] == "body.kind"
    # The kind is fixed at creation.
    patched = await sop.http.patch(
        f"/api/v1/rules/{created['id']}", json={"kind": "rule"}, headers=sop.analyst
    )
    assert_problem(patched, 422)


async def test_model_metrics_are_validated_per_kind_and_read_back(sop: Sop) -> None:  # noqa: F811
    ml = await model(sop)
    rule = await sop.rule()
    week = monday().isoformat()
    posted = await week_of(sop, ml["id"], **MODEL_WEEK)
    assert posted.status_code == 201, posted.text
    snapshot = posted.json()
    assert (snapshot["precision"], snapshot["recall"], snapshot["threshold"]) == (0.81, 0.44, 0.72)
    # Hits (alerts) default to the volume actioned; the model "fired" that week.
    assert (snapshot["volume_actioned"], snapshot["hits"]) == (120, 120)
    again = await week_of(sop, ml["id"], **MODEL_WEEK)
    assert (again.status_code, again.json()["result"]) == (200, "unchanged")
    corrected = await week_of(sop, ml["id"], **{**MODEL_WEEK, "precision": 0.5})
    assert corrected.json()["result"] == "replaced"
    listed = await sop.http.get(f"/api/v1/rules/{ml['id']}/metrics", headers=sop.analyst)
    assert listed.json()["items"][0]["precision"] == 0.5
    assert (await sop.http.get(f"/api/v1/rules/{ml['id']}", headers=sop.analyst)).json()[
        "last_fired_at"
    ] is not None

    missing = assert_problem(await week_of(sop, ml["id"], hits=4), 422)
    assert {e["field"] for e in missing["errors"]} == {
        "body.precision",
        "body.threshold",
        "body.recall",
        "body.volume_actioned",
    }
    rule_fields = assert_problem(
        await week_of(sop, ml["id"], **MODEL_WEEK, true_positive_rate=0.3), 422
    )
    assert [e["field"] for e in rule_fields["errors"]] == ["body.true_positive_rate"]
    model_fields = assert_problem(await sop.metric(rule["id"], hits=3, precision=0.4), 422)
    assert [e["field"] for e in model_fields["errors"]] == ["body.precision"]
    no_hits = assert_problem(
        await sop.http.post(
            f"/api/v1/rules/{rule['id']}/metrics", json={"week_start": week}, headers=sop.analyst
        ),
        422,
    )
    assert [e["field"] for e in no_hits["errors"]] == ["body.hits"]
    for bad in ({"precision": 1.2}, {"threshold": "high"}, {"volume_actioned": -1}):
        assert_problem(await week_of(sop, ml["id"], **{**MODEL_WEEK, **bad}), 422)

    # Bulk: all or nothing, each item checked against its own rule's kind.
    bulk = await sop.http.post(
        "/api/v1/rules/metrics",
        json={
            "items": [
                {"rule_id": rule["id"], "week_start": week, "hits": 2},
                {"rule_id": ml["id"], "week_start": week, "hits": 2},
            ]
        },
        headers=sop.analyst,
    )
    errors = assert_problem(bulk, 422)["errors"]
    assert {e["field"] for e in errors} == {
        "body.items.1.precision",
        "body.items.1.threshold",
        "body.items.1.recall",
        "body.items.1.volume_actioned",
    }
    fine = await sop.http.post(
        "/api/v1/rules/metrics",
        json={
            "items": [
                {"rule_id": rule["id"], "week_start": week, "hits": 2},
                {"rule_id": ml["id"], "week_start": week, **MODEL_WEEK},
            ]
        },
        headers=sop.analyst,
    )
    assert fine.status_code == 200, fine.text
    assert [i["result"] for i in fine.json()["items"]] == ["created", "replaced"]


async def test_a_model_deprecation_takes_model_criteria(sop: Sop) -> None:  # noqa: F811
    ml = await model(sop)
    wrong = await sop.http.post(
        f"/api/v1/rules/{ml['id']}/deprecation",
        json={"reason": "replaced by v2", "criteria": {"no_hits_days": 30}},
        headers=sop.analyst,
    )
    assert assert_problem(wrong, 422)["errors"][0]["field"] == "body.criteria.no_hits_days"
    proposed = await sop.http.post(
        f"/api/v1/rules/{ml['id']}/deprecation",
        json={"reason": "replaced by v2", "criteria": {"volume_floor": 50}},
        headers=sop.analyst,
    )
    assert proposed.status_code == 201, proposed.text
    assert proposed.json()["criteria"] == {
        "kind": "model",
        "precision_floor": 0.5,
        "volume_floor": 50,
        "weeks": 4,
    }
    rule = await sop.rule()
    refused = await sop.http.post(
        f"/api/v1/rules/{rule['id']}/deprecation",
        json={"reason": "stale", "criteria": {"volume_floor": 5}},
        headers=sop.analyst,
    )
    assert assert_problem(refused, 422)["errors"][0]["field"] == "body.criteria.volume_floor"


async def test_model_candidates_are_flagged_on_volume_and_precision(sop: Sop) -> None:  # noqa: F811
    deployed = "2020-01-06T00:00:00+00:00"
    busy = await model(sop, deployed_at=deployed)
    noisy = await model(sop, deployed_at=deployed)
    idle = await model(sop, deployed_at=deployed)
    stale_rule = await sop.rule(deployed_at=deployed)
    for week in range(4):
        start = monday(7 * week).isoformat()
        assert (await week_of(sop, busy["id"], week_start=start, **MODEL_WEEK)).status_code == 201
        noisy_week = {**MODEL_WEEK, "precision": 0.2, "week_start": start}
        assert (await week_of(sop, noisy["id"], **noisy_week)).status_code == 201
    response = await sop.http.get(
        "/api/v1/rules/deprecation-candidates",
        params={"kind": "model", "team": sop.team},
        headers=sop.analyst,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["criteria"] == {
        "kind": "model",
        "precision_floor": 0.5,
        "volume_floor": 10,
        "weeks": 4,
    }
    found = {item["rule"]["id"]: [f["reason"] for f in item["findings"]] for item in body["items"]}
    assert found == {idle["id"]: ["low_volume"], noisy["id"]: ["low_precision"]}
    # Least volume first.
    assert [item["rule"]["id"] for item in body["items"]] == [idle["id"], noisy["id"]]
    stricter = await sop.http.get(
        "/api/v1/rules/deprecation-candidates",
        params={"kind": "model", "team": sop.team, "volume_floor": 1000},
        headers=sop.analyst,
    )
    assert busy["id"] in {item["rule"]["id"] for item in stricter.json()["items"]}
    # The rule list holds rules only (the stale rule), never the models.
    rules = await sop.http.get(
        "/api/v1/rules/deprecation-candidates", params={"team": sop.team}, headers=sop.analyst
    )
    assert [item["rule"]["id"] for item in rules.json()["items"]] == [stale_rule["id"]]
    assert_problem(
        await sop.http.get(
            "/api/v1/rules/deprecation-candidates",
            params={"volume_floor": 3},
            headers=sop.analyst,
        ),
        422,
    )
