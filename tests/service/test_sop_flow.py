"""SOPs end to end on the real stack (sop service + gateway under uvicorn, Temporal dev server,
worker): a version goes from draft through two approval stages to effective in three orgs with one
late (reminded, escalated), then a second version supersedes it; `/parity` is checked at every
step."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.common.identity import Role
from services.common.settings import Settings
from tests.service.sop_stack import SopStack, assert_problem, eventually, running_sop_stack
from workflows.contracts import sop_rollout_workflow_id
from workflows.sop_rollout import SopRolloutWorkflow

PM = "pm-olivia"
AUTHOR = "analyst-ravi"
LEADS = ["lead-ana", "lead-bo", "lead-cy"]
DIRECTOR = "director-dee"


@pytest.fixture
async def stack(make_settings: Callable[..., Settings]) -> AsyncIterator[SopStack]:
    async with running_sop_stack(make_settings) as running:
        yield running


def policy(**overrides: Any) -> dict[str, Any]:
    return {
        "stages": [
            {"name": "site leads", "approvers": LEADS, "min_approvals": 2},
            {"name": "director", "approvers": [DIRECTOR]},
        ],
        "reminder_interval": "PT1H",
        "escalate_after": "P1D",
        **overrides,
    }


async def create_sop(stack: SopStack, key: str, **fields: Any) -> dict[str, Any]:
    response = await stack.http.post(
        "/api/v1/sops",
        json={
            "key": key,
            "title": "Account takeover triage",
            "owning_team": "risk-mining",
            "owner": PM,
            "approval_policy": policy(),
            "content": "# ATO triage\n1. Check login velocity\n2. Lock account\n",
            **fields,
        },
        headers=stack.as_(AUTHOR),
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def decide(
    stack: SopStack, sop_id: int, number: int, who: str, decision: str, comment: str | None = None
) -> Any:
    body: dict[str, Any] = {"decision": decision}
    if comment is not None:
        body["comment"] = comment
    return await stack.http.post(
        f"/api/v1/sops/{sop_id}/versions/{number}/decisions",
        json=body,
        headers=stack.as_(who, role=Role.APPROVER),
    )


async def version(stack: SopStack, sop_id: int, number: int) -> dict[str, Any]:
    response = await stack.http.get(
        f"/api/v1/sops/{sop_id}/versions/{number}", headers=stack.as_("reader")
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def parity(stack: SopStack, sop_id: int) -> dict[str, Any]:
    response = await stack.http.get(
        "/api/v1/parity", params={"sop_id": sop_id}, headers=stack.as_("reader")
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert len(body["sops"]) == 1
    sop: dict[str, Any] = body["sops"][0]
    sop["overall"] = body["overall_parity_percent"]
    return sop


def standing(sop_parity: dict[str, Any]) -> dict[str, int | None]:
    return {o["org"]: o["version_in_effect"] for o in sop_parity["orgs"]}


async def approve_through_both_stages(stack: SopStack, sop_id: int, number: int) -> None:
    submitted = await stack.http.post(
        f"/api/v1/sops/{sop_id}/versions/{number}/submit", headers=stack.as_(AUTHOR)
    )
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["status"] == "in_review"
    first = await decide(stack, sop_id, number, LEADS[0], "approve", "looks right")
    assert first.status_code == 200, first.text
    assert (first.json()["stage"], first.json()["stage_status"]) == (0, "open")
    second = await decide(stack, sop_id, number, LEADS[2], "approve")
    assert second.status_code == 200, second.text
    assert (second.json()["stage_status"], second.json()["outcome"]) == ("approved", None)
    last = await decide(stack, sop_id, number, DIRECTOR, "approve", "ship it")
    assert last.status_code == 200, last.text
    assert (last.json()["stage"], last.json()["outcome"]) == (1, "approved")
    await eventually(
        lambda: version(stack, sop_id, number), lambda v: v["status"] == "approved", within=20
    )


async def test_draft_two_stages_effective_in_three_orgs_one_late_parity_true_at_every_step(
    stack: SopStack,
) -> None:
    sop = await create_sop(stack, "SOP-ACC-012")
    sop_id = sop["id"]
    assert (sop["latest_version"], sop["effective_version"]) == (1, None)
    assert sop["review_status"] == "ok"
    # Step 0: a draft is in effect nowhere.
    step = await parity(stack, sop_id)
    assert (step["newest_effective_version"], step["parity_percent"], step["orgs"]) == (
        None,
        None,
        [],
    )

    # Approval, stage 1 (2 of 3 leads) then stage 2 (the director); the validator guards it.
    submitted = await stack.http.post(
        f"/api/v1/sops/{sop_id}/versions/1/submit", headers=stack.as_(AUTHOR)
    )
    assert submitted.status_code == 200, submitted.text
    assert_problem(await decide(stack, sop_id, 1, AUTHOR, "approve"), 403)
    too_early = assert_problem(await decide(stack, sop_id, 1, DIRECTOR, "approve"), 403)
    assert "later stage" in too_early["detail"]
    assert (await decide(stack, sop_id, 1, LEADS[0], "approve", "ok")).status_code == 200
    assert_problem(await decide(stack, sop_id, 1, LEADS[0], "approve"), 409)
    assert (await decide(stack, sop_id, 1, LEADS[1], "approve")).status_code == 200
    # The stage ended early at 2 of 3: the third lead's decision is refused.
    assert_problem(await decide(stack, sop_id, 1, LEADS[2], "approve"), 409)
    state = await stack.http.get(
        f"/api/v1/sops/{sop_id}/versions/1/approval", headers=stack.as_("reader")
    )
    assert state.status_code == 200, state.text
    assert [s["status"] for s in state.json()["stages"]] == ["approved", "open"]
    assert (await version(stack, sop_id, 1))["status"] == "in_review"
    assert (await parity(stack, sop_id))["newest_effective_version"] is None
    done = await decide(stack, sop_id, 1, DIRECTOR, "approve", "ship it")
    assert done.json()["outcome"] == "approved"
    await eventually(lambda: version(stack, sop_id, 1), lambda v: v["status"] == "approved")
    assert (await parity(stack, sop_id))["newest_effective_version"] is None

    # Rollout: India and San José in wave 1, Costa Rica in wave 2, which will be late.
    now = datetime.now(UTC)
    rollout = await stack.http.post(
        f"/api/v1/sops/{sop_id}/versions/1/rollouts",
        json={
            "waves": [
                {"orgs": ["india", "san-jose"], "due_at": (now + timedelta(hours=1)).isoformat()},
                {
                    "orgs": ["costa-rica"],
                    "starts_at": (now + timedelta(seconds=1)).isoformat(),
                    "due_at": (now + timedelta(seconds=4)).isoformat(),
                },
            ],
            "reminder_interval": "PT1S",
        },
        headers=stack.as_(PM, role=Role.PROGRAM_MANAGER),
    )
    assert rollout.status_code == 201, rollout.text
    rollout_id = rollout.json()["id"]
    assert rollout.headers["location"] == f"/api/v1/rollouts/{rollout_id}"
    assert (await version(stack, sop_id, 1))["status"] == "rolling_out"
    step = await parity(stack, sop_id)
    # Rolling out, in effect nowhere yet: no newest effective version, no percentage.
    assert step["newest_effective_version"] is None
    assert standing(step) == {"costa-rica": None, "india": None, "san-jose": None}

    # India acknowledges: version 1 takes effect; the other two lag.
    acked = await stack.http.post(
        f"/api/v1/rollouts/{rollout_id}/acknowledgements",
        json={"org": "india", "training_completed": True},
        headers=stack.as_("lead-india", role=Role.APPROVER),
    )
    assert acked.status_code == 200, acked.text
    assert (await version(stack, sop_id, 1))["status"] == "effective"
    step = await parity(stack, sop_id)
    assert step["newest_effective_version"] == 1
    assert standing(step) == {"costa-rica": None, "india": 1, "san-jose": None}
    assert (step["parity_percent"], sorted(step["laggards"])) == (33.33, ["costa-rica", "san-jose"])

    # Someone else may not acknowledge for San José; its lead may.
    assert_problem(
        await stack.http.post(
            f"/api/v1/rollouts/{rollout_id}/acknowledgements",
            json={"org": "san-jose"},
            headers=stack.as_("lead-india", role=Role.APPROVER),
        ),
        403,
    )
    acked = await stack.http.post(
        f"/api/v1/rollouts/{rollout_id}/acknowledgements",
        json={"org": "san-jose"},
        headers=stack.as_("lead-san-jose", role=Role.APPROVER),
    )
    assert acked.status_code == 200, acked.text
    step = await parity(stack, sop_id)
    assert (step["parity_percent"], step["laggards"]) == (66.67, ["costa-rica"])

    # Costa Rica misses its due time: reminded every second of its window, then escalated once.
    async def costa_rica() -> dict[str, Any]:
        response = await stack.http.get(
            f"/api/v1/rollouts/{rollout_id}", headers=stack.as_("reader")
        )
        assert response.status_code == 200, response.text
        org: dict[str, Any] = next(o for o in response.json()["orgs"] if o["org"] == "costa-rica")
        return org

    late = await eventually(costa_rica, lambda o: o["escalated_at"] is not None, within=30)
    assert late["state"] == "overdue"
    assert late["reminders_sent"] >= 2
    step = await parity(stack, sop_id)
    laggard = next(o for o in step["orgs"] if o["org"] == "costa-rica")
    assert (laggard["at_parity"], laggard["overdue"]) == (False, True)
    assert laggard["lag_seconds"] > 0
    assert laggard["lagging_since"] == step["effective_since"]
    published = await stack.published(f"sop-rollout-{rollout_id}:costa-rica:")
    types = sorted(e.type for e in published)
    assert types.count("sop.rollout_overdue") == 1
    assert types.count("sop.reminder") >= 2
    assert all(e.subject == {"kind": "sop", "id": str(sop_id)} for e in published)
    trail = await stack.events(sop_id)
    assert [e["kind"] for e in trail if e["kind"] == "rollout_escalated"] == ["rollout_escalated"]
    # India and San José acknowledged before their reminders came due: none were sent to them.
    assert not await stack.published(f"sop-rollout-{rollout_id}:india:reminder:1")

    # Costa Rica finally acknowledges, late: full parity, the rollout completes.
    acked = await stack.http.post(
        f"/api/v1/rollouts/{rollout_id}/acknowledgements",
        json={"org": "costa-rica", "note": "training next week"},
        headers=stack.as_("lead-costa-rica", role=Role.APPROVER),
    )
    assert acked.status_code == 200, acked.text
    assert acked.json()["status"] == "completed"
    assert next(o for o in acked.json()["orgs"] if o["org"] == "costa-rica")["late"] is True
    step = await parity(stack, sop_id)
    assert (step["parity_percent"], step["laggards"], step["overall"]) == (100.0, [], 100.0)
    handle = stack.temporal.get_workflow_handle_for(
        SopRolloutWorkflow.run, sop_rollout_workflow_id(rollout_id)
    )
    result = await asyncio.wait_for(handle.result(), timeout=20)
    assert result.status == "completed"
    # Training recorded later for Costa Rica.
    trained = await stack.http.post(
        f"/api/v1/rollouts/{rollout_id}/acknowledgements",
        json={"org": "costa-rica", "training_completed": True},
        headers=stack.as_("lead-costa-rica", role=Role.APPROVER),
    )
    assert next(o for o in trained.json()["orgs"] if o["org"] == "costa-rica")[
        "training_completed_at"
    ]

    # Version 2: a diff, two stages again, a rollout; India adopts first and v1 is superseded.
    created = await stack.http.post(
        f"/api/v1/sops/{sop_id}/versions",
        json={
            "content": "# ATO triage\n1. Check login velocity\n2. Check device\n3. Lock account\n",
            "change_summary": "Device check before locking",
        },
        headers=stack.as_(AUTHOR),
    )
    assert created.status_code == 201, created.text
    assert created.json()["number"] == 2
    diff = await stack.http.get(
        f"/api/v1/sops/{sop_id}/diff", params={"from": 1, "to": 2}, headers=stack.as_("reader")
    )
    assert diff.status_code == 200, diff.text
    assert "+2. Check device\n" in diff.json()["diff"]
    assert "-2. Lock account\n" in diff.json()["diff"]
    await approve_through_both_stages(stack, sop_id, 2)
    assert (await parity(stack, sop_id))["parity_percent"] == 100.0  # v1 is still the newest
    rollout2 = await stack.http.post(
        f"/api/v1/sops/{sop_id}/versions/2/rollouts",
        json={
            "waves": [
                {
                    "orgs": ["india", "san-jose", "costa-rica"],
                    "due_at": (datetime.now(UTC) + timedelta(days=14)).isoformat(),
                }
            ]
        },
        headers=stack.as_(PM, role=Role.PROGRAM_MANAGER),
    )
    assert rollout2.status_code == 201, rollout2.text
    acked = await stack.http.post(
        f"/api/v1/rollouts/{rollout2.json()['id']}/acknowledgements",
        json={"org": "india"},
        headers=stack.as_("lead-india", role=Role.APPROVER),
    )
    assert acked.status_code == 200, acked.text
    assert (await version(stack, sop_id, 1))["status"] == "superseded"
    assert (await version(stack, sop_id, 2))["status"] == "effective"
    step = await parity(stack, sop_id)
    assert step["newest_effective_version"] == 2
    assert standing(step) == {"costa-rica": 1, "india": 2, "san-jose": 1}
    assert (step["parity_percent"], sorted(step["laggards"])) == (33.33, ["costa-rica", "san-jose"])
    # Not overdue: their window is still open.
    assert not any(o["overdue"] for o in step["orgs"])
    read = await stack.http.get(f"/api/v1/sops/{sop_id}", headers=stack.as_("reader"))
    assert (read.json()["effective_version"], read.json()["latest_version"]) == (2, 2)

    kinds = [e["kind"] for e in await stack.events(sop_id)]
    for kind in (
        "created",
        "submitted",
        "decision",
        "approved",
        "rollout_created",
        "effective",
        "acknowledged",
        "rollout_reminder",
        "rollout_escalated",
        "superseded",
    ):
        assert kind in kinds, kind
    decisions = [e for e in await stack.events(sop_id) if e["kind"] == "decision"]
    assert (decisions[0]["actor"], decisions[0]["comment"]) == (LEADS[0], "ok")
    assert len(decisions) == 6  # three per version: refused decisions left no trace
