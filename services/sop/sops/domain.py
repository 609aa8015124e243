"""Pure rules of SOPs: the version lifecycle, approval quorums, diffs, parity and review dates.

    draft -> in_review -> approved -> rolling_out -> effective -> superseded | retired
                       -> rejected
             in_review -> draft (a rejection sent it back, when the policy says so)

No I/O: the service applies these rules inside its transactions.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from services.common.errors import InvalidTransition, ValidationFailed


class VersionStatus(StrEnum):
    """Where an SOP version is in its life."""

    DRAFT = "draft"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    ROLLING_OUT = "rolling_out"
    EFFECTIVE = "effective"
    SUPERSEDED = "superseded"
    RETIRED = "retired"


class VersionAction(StrEnum):
    """What moves a version (some by a caller, some by a workflow)."""

    EDIT = "edit"
    SUBMIT = "submit"
    APPROVE = "approve"
    REJECT = "reject"
    RETURN_TO_DRAFT = "return_to_draft"
    ROLL_OUT = "roll_out"
    TAKE_EFFECT = "take_effect"
    SUPERSEDE = "supersede"
    RETIRE = "retire"


class RolloutStatus(StrEnum):
    """A rollout runs until every org acknowledged, or it is cancelled."""

    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class ApprovalOutcome(StrEnum):
    """How an approval workflow ended."""

    APPROVED = "approved"
    REJECTED = "rejected"
    RETURNED_TO_DRAFT = "returned_to_draft"


class Decision(StrEnum):
    """An approver's decision."""

    APPROVE = "approve"
    REJECT = "reject"


V = VersionStatus
TRANSITIONS: Mapping[VersionAction, tuple[frozenset[VersionStatus], VersionStatus]] = {
    VersionAction.EDIT: (frozenset({V.DRAFT}), V.DRAFT),
    VersionAction.SUBMIT: (frozenset({V.DRAFT}), V.IN_REVIEW),
    VersionAction.APPROVE: (frozenset({V.IN_REVIEW}), V.APPROVED),
    VersionAction.REJECT: (frozenset({V.IN_REVIEW}), V.REJECTED),
    VersionAction.RETURN_TO_DRAFT: (frozenset({V.IN_REVIEW}), V.DRAFT),
    VersionAction.ROLL_OUT: (frozenset({V.APPROVED}), V.ROLLING_OUT),
    VersionAction.TAKE_EFFECT: (frozenset({V.ROLLING_OUT}), V.EFFECTIVE),
    VersionAction.SUPERSEDE: (frozenset({V.EFFECTIVE, V.ROLLING_OUT, V.APPROVED}), V.SUPERSEDED),
    VersionAction.RETIRE: (frozenset({V.EFFECTIVE}), V.RETIRED),
}
OPEN_STATUSES = frozenset({V.DRAFT, V.IN_REVIEW})
OUTCOME_ACTIONS: Mapping[ApprovalOutcome, VersionAction] = {
    ApprovalOutcome.APPROVED: VersionAction.APPROVE,
    ApprovalOutcome.REJECTED: VersionAction.REJECT,
    ApprovalOutcome.RETURNED_TO_DRAFT: VersionAction.RETURN_TO_DRAFT,
}
DEFAULT_REVIEW_INTERVAL_DAYS = 365


def plan_version_transition(status: VersionStatus, action: VersionAction) -> VersionStatus:
    """The status `action` leads to from `status`, or a 409 naming what is allowed."""
    sources, target = TRANSITIONS[action]
    if status not in sources:
        allowed = sorted(a.value for a, (s, _) in TRANSITIONS.items() if status in s)
        raise InvalidTransition(
            f"A version in status {status.value} cannot {action.value}; "
            f"allowed: {', '.join(allowed) or 'none'}.",
            current=status.value,
            allowed=allowed,
        )
    return target


def required_approvals(
    approver_count: int, *, min_approvals: int | None, min_percent: int | None
) -> int:
    """The approvals a stage needs: k of n, or a percentage of n rounded up (at least one)."""
    if min_approvals is not None:
        return min_approvals
    percent = 100 if min_percent is None else min_percent
    return max(1, math.ceil(approver_count * percent / 100))


@dataclass(frozen=True, slots=True)
class StagePlan:
    """A stage of a policy resolved for one version: who may approve and how many must."""

    name: str
    approvers: tuple[str, ...]
    required: int


def plan_stages(
    stages: Sequence[tuple[str, Sequence[str], int | None, int | None]], *, author: str
) -> list[StagePlan]:
    """Resolve a policy's stages for a version by `author`, who never counts as an approver.

    Refuses (422) a stage whose quorum the remaining approvers could never reach.
    """
    plans = []
    for index, (name, approvers, min_approvals, min_percent) in enumerate(stages):
        eligible = tuple(a for a in approvers if a != author)
        required = required_approvals(
            len(approvers), min_approvals=min_approvals, min_percent=min_percent
        )
        if required > len(eligible):
            message = (
                f"Stage {name!r} needs {required} approvals but only {len(eligible)} approvers "
                "other than the author can decide."
            )
            raise ValidationFailed(
                message,
                errors=[
                    {
                        "field": f"approval_policy.stages.{index}",
                        "message": message,
                        "code": "quorum_unreachable",
                    }
                ],
            )
        plans.append(StagePlan(name=name, approvers=eligible, required=required))
    return plans


def unified_diff(old: str, new: str, *, old_label: str, new_label: str, context: int = 3) -> str:
    """A unified diff of two markdown texts (empty when they are equal)."""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=old_label,
            tofile=new_label,
            n=context,
        )
    )


def review_state(next_review_at: datetime, *, now: datetime, remind_before: timedelta) -> str:
    """`ok`, `due_soon` (within the reminder window) or `overdue`."""
    if next_review_at <= now:
        return "overdue"
    if next_review_at - now <= remind_before:
        return "due_soon"
    return "ok"


@dataclass(frozen=True, slots=True)
class OrgStanding:
    """An org's position on one SOP: the version in effect there and since when."""

    org_id: str
    version_in_effect: int | None
    adopted_at: datetime | None


@dataclass(frozen=True, slots=True)
class OrgParity:
    """Whether an org is at the newest effective version and, if not, since when it lags."""

    org_id: str
    version_in_effect: int | None
    adopted_at: datetime | None
    at_parity: bool
    lagging_since: datetime | None
    lag_seconds: float | None


def parity_of(
    standings: Sequence[OrgStanding],
    *,
    newest_effective: int | None,
    effective_since: datetime | None,
    now: datetime,
) -> tuple[list[OrgParity], float | None]:
    """Each org's parity with the newest effective version, and the SOP's parity percentage.

    An org is at parity when the version in effect there is the newest effective one (or newer);
    a laggard lags since the newest version took effect. Without an effective version, or without
    orgs in scope, there is no percentage (None).
    """
    rows = []
    for standing in standings:
        at_parity = (
            newest_effective is not None
            and standing.version_in_effect is not None
            and standing.version_in_effect >= newest_effective
        )
        lagging_since = None if at_parity or newest_effective is None else effective_since
        rows.append(
            OrgParity(
                org_id=standing.org_id,
                version_in_effect=standing.version_in_effect,
                adopted_at=standing.adopted_at,
                at_parity=at_parity,
                lagging_since=lagging_since,
                lag_seconds=max((now - lagging_since).total_seconds(), 0.0)
                if lagging_since is not None
                else None,
            )
        )
    if newest_effective is None or not rows:
        return rows, None
    return rows, round(100.0 * sum(r.at_parity for r in rows) / len(rows), 2)
