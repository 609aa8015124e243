"""The SOP API's unhappy paths (every error problem+json, never a 500), idempotency, lists and
the periodic review: read-time review status and the sweep workflow's reminders."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from services.common.identity import Role
from services.common.settings import Settings
from services.sop.sops.models import Sop
from tests.service.sop_stack import SopStack, assert_problem, running_sop_stack
from workflows.contracts import SopReviewSweepInput
from workflows.sop_rollout import SopReviewSweepWorkflow, ensure_sop_review_schedule

POLICY = {"stages": [{"name": "reviewers", "approvers": ["r1"]}]}


@pytest.fixture
async def stack(make_settings: Callable[..., Settings]) -> AsyncIterator[SopStack]:
    async with running_sop_stack(make_settings) as running:
        yield running


async def new_sop(stack: SopStack, key: str, **fields: Any) -> dict[str, Any]:
    response = await stack.http.post(
        "/api/v1/sops",
        json={
            "key": key,
            "title": "Seller fraud",
            "owning_team": "risk-mining",
            "approval_policy": POLICY,
            "content": "# Seller fraud\n",
            **fields,
        },
        headers=stack.as_("analyst-1"),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_errors_are_problems_never_500(stack: SopStack) -> None:
    analyst = stack.as_("analyst-1")
    sop = await new_sop(stack, "SOP-SEL-001")
    sop_id = sop["id"]
    assert sop["owner"] == "analyst-1"
    base = f"/api/v1/sops/{sop_id}"

    # Validation: bad key, unknown field, bad policy, NUL, bad duration.
    for body in (
        {
            "key": "ACC-12",
            "title": "t",
            "owning_team": "x",
            "approval_policy": POLICY,
            "content": "c",
        },
        {
            "key": "SOP-A-1",
            "title": "t",
            "owning_team": "x",
            "approval_policy": POLICY,
            "content": "c",
            "extra": 1,
        },
        {
            "key": "SOP-AB-1",
            "title": "t",
            "owning_team": "x",
            "approval_policy": {"stages": []},
            "content": "c",
        },
        {
            "key": "SOP-AB-1",
            "title": "t",
            "owning_team": "x",
            "content": "a\x00b",
            "approval_policy": POLICY,
        },
        {
            "key": "SOP-AB-1",
            "title": "t",
            "owning_team": "x",
            "content": "c",
            "approval_policy": {"stages": [{"name": "s", "approvers": ["a", "a"]}]},
        },
        {
            "key": "SOP-AB-1",
            "title": "t",
            "owning_team": "x",
            "content": "c",
            "approval_policy": {"stages": [{"name": "s", "approvers": ["a"], "min_approvals": 2}]},
        },
        {
            "key": "SOP-AB-1",
            "title": "t",
            "owning_team": "x",
            "content": "c",
            "approval_policy": {**POLICY, "reminder_interval": "soon"},
        },
    ):
        assert_problem(await stack.http.post("/api/v1/sops", json=body, headers=analyst), 422)
    # Duplicate key, partner and approver may not write.
    assert_problem(
        await stack.http.post(
            "/api/v1/sops",
            json={
                "key": "SOP-SEL-001",
                "title": "t",
                "owning_team": "x",
                "approval_policy": POLICY,
                "content": "c",
            },
            headers=analyst,
        ),
        409,
    )
    for role in (Role.PARTNER, Role.APPROVER):
        assert_problem(
            await stack.http.post(
                f"{base}/versions",
                json={"content": "x", "change_summary": "y"},
                headers=stack.as_("someone", role=role),
            ),
            403,
        )
    # Missing things are 404; bad path parameters 422.
    reader = stack.as_("reader")
    assert_problem(await stack.http.get("/api/v1/sops/999999999", headers=reader), 404)
    assert_problem(await stack.http.get(f"{base}/versions/7", headers=reader), 404)
    assert_problem(await stack.http.get(f"{base}/diff?from=1&to=9", headers=reader), 404)
    assert_problem(await stack.http.get("/api/v1/sops/0", headers=reader), 422)
    assert_problem(await stack.http.get("/api/v1/sops/abc", headers=reader), 422)
    assert_problem(await stack.http.get("/api/v1/rollouts/424242", headers=reader), 404)
    assert_problem(
        await stack.http.get("/api/v1/sops", params={"cursor": "nonsense"}, headers=reader), 422
    )
    assert_problem(await stack.http.get(f"{base}/versions/1/approval", headers=reader), 404)
    # Wrong state: a second draft, deciding or rolling out a draft, retiring a draft.
    assert_problem(
        await stack.http.post(
            f"{base}/versions", json={"content": "x", "change_summary": "y"}, headers=analyst
        ),
        409,
    )
    assert_problem(
        await stack.http.post(
            f"{base}/versions/1/decisions", json={"decision": "approve"}, headers=stack.as_("r1")
        ),
        409,
    )
    assert_problem(
        await stack.http.post(
            f"{base}/versions/1/decisions", json={"decision": "maybe"}, headers=stack.as_("r1")
        ),
        422,
    )
    pm = stack.as_("pm", role=Role.PROGRAM_MANAGER)
    due = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    rollout = {"waves": [{"orgs": ["india"], "due_at": due}]}
    refused = assert_problem(
        await stack.http.post(f"{base}/versions/1/rollouts", json=rollout, headers=pm),
        409,
        "invalid-transition",
    )
    assert refused["current_status"] == "draft"
    assert_problem(
        await stack.http.post(f"{base}/versions/1/rollouts", json=rollout, headers=analyst), 403
    )
    assert_problem(await stack.http.post(f"{base}/versions/1/retire", headers=pm), 409)
    # Internal routes are for the worker only.
    assert_problem(await stack.http.get("/internal/sops/reviews/due", headers=analyst), 403)
    # Anonymous calls are refused.
    assert_problem(await stack.http.get("/api/v1/parity"), 401)


async def test_rollout_validation_and_acknowledgement_errors(stack: SopStack) -> None:
    sop = await new_sop(stack, "SOP-SEL-002")
    base = f"/api/v1/sops/{sop['id']}"
    assert (
        await stack.http.post(f"{base}/versions/1/submit", headers=stack.as_("analyst-1"))
    ).status_code == 200
    assert (
        await stack.http.post(
            f"{base}/versions/1/decisions", json={"decision": "approve"}, headers=stack.as_("r1")
        )
    ).status_code == 200
    for _ in range(100):
        version = (await stack.http.get(f"{base}/versions/1", headers=stack.as_("r"))).json()
        if version["status"] == "approved":
            break
        await asyncio.sleep(0.1)
    assert version["status"] == "approved"
    pm = stack.as_("pm", role=Role.PROGRAM_MANAGER)
    now = datetime.now(UTC)
    later = (now + timedelta(days=2)).isoformat()
    for waves, field in (
        ([{"orgs": ["atlantis"], "due_at": later}], "body.waves.0.orgs"),
        (
            [{"orgs": ["india"], "due_at": later}, {"orgs": ["india"], "due_at": later}],
            "body.waves.1.orgs",
        ),
        (
            [{"orgs": ["india"], "due_at": (now - timedelta(hours=1)).isoformat()}],
            "body.waves.0.due_at",
        ),
    ):
        problem = assert_problem(
            await stack.http.post(f"{base}/versions/1/rollouts", json={"waves": waves}, headers=pm),
            422,
        )
        assert problem["errors"][0]["field"] == field
    assert_problem(
        await stack.http.post(
            f"{base}/versions/1/rollouts",
            json={"waves": [{"orgs": ["india"], "due_at": "2030-01-01T00:00:00"}]},
            headers=pm,
        ),
        422,
    )
    key = str(uuid.uuid4())
    body = {"waves": [{"orgs": ["india", "buyer-risk-partners"], "due_at": later}]}
    first = await stack.http.post(
        f"{base}/versions/1/rollouts", json=body, headers={**pm, "Idempotency-Key": key}
    )
    assert first.status_code == 201, first.text
    again = await stack.http.post(
        f"{base}/versions/1/rollouts", json=body, headers={**pm, "Idempotency-Key": key}
    )
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    rollout_id = first.json()["id"]
    acks = f"/api/v1/rollouts/{rollout_id}/acknowledgements"
    assert_problem(await stack.http.post(acks, json={"org": "costa-rica"}, headers=pm), 422)
    assert_problem(
        await stack.http.post(acks, json={"org": "india"}, headers=stack.as_("lead-costa-rica")),
        403,
    )
    assert_problem(await stack.http.post(acks, json={"org": "INDIA!"}, headers=pm), 422)
    # A program manager may acknowledge on an org's behalf; a repeat changes nothing.
    done = await stack.http.post(acks, json={"org": "india"}, headers=pm)
    assert done.status_code == 200, done.text
    repeat = await stack.http.post(acks, json={"org": "india"}, headers=pm)

    def india(response: Any) -> tuple[Any, ...]:
        # Not the notice counters: the workflow may record a first notice meanwhile.
        row = next(o for o in response.json()["orgs"] if o["org"] == "india")
        return row["state"], row["acknowledged_at"], row["acknowledged_by"], row["late"]

    assert india(repeat) == india(done)
    assert india(done)[2] == "pm"
    orgs = await stack.http.get("/api/v1/orgs", headers=stack.as_("r"))
    assert {o["id"] for o in orgs.json()} >= {
        "india",
        "costa-rica",
        "san-jose",
        "buyer-risk-partners",
    }


async def test_periodic_review_status_and_sweep(stack: SopStack) -> None:
    soon = await new_sop(stack, "SOP-REV-001", review_interval_days=10)
    late = await new_sop(stack, "SOP-REV-002")
    fine = await new_sop(stack, "SOP-REV-003")
    assert (soon["review_status"], fine["review_status"]) == ("due_soon", "ok")
    # Make one review overdue (as if a year had passed).
    async with stack.sop_app.state.runtime.sessionmaker() as session:
        await session.execute(
            update(Sop)
            .where(Sop.id == late["id"])
            .values(next_review_at=datetime.now(UTC) - timedelta(days=3))
        )
        await session.commit()
    read = await stack.http.get(f"/api/v1/sops/{late['id']}", headers=stack.as_("r"))
    assert read.json()["review_status"] == "overdue"

    async def sweep() -> int:
        result: int = await stack.temporal.execute_workflow(
            SopReviewSweepWorkflow.run,
            SopReviewSweepInput(remind_before_days=30),
            id=f"sop-review-sweep-test-{uuid.uuid4().hex[:8]}",
            task_queue=stack.settings.task_queue,
        )
        return result

    assert await sweep() == 2
    due = await stack.published(f"sop-{soon['id']}:review:")
    overdue = await stack.published(f"sop-{late['id']}:review:")
    assert [(e.type, e.data["overdue"]) for e in due] == [("sop.review_due", False)]
    assert [(e.type, e.data["overdue"]) for e in overdue] == [("sop.review_due", True)]
    assert overdue[0].data["recipients"] == ["analyst-1"]
    assert not await stack.published(f"sop-{fine['id']}:review:")
    # A second sweep the same day notifies nobody twice.
    assert await sweep() == 2
    assert len(await stack.published(f"sop-{late['id']}:review:")) == 1
    kinds = [e["kind"] for e in await stack.events(late["id"])]
    assert kinds.count("review_overdue") == 1
    # Recording the review moves the next one a full interval ahead.
    reviewed = await stack.http.post(
        f"/api/v1/sops/{late['id']}/reviews",
        json={"note": "still right"},
        headers=stack.as_("analyst-1"),
    )
    assert reviewed.status_code == 200, reviewed.text
    assert reviewed.json()["review_status"] == "ok"
    assert reviewed.json()["last_reviewed_at"] is not None
    assert await sweep() == 1


async def test_the_review_sweep_schedule_is_created_once(stack: SopStack) -> None:
    schedule_id = f"sop-review-sweep-test-{uuid.uuid4().hex[:8]}"
    queue = stack.settings.task_queue
    try:
        assert await ensure_sop_review_schedule(
            stack.temporal, task_queue=queue, schedule_id=schedule_id
        )
        assert not await ensure_sop_review_schedule(
            stack.temporal, task_queue=queue, schedule_id=schedule_id
        )
        described = await stack.temporal.get_schedule_handle(schedule_id).describe()
        assert described.schedule.spec.intervals[0].every == timedelta(days=1)
    finally:
        await stack.temporal.get_schedule_handle(schedule_id).delete()
