"""An ML model goes through the same RuleDeprecationWorkflow as a rule, on the real stack (sop
service under uvicorn, outbox, worker, Temporal dev server), judged on the model criteria: one that
actions too little during monitoring is deprecated on approval; one still actioning precisely is
retained with the evidence."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.workflows.test_rule_deprecation import (  # noqa: F401
    Stack,
    eventually,
    stack,
)

# A little longer than the rule tests' 3 s: both reports must land inside the window on a busy
# machine.
MONITORING_SECONDS = 5


def this_week() -> str:
    today = datetime.now(UTC).date()
    return (today - timedelta(days=today.weekday())).isoformat()


async def new_model(on: Stack) -> str:
    model_id = f"ML-{uuid.uuid4().hex[:10]}"
    body = {"id": model_id, "name": "ATO GBDT v3", "owner": "ml", "team": on.team, "kind": "model"}
    response = await on.http.post("/api/v1/rules", json=body, headers=on.analyst)
    assert response.status_code == 201, response.text
    return model_id


async def report(on: Stack, model_id: str, **fields: Any) -> None:
    body = {"week_start": this_week(), "threshold": 0.8, "recall": 0.3, **fields}
    response = await on.http.post(
        f"/api/v1/rules/{model_id}/metrics", json=body, headers=on.analyst
    )
    assert response.status_code == 201, response.text


async def test_an_ml_model_is_deprecated_or_retained_through_monitoring(
    stack: Stack,  # noqa: F811
) -> None:
    idle, busy = await new_model(stack), await new_model(stack)
    idle_proposal = await stack.propose(
        idle,
        criteria={"volume_floor": 20, "precision_floor": 0.6},
        monitoring_seconds=MONITORING_SECONDS,
    )
    await stack.propose(busy, monitoring_seconds=MONITORING_SECONDS)
    assert idle_proposal["criteria"] == {
        "kind": "model",
        "precision_floor": 0.6,
        "volume_floor": 20,
        "weeks": 4,
    }
    await eventually(lambda: stack.deprecation(idle), lambda d: d["stage"] == "monitoring")
    await eventually(lambda: stack.deprecation(busy), lambda d: d["stage"] == "monitoring")
    # While they run in shadow, the ML platform reports the week: the idle model acted on 5
    # accounts (below its floor of 20), the busy one on 300 at precision 0.9.
    await report(stack, idle, precision=0.95, volume_actioned=5)
    await report(stack, busy, precision=0.9, volume_actioned=300)

    checked = await eventually(
        lambda: stack.deprecation(idle), lambda d: d["stage"] == "awaiting_approval"
    )
    evidence = checked["evidence"]
    assert (evidence["kind"], evidence["clean"]) == ("model", True)
    assert (evidence["volume_actioned"], evidence["weeks_spanned"]) == (5, 1)
    assert evidence["precision"] == 0.95
    assert evidence["thresholds"] == [0.8]
    assert evidence["verdict"] == "Actioned 5.0 a week during monitoring, below the floor 20."
    assert await stack.status(idle) == "monitoring"

    retained = await eventually(lambda: stack.deprecation(busy), lambda d: d["stage"] == "retained")
    assert (retained["outcome"], retained["decided_by"]) == ("retained", "system")
    assert retained["evidence"]["volume_actioned"] == 300
    assert retained["decision_comment"] == (
        "Actioned 300.0 a week during monitoring at precision 0.900."
    )
    assert await stack.status(busy) == "retained"

    refused = await stack.decide(idle, stack.analyst, decision="approve")
    assert refused.status_code == 403, refused.text
    approved = await stack.decide(idle, stack.approver, decision="approve", comment="v4 covers it")
    assert approved.status_code == 200, approved.text
    assert (approved.json()["stage"], approved.json()["decided_by"]) == (
        "deprecated",
        "key-approver",
    )
    model = (await stack.http.get(f"/api/v1/rules/{idle}", headers=stack.analyst)).json()
    assert (model["kind"], model["status"]) == ("model", "deprecated")
    handle = stack.temporal.get_workflow_handle(idle_proposal["workflow_id"])
    result = await asyncio.wait_for(handle.result(), timeout=30)
    assert result["outcome"] == "deprecated"
