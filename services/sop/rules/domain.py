"""Pure rules of detection rules: statuses and transitions, the "non-impacting" test, and the check
of a monitoring period. No I/O.

    active -> deprecation_proposed -> monitoring -> deprecated
    deprecation_proposed | monitoring -> retained -> deprecation_proposed (proposed again)

Transitions are driven by the deprecation workflow, never by a free status write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from services.common.errors import Forbidden, InvalidTransition, ValidationFailed
from services.common.identity import Identity, Role

DEFAULT_NO_HITS_DAYS = 90
DEFAULT_PRECISION_FLOOR = 0.1
DEFAULT_PRECISION_WEEKS = 4
DEFAULT_MONITORING_SECONDS = 28 * 86_400
MAX_MONITORING_SECONDS = 366 * 86_400


class RuleKind(StrEnum):
    """What an inventory entry is: a detection rule, or an ML model (services/sop/rules/ml_models.py
    holds what is particular to models); both go through the same monitored deprecation."""

    RULE = "rule"
    MODEL = "model"


class RuleStatus(StrEnum):
    """Where a rule is in its life; `deprecated` is terminal."""

    ACTIVE = "active"
    DEPRECATION_PROPOSED = "deprecation_proposed"
    MONITORING = "monitoring"
    DEPRECATED = "deprecated"
    RETAINED = "retained"


class RuleAction(StrEnum):
    """Steps of a deprecation: the API proposes, the workflow does the rest."""

    PROPOSE_DEPRECATION = "propose_deprecation"
    START_MONITORING = "start_monitoring"
    DEPRECATE = "deprecate"
    RETAIN = "retain"


class DeprecationStage(StrEnum):
    """Where one deprecation proposal is (finer than the rule's status)."""

    PROPOSED = "proposed"
    MONITORING = "monitoring"
    AWAITING_APPROVAL = "awaiting_approval"
    DEPRECATED = "deprecated"
    RETAINED = "retained"


class Decision(StrEnum):
    """An approver's answer to a clean monitoring period."""

    APPROVE = "approve"
    REJECT = "reject"


class CandidateReason(StrEnum):
    """Why a rule is listed as non-impacting."""

    NO_HITS = "no_hits"
    LOW_PRECISION = "low_precision"
    # Models only: too little volume actioned (services/sop/rules/ml_models.py).
    LOW_VOLUME = "low_volume"


R = RuleStatus
TRANSITIONS: Mapping[RuleAction, tuple[frozenset[RuleStatus], RuleStatus]] = {
    RuleAction.PROPOSE_DEPRECATION: (frozenset({R.ACTIVE, R.RETAINED}), R.DEPRECATION_PROPOSED),
    RuleAction.START_MONITORING: (frozenset({R.DEPRECATION_PROPOSED}), R.MONITORING),
    RuleAction.DEPRECATE: (frozenset({R.MONITORING}), R.DEPRECATED),
    RuleAction.RETAIN: (frozenset({R.DEPRECATION_PROPOSED, R.MONITORING}), R.RETAINED),
}

# Who may write the inventory (rules, metrics, proposals) and who may decide a deprecation.
WRITER_ROLES = frozenset({Role.ANALYST, Role.PROGRAM_MANAGER, Role.ADMIN, Role.SYSTEM})
DECIDER_ROLES = frozenset({Role.PROGRAM_MANAGER, Role.APPROVER, Role.ADMIN})


def plan_rule_transition(status: RuleStatus, action: RuleAction) -> RuleStatus:
    """The status `action` leads to from `status`, or a 409 naming the allowed actions."""
    sources, target = TRANSITIONS[action]
    if status not in sources:
        allowed = sorted(a.value for a, (s, _) in TRANSITIONS.items() if status in s)
        raise InvalidTransition(
            f"A rule in status {status.value} cannot {action.value}.",
            current=status.value,
            allowed=allowed,
        )
    return target


def require_writer(caller: Identity, what: str) -> None:
    """403 unless the caller may change the rule inventory."""
    if caller.role not in WRITER_ROLES:
        raise Forbidden(f"The role {caller.role.value} may not {what}.")


def require_decider(caller: Identity) -> None:
    """403 unless the caller may approve or reject a deprecation."""
    if caller.role not in DECIDER_ROLES:
        raise Forbidden(
            f"The role {caller.role.value} may not decide a rule deprecation "
            "(program_manager, approver or admin may)."
        )


def week_start_of(day: date) -> date:
    """The Monday of `day`'s ISO week."""
    return day - timedelta(days=day.weekday())


def field_error(field_name: str, message: str, *, code: str) -> ValidationFailed:
    """A 422 naming one body field."""
    return ValidationFailed(
        message, errors=[{"field": f"body.{field_name}", "message": message, "code": code}]
    )


@dataclass(frozen=True, slots=True)
class Criteria:
    """The "non-impacting" test: no hits in `no_hits_days`, or precision below `precision_floor`
    over the last `precision_weeks` weekly snapshots that had hits."""

    no_hits_days: int = DEFAULT_NO_HITS_DAYS
    precision_floor: float = DEFAULT_PRECISION_FLOOR
    precision_weeks: int = DEFAULT_PRECISION_WEEKS

    def to_dict(self) -> dict[str, Any]:
        """JSON form (stored with a deprecation, echoed by the API)."""
        return {
            "no_hits_days": self.no_hits_days,
            "precision_floor": self.precision_floor,
            "precision_weeks": self.precision_weeks,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Criteria:
        """Inverse of `to_dict` (missing keys take the defaults)."""
        return cls(
            no_hits_days=int(data.get("no_hits_days", DEFAULT_NO_HITS_DAYS)),
            precision_floor=float(data.get("precision_floor", DEFAULT_PRECISION_FLOOR)),
            precision_weeks=int(data.get("precision_weeks", DEFAULT_PRECISION_WEEKS)),
        )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The facts of one weekly metric snapshot the pure rules need."""

    week_start: date
    hits: int
    true_positive_rate: float | None
    actioned_accounts: int
    last_fired_at: datetime | None
    updated_at: datetime
    # Models only (None for a rule).
    precision: float | None = None
    recall: float | None = None
    threshold: float | None = None
    volume_actioned: int | None = None


def weighted_precision(snapshots: Iterable[Snapshot]) -> float | None:
    """Hit-weighted true-positive rate of the snapshots that had hits and a known rate."""
    weighted = [(s.hits, s.true_positive_rate) for s in snapshots if s.hits > 0]
    known = [(h, r) for h, r in weighted if r is not None]
    total = sum(h for h, _ in known)
    if not known or total == 0:
        return None
    return sum(h * r for h, r in known) / total


def latest_fire(snapshots: Iterable[Snapshot]) -> datetime | None:
    """When a rule last fired according to its snapshots (None if never reported)."""
    return max((s.last_fired_at for s in snapshots if s.last_fired_at is not None), default=None)


@dataclass(frozen=True, slots=True)
class CandidateFinding:
    """One reason a rule is non-impacting, with the numbers behind it."""

    reason: CandidateReason
    detail: str


def candidate_findings(
    *,
    deployed_at: datetime,
    last_fired_at: datetime | None,
    recent: Sequence[Snapshot],
    now: datetime,
    criteria: Criteria,
) -> list[CandidateFinding]:
    """Why a rule is non-impacting (empty if it is not).

    `recent` are the rule's snapshots of the last `precision_weeks` weeks. A rule that never fired
    counts from its deployment: a rule deployed yesterday is not stale yet.
    """
    findings: list[CandidateFinding] = []
    quiet_since = last_fired_at or deployed_at
    if now - quiet_since >= timedelta(days=criteria.no_hits_days):
        since = (
            "never fired" if last_fired_at is None else f"last fired {last_fired_at.isoformat()}"
        )
        findings.append(
            CandidateFinding(
                CandidateReason.NO_HITS,
                f"No hits in {criteria.no_hits_days} days ({since}).",
            )
        )
    precision = weighted_precision(recent)
    if precision is not None and precision < criteria.precision_floor:
        findings.append(
            CandidateFinding(
                CandidateReason.LOW_PRECISION,
                f"Precision {precision:.3f} below the floor {criteria.precision_floor:.3f} over "
                f"the last {criteria.precision_weeks} weeks.",
            )
        )
    return findings


@dataclass(frozen=True, slots=True)
class MonitoringVerdict:
    """The automatic check of a monitoring period: `clean` means it may be deprecated."""

    clean: bool
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


def evaluate_monitoring(
    *,
    snapshots: Sequence[Snapshot],
    started_at: datetime,
    checked_at: datetime,
    criteria: Criteria,
) -> MonitoringVerdict:
    """Check the snapshots posted during monitoring against the criteria.

    Evidence is what the platform posted between `started_at` and `checked_at` (a late correction
    of a week long before monitoring is not evidence about monitoring). The rule fired during
    monitoring if such a snapshot has hits in a week overlapping the period, or reports a firing
    after it began. A rule that fired stays unless its precision over those weeks is below the
    floor: then it fired, but only on noise.
    """
    posted = [s for s in snapshots if started_at <= s.updated_at <= checked_at]
    first_week = week_start_of(started_at.date())
    fired = [
        s
        for s in posted
        if (s.hits > 0 and first_week <= s.week_start <= checked_at.date())
        or (s.last_fired_at is not None and s.last_fired_at >= started_at)
    ]
    precision = weighted_precision(fired)
    evidence: dict[str, Any] = {
        "monitoring_started_at": started_at.isoformat(),
        "checked_at": checked_at.isoformat(),
        "criteria": criteria.to_dict(),
        "snapshots_posted": len(posted),
        "fired": bool(fired),
        "hits": sum(s.hits for s in fired),
        "actioned_accounts": sum(s.actioned_accounts for s in fired),
        "precision": precision,
        "last_fired_at": _iso(latest_fire(fired)),
        "weeks": [
            {
                "week_start": s.week_start.isoformat(),
                "hits": s.hits,
                "true_positive_rate": s.true_positive_rate,
                "actioned_accounts": s.actioned_accounts,
                "last_fired_at": _iso(s.last_fired_at),
            }
            for s in sorted(fired, key=lambda s: s.week_start)
        ],
    }
    if not fired:
        reason = "No hits during monitoring."
        return MonitoringVerdict(True, reason, {**evidence, "verdict": reason})
    if precision is not None and precision < criteria.precision_floor:
        reason = (
            f"Fired during monitoring, but precision {precision:.3f} is below the floor "
            f"{criteria.precision_floor:.3f}."
        )
        return MonitoringVerdict(True, reason, {**evidence, "verdict": reason})
    reason = f"Fired during monitoring ({evidence['hits']} hits)."
    return MonitoringVerdict(False, reason, {**evidence, "verdict": reason})


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
