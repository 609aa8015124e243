"""SopApprovalWorkflow through the API on the real stack: percentage quorums and early rejection,
one rejection back to draft and a second round, the author refused by the update validator (no
trace in history), reminders and escalation to the owner."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType

from services.common.identity import Role
from services.common.settings import Settings
from tests.service.sop_stack import SopStack, assert_problem, eventually, running_sop_stack
from workflows.contracts import sop_approval_workflow_id

AUTHOR = "analyst-mei"
OWNER = "pm-owner"


@pytest.fixture
async def stack(make_settings: Callable[..., Settings]) -> AsyncIterator[SopStack]:
    async with running_sop_stack(make_settings) as running:
        yield running


async def submitted_sop(stack: SopStack, key: str, policy: dict[str, Any]) -> dict[str, Any]:
    created = await stack.http.post(
        "/api/v1/sops",
        json={
            "key": key,
            "title": "Refund abuse review",
            "owning_team": "risk-mining",
            "owner": OWNER,
            "approval_policy": policy,
            "content": "# Refund abuse\nStep one.\n",
        },
        headers=stack.as_(AUTHOR),
    )
    assert created.status_code == 201, created.text
    sop: dict[str, Any] = created.json()
    submitted = await stack.http.post(
        f"/api/v1/sops/{sop['id']}/versions/1/submit", headers=stack.as_(AUTHOR)
    )
    assert submitted.status_code == 200, submitted.text
    sop["version_id"] = submitted.json()["id"]
    return sop


async def decide(
    stack: SopStack,
    sop_id: int,
    who: str,
    decision: str,
    comment: str | None = None,
    number: int = 1,
) -> Any:
    body: dict[str, Any] = {"decision": decision}
    if comment is not None:
        body["comment"] = comment
    return await stack.http.post(
        f"/api/v1/sops/{sop_id}/versions/{number}/decisions",
        json=body,
        headers=stack.as_(who, role=Role.APPROVER),
    )


async def status_of(stack: SopStack, sop_id: int, number: int = 1) -> str:
    response = await stack.http.get(
        f"/api/v1/sops/{sop_id}/versions/{number}", headers=stack.as_("reader")
    )
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


async def test_percentage_quorum_ends_early_when_it_can_no_longer_be_met(stack: SopStack) -> None:
    sop = await submitted_sop(
        stack,
        "SOP-REF-001",
        {
            "stages": [{"name": "reviewers", "approvers": ["r1", "r2", "r3"], "min_percent": 60}],
            "reject_returns_to_draft": False,
        },
    )
    sop_id = sop["id"]
    # A rejection needs a comment (the validator says so, as a 422).
    no_comment = assert_problem(await decide(stack, sop_id, "r1", "reject"), 422)
    assert no_comment["errors"][0]["field"] == "body.comment"
    first = await decide(stack, sop_id, "r1", "reject", "misses chargebacks")
    assert first.status_code == 200, first.text
    # 60 % of 3 is 2 approvals: one rejection leaves it reachable.
    assert (first.json()["stage_status"], first.json()["outcome"]) == ("open", None)
    second = await decide(stack, sop_id, "r2", "reject", "agree with r1")
    assert second.status_code == 200, second.text
    assert (second.json()["stage_status"], second.json()["outcome"]) == ("rejected", "rejected")
    await eventually(lambda: status_of(stack, sop_id), lambda s: s == "rejected")
    # r3 never got to decide: the version is out of review.
    assert_problem(await decide(stack, sop_id, "r3", "approve"), 409)
    trail = [
        e
        for e in await stack.events(sop_id)
        if e["kind"] in ("decision", "rejected", "approval_requested")
    ]
    assert [(e["kind"], e["actor"], e["comment"]) for e in trail] == [
        ("approval_requested", "approval-workflow", None),
        ("decision", "r1", "misses chargebacks"),
        ("decision", "r2", "agree with r1"),
        ("rejected", "approval-workflow", None),
    ]
    assert trail[1]["data"]["decision"] == "reject"
    requested = await stack.published(f"sop-version-{sop['version_id']}:r1:s0:requested")
    assert [e.type for e in requested] == ["sop.approval_requested"]
    assert requested[0].data["recipients"] == ["r1", "r2", "r3"]


async def test_one_rejection_returns_to_draft_and_a_second_round_approves(
    stack: SopStack,
) -> None:
    sop = await submitted_sop(
        stack,
        "SOP-REF-002",
        {"stages": [{"name": "reviewers", "approvers": ["r1", "r2"], "min_approvals": 1}]},
    )
    sop_id = sop["id"]
    back = await decide(stack, sop_id, "r2", "reject", "add the escalation path")
    assert back.status_code == 200, back.text
    assert back.json()["outcome"] == "returned_to_draft"
    await eventually(lambda: status_of(stack, sop_id), lambda s: s == "draft")
    edited = await stack.http.patch(
        f"/api/v1/sops/{sop_id}/versions/1",
        json={"content": "# Refund abuse\nStep one.\nEscalate to buyer-risk.\n"},
        headers=stack.as_(AUTHOR),
    )
    assert edited.status_code == 200, edited.text
    resubmitted = await stack.http.post(
        f"/api/v1/sops/{sop_id}/versions/1/submit", headers=stack.as_(AUTHOR)
    )
    assert resubmitted.status_code == 200, resubmitted.text
    assert resubmitted.json()["review_round"] == 2
    # r2 decides again in the new round.
    approved = await decide(stack, sop_id, "r2", "approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["outcome"] == "approved"
    await eventually(lambda: status_of(stack, sop_id), lambda s: s == "approved")
    # Editing an approved version is refused with the allowed actions.
    refused = assert_problem(
        await stack.http.patch(
            f"/api/v1/sops/{sop_id}/versions/1", json={"content": "x"}, headers=stack.as_(AUTHOR)
        ),
        409,
        "invalid-transition",
    )
    assert refused["current_status"] == "approved"


async def test_the_author_is_refused_by_the_validator_and_leaves_no_trace(
    stack: SopStack,
) -> None:
    # The author is listed as an approver; two others can still reach the quorum of two.
    sop = await submitted_sop(
        stack,
        "SOP-REF-003",
        {"stages": [{"name": "peers", "approvers": [AUTHOR, "p1", "p2"], "min_approvals": 2}]},
    )
    sop_id = sop["id"]
    refused = assert_problem(await decide(stack, sop_id, AUTHOR, "approve"), 403, "forbidden")
    assert "author" in refused["detail"]
    assert_problem(await decide(stack, sop_id, "stranger", "approve"), 403)
    assert (await decide(stack, sop_id, "p1", "approve")).status_code == 200
    handle = stack.temporal.get_workflow_handle(sop_approval_workflow_id(sop["version_id"], 1))
    history = await handle.fetch_history()
    accepted = [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]
    # Only p1's decision reached history; the refused ones wrote nothing.
    assert len(accepted) == 1
    state = await stack.http.get(
        f"/api/v1/sops/{sop_id}/versions/1/approval", headers=stack.as_("reader")
    )
    stage = state.json()["stages"][0]
    assert (stage["approvers"], stage["approvals"], stage["required"]) == (["p1", "p2"], ["p1"], 2)
    # A policy whose quorum needs the author is refused at submission.
    created = await stack.http.post(
        "/api/v1/sops",
        json={
            "key": "SOP-REF-013",
            "title": "Needs the author",
            "owning_team": "risk-mining",
            "approval_policy": {"stages": [{"name": "peers", "approvers": [AUTHOR, "p1"]}]},
            "content": "x",
        },
        headers=stack.as_(AUTHOR),
    )
    assert created.status_code == 201, created.text
    unreachable = assert_problem(
        await stack.http.post(
            f"/api/v1/sops/{created.json()['id']}/versions/1/submit", headers=stack.as_(AUTHOR)
        ),
        422,
    )
    assert unreachable["errors"][0]["code"] == "quorum_unreachable"
    assert await status_of(stack, created.json()["id"]) == "draft"


async def test_pending_approvers_are_reminded_and_the_owner_escalated(stack: SopStack) -> None:
    sop = await submitted_sop(
        stack,
        "SOP-REF-004",
        {
            "stages": [{"name": "reviewers", "approvers": ["r1", "r2"], "min_approvals": 2}],
            "reminder_interval": "PT1S",
            "escalate_after": "PT2.5S",
        },
    )
    sop_id = sop["id"]
    assert (await decide(stack, sop_id, "r1", "approve")).status_code == 200
    prefix = f"sop-version-{sop['version_id']}:r1:s0:"
    escalated = await eventually(
        lambda: stack.published(prefix + "escalated"), lambda rows: len(rows) == 1, within=20
    )
    assert escalated[0].type == "sop.reminder"
    assert escalated[0].data["recipients"] == [OWNER]
    assert escalated[0].data["pending_approvers"] == ["r2"]
    # Reminders keep coming every interval; under load the escalation may overtake the second.
    reminders = await eventually(
        lambda: stack.published(prefix + "reminder:"), lambda rows: len(rows) >= 2, within=20
    )
    # Only the approver still pending is reminded.
    assert all(r.data["recipients"] == ["r2"] for r in reminders)
    kinds = [e["kind"] for e in await stack.events(sop_id)]
    assert kinds.count("approval_escalated") == 1
    assert kinds.count("approval_reminder") >= 2
    # The escalation does not end the stage: r2 can still approve.
    done = await decide(stack, sop_id, "r2", "approve")
    assert done.json()["outcome"] == "approved"
