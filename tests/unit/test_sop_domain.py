"""Pure SOP rules: version lifecycle, quorums, stage outcomes, diffs, parity, rollout planning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.common.errors import InvalidTransition, ValidationFailed
from services.sop.sops.domain import (
    TRANSITIONS,
    OrgStanding,
    VersionAction,
    VersionStatus,
    parity_of,
    plan_stages,
    plan_version_transition,
    required_approvals,
    review_state,
    unified_diff,
)
from workflows.contracts import RolloutOrgTarget
from workflows.sop_approval import stage_outcome
from workflows.sop_rollout import RolloutAction, plan_rollout

T0 = datetime(2026, 11, 28, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "action", "target"),
    [
        (VersionStatus.DRAFT, VersionAction.SUBMIT, VersionStatus.IN_REVIEW),
        (VersionStatus.IN_REVIEW, VersionAction.APPROVE, VersionStatus.APPROVED),
        (VersionStatus.IN_REVIEW, VersionAction.REJECT, VersionStatus.REJECTED),
        (VersionStatus.IN_REVIEW, VersionAction.RETURN_TO_DRAFT, VersionStatus.DRAFT),
        (VersionStatus.APPROVED, VersionAction.ROLL_OUT, VersionStatus.ROLLING_OUT),
        (VersionStatus.ROLLING_OUT, VersionAction.TAKE_EFFECT, VersionStatus.EFFECTIVE),
        (VersionStatus.EFFECTIVE, VersionAction.SUPERSEDE, VersionStatus.SUPERSEDED),
        (VersionStatus.EFFECTIVE, VersionAction.RETIRE, VersionStatus.RETIRED),
    ],
)
def test_lifecycle_allows_the_documented_moves(
    status: VersionStatus, action: VersionAction, target: VersionStatus
) -> None:
    assert plan_version_transition(status, action) is target


def test_every_other_move_is_a_409_naming_what_is_allowed() -> None:
    for status in VersionStatus:
        for action, (sources, _) in TRANSITIONS.items():
            if status in sources:
                continue
            with pytest.raises(InvalidTransition) as refused:
                plan_version_transition(status, action)
            assert refused.value.extra["current_status"] == status.value
            allowed = refused.value.extra["allowed_actions"]
            assert action.value not in allowed
            assert all(status in TRANSITIONS[VersionAction(a)][0] for a in allowed)


@pytest.mark.parametrize(
    ("n", "k", "percent", "required"),
    [
        (3, 2, None, 2),
        (3, None, 50, 2),
        (4, None, 50, 2),
        (5, None, 60, 3),
        (3, None, None, 3),
        (1, None, 1, 1),
        (10, None, 100, 10),
    ],
)
def test_required_approvals(n: int, k: int | None, percent: int | None, required: int) -> None:
    assert required_approvals(n, min_approvals=k, min_percent=percent) == required


def test_the_author_never_counts_and_an_unreachable_quorum_is_refused() -> None:
    plans = plan_stages(
        [("leads", ["ana", "bo", "cy"], 2, None), ("director", ["dee"], None, None)],
        author="ana",
    )
    assert plans[0].approvers == ("bo", "cy")
    assert plans[0].required == 2
    with pytest.raises(ValidationFailed) as refused:
        plan_stages([("leads", ["ana", "bo"], 2, None)], author="ana")
    assert refused.value.extra["errors"][0]["code"] == "quorum_unreachable"


@pytest.mark.parametrize(
    ("required", "n", "yes", "no", "returns", "expected"),
    [
        (2, 3, 2, 0, False, "approved"),
        (2, 3, 1, 0, False, "open"),
        (2, 3, 1, 1, False, "open"),  # one more approval still reaches the quorum
        (2, 3, 0, 2, False, "rejected"),  # early: the third approver cannot save it
        (3, 3, 2, 1, False, "rejected"),
        (2, 3, 0, 1, True, "returned"),  # one rejection sends it back to draft
        (1, 3, 1, 1, True, "approved"),
    ],
)
def test_stage_outcome(
    required: int, n: int, yes: int, no: int, returns: bool, expected: str
) -> None:
    assert (
        stage_outcome(
            required=required, approvers=n, approvals=yes, rejections=no, reject_returns=returns
        )
        == expected
    )


def test_unified_diff_between_versions() -> None:
    diff = unified_diff(
        "# Steps\n1. Check account\n2. Close\n",
        "# Steps\n1. Check account\n2. Check device\n3. Close\n",
        old_label="SOP-ACC-012 v1",
        new_label="SOP-ACC-012 v2",
    )
    assert diff.startswith("--- SOP-ACC-012 v1\n+++ SOP-ACC-012 v2\n")
    assert "-2. Close\n" in diff
    assert "+2. Check device\n" in diff
    assert unified_diff("same\n", "same\n", old_label="a", new_label="b") == ""


def test_review_state() -> None:
    window = timedelta(days=30)
    assert review_state(T0 + timedelta(days=31), now=T0, remind_before=window) == "ok"
    assert review_state(T0 + timedelta(days=30), now=T0, remind_before=window) == "due_soon"
    assert review_state(T0, now=T0, remind_before=window) == "overdue"


def test_parity_names_laggards_and_how_long_they_lag() -> None:
    since = T0 - timedelta(hours=5)
    rows, percent = parity_of(
        [
            OrgStanding("india", 2, since),
            OrgStanding("costa-rica", 1, T0 - timedelta(days=90)),
            OrgStanding("san-jose", None, None),
        ],
        newest_effective=2,
        effective_since=since,
        now=T0,
    )
    assert percent == 33.33
    assert [r.at_parity for r in rows] == [True, False, False]
    assert rows[0].lagging_since is None
    assert rows[1].lagging_since == since
    assert rows[1].lag_seconds == 5 * 3600
    assert rows[2].lag_seconds == 5 * 3600
    # No effective version yet: nobody lags, there is no percentage.
    rows, percent = parity_of(
        [OrgStanding("india", None, None)], newest_effective=None, effective_since=None, now=T0
    )
    assert percent is None
    assert rows[0].lagging_since is None


def _org(org_id: str, *, start: int = 0, due: int = 100, **extra: object) -> RolloutOrgTarget:
    return RolloutOrgTarget(
        org_id=org_id,
        lead_subject=f"lead-{org_id}",
        wave=1,
        starts_at=T0 + timedelta(seconds=start),
        due_at=T0 + timedelta(seconds=due),
        **extra,  # type: ignore[arg-type]
    )


def test_rollout_plan_notices_then_reminders_then_one_escalation() -> None:
    interval = timedelta(seconds=30)
    orgs = [_org("india"), _org("costa-rica", start=50), _org("san-jose", acknowledged=True)]
    actions, wake = plan_rollout(orgs, now=T0, interval=interval)
    assert actions == [RolloutAction("remind", "india", 0)]
    orgs[0].reminders_sent = 1
    actions, wake = plan_rollout(orgs, now=T0, interval=interval)
    assert actions == []
    assert wake == T0 + timedelta(seconds=30)
    orgs[0].reminders_sent = 4  # 4 * 30 s is past due: no more reminders, wake at due
    actions, wake = plan_rollout(orgs, now=T0 + timedelta(seconds=95), interval=interval)
    assert actions == [RolloutAction("remind", "costa-rica", 0)]
    actions, wake = plan_rollout(orgs, now=T0 + timedelta(seconds=100), interval=interval)
    assert RolloutAction("escalate", "india") in actions
    orgs[0].escalated = orgs[1].escalated = True
    actions, wake = plan_rollout(orgs, now=T0 + timedelta(seconds=200), interval=interval)
    assert actions == []
    assert wake is None
