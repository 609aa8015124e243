"""What is particular to ML models in the detection inventory: the metrics they report each week
and the criteria that find them non-impacting. Pure functions, no I/O.

A model reports, per ISO week: `threshold` (the score above which it acts), `precision` and
`recall` at that threshold, `volume_actioned` (accounts or orders it acted on) and, optionally,
`hits` (alerts above the threshold; defaults to `volume_actioned`). A rule reports hits, its
true-positive rate and actioned accounts instead; each kind's fields are refused on the other.

**Model criteria** (the monitored deprecation's check, and the candidate list):

- *low volume*: the volume actioned averaged over the ISO weeks the window spans is below
  `volume_floor` (default 10 a week) - the model no longer acts on enough to matter;
- *low precision*: the hit-weighted precision of the weeks with hits is below `precision_floor`
  (default 0.5) - what it acts on is mostly noise.

Either makes the monitoring period clean (the model may be deprecated, on approval); a model that
acted on at least the floor at or above the precision floor is retained with the evidence. As for
rules, evidence is only what was posted during monitoring about weeks overlapping it; a window
with no report at all counts as no volume.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from services.sop.rules.domain import (
    CandidateFinding,
    CandidateReason,
    MonitoringVerdict,
    RuleKind,
    Snapshot,
    week_start_of,
)

DEFAULT_MODEL_PRECISION_FLOOR = 0.5
DEFAULT_VOLUME_FLOOR = 10
DEFAULT_MODEL_WEEKS = 4
MODEL_ONLY_FIELDS = ("precision", "recall", "threshold", "volume_actioned")
RULE_ONLY_FIELDS = ("true_positive_rate", "actioned_accounts")


@dataclass(frozen=True, slots=True)
class ModelCriteria:
    """When a model is non-impacting: weekly volume actioned below `volume_floor`, or precision
    below `precision_floor`; `weeks` is how far back the candidate list looks."""

    precision_floor: float = DEFAULT_MODEL_PRECISION_FLOOR
    volume_floor: int = DEFAULT_VOLUME_FLOOR
    weeks: int = DEFAULT_MODEL_WEEKS

    def to_dict(self) -> dict[str, Any]:
        """JSON form (stored with a deprecation, echoed by the API)."""
        return {
            "kind": RuleKind.MODEL.value,
            "precision_floor": self.precision_floor,
            "volume_floor": self.volume_floor,
            "weeks": self.weeks,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCriteria:
        """Inverse of `to_dict` (missing keys take the defaults)."""
        return cls(
            precision_floor=float(data.get("precision_floor", DEFAULT_MODEL_PRECISION_FLOOR)),
            volume_floor=int(data.get("volume_floor", DEFAULT_VOLUME_FLOOR)),
            weeks=int(data.get("weeks", data.get("precision_weeks", DEFAULT_MODEL_WEEKS))),
        )


@dataclass(frozen=True, slots=True)
class ReportedMetric:
    """The fields of one posted weekly snapshot, and which of them the caller gave."""

    given: frozenset[str]
    hits: int | None
    true_positive_rate: float | None
    precision: float | None
    recall: float | None
    threshold: float | None
    volume_actioned: int | None


def metric_errors(kind: RuleKind, metric: ReportedMetric, *, prefix: str) -> list[dict[str, str]]:
    """Field errors of a snapshot for a rule or a model (empty if it is valid for that kind)."""

    def error(name: str, message: str, code: str) -> dict[str, str]:
        return {"field": f"{prefix}.{name}", "message": message, "code": code}

    errors: list[dict[str, str]] = []
    if kind is RuleKind.RULE:
        errors += [
            error(name, "only a model reports this", "unexpected")
            for name in MODEL_ONLY_FIELDS
            if name in metric.given
        ]
        if metric.hits is None:
            errors.append(error("hits", "a rule reports its hits", "missing"))
        return errors
    errors += [
        error(name, "a model reports precision and volume_actioned instead", "unexpected")
        for name in RULE_ONLY_FIELDS
        if name in metric.given
    ]
    errors += [
        error(name, "a model reports this every week", "missing")
        for name in ("threshold", "recall", "volume_actioned")
        if getattr(metric, name) is None
    ]
    hits = model_hits(metric)
    if hits is not None and hits > 0 and metric.precision is None:
        errors.append(error("precision", "a model that acted reports its precision", "missing"))
    if hits == 0 and metric.precision is not None:
        errors.append(error("precision", "precision needs hits (or volume) > 0", "invalid"))
    return errors


def model_hits(metric: ReportedMetric) -> int | None:
    """A model's alerts above threshold: `hits` if given, else its volume actioned."""
    return metric.hits if metric.hits is not None else metric.volume_actioned


def weeks_spanned(first: date, last: date) -> int:
    """How many ISO weeks the days `first`..`last` touch (at least one)."""
    return max(1, (week_start_of(last) - week_start_of(first)).days // 7 + 1)


def weighted_model_precision(snapshots: Iterable[Snapshot]) -> float | None:
    """Hit-weighted precision of the snapshots that had hits and a known precision."""
    known = [(s.hits, s.precision) for s in snapshots if s.hits > 0 and s.precision is not None]
    total = sum(h for h, _ in known)
    if total == 0:
        return None
    return sum(h * p for h, p in known if p is not None) / total


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def model_candidate_findings(
    *, recent: Sequence[Snapshot], now: datetime, deployed_at: datetime, criteria: ModelCriteria
) -> list[CandidateFinding]:
    """Why a model is non-impacting over its last `criteria.weeks` weeks (empty if it is not).

    `recent` are its snapshots of those weeks; a model deployed more recently than that is judged
    on the weeks since its deployment only.
    """
    start = max(now.date() - timedelta(weeks=criteria.weeks), deployed_at.date())
    weeks = weeks_spanned(start, now.date())
    weekly = sum(s.volume_actioned or 0 for s in recent) / weeks
    findings: list[CandidateFinding] = []
    if weekly < criteria.volume_floor:
        findings.append(
            CandidateFinding(
                CandidateReason.LOW_VOLUME,
                f"Actioned {weekly:.1f} a week over the last {weeks} weeks, below the floor "
                f"{criteria.volume_floor}.",
            )
        )
    precision = weighted_model_precision(recent)
    if precision is not None and precision < criteria.precision_floor:
        findings.append(
            CandidateFinding(
                CandidateReason.LOW_PRECISION,
                f"Precision {precision:.3f} below the floor {criteria.precision_floor:.3f} over "
                f"the last {weeks} weeks.",
            )
        )
    return findings


def evaluate_model_monitoring(
    *,
    snapshots: Sequence[Snapshot],
    started_at: datetime,
    checked_at: datetime,
    criteria: ModelCriteria,
) -> MonitoringVerdict:
    """Check a model's monitoring period against the model criteria (module docstring)."""
    first_week = week_start_of(started_at.date())
    posted = [s for s in snapshots if started_at <= s.updated_at <= checked_at]
    covering = sorted(
        (s for s in posted if first_week <= s.week_start <= checked_at.date()),
        key=lambda s: s.week_start,
    )
    weeks = weeks_spanned(started_at.date(), checked_at.date())
    volume = sum(s.volume_actioned or 0 for s in covering)
    weekly = volume / weeks
    precision = weighted_model_precision(covering)
    evidence: dict[str, Any] = {
        "kind": RuleKind.MODEL.value,
        "monitoring_started_at": started_at.isoformat(),
        "checked_at": checked_at.isoformat(),
        "criteria": criteria.to_dict(),
        "snapshots_posted": len(posted),
        "weeks_spanned": weeks,
        "volume_actioned": volume,
        "weekly_volume_actioned": weekly,
        "hits": sum(s.hits for s in covering),
        "precision": precision,
        "recall": _mean([s.recall for s in covering if s.recall is not None]),
        "thresholds": sorted({s.threshold for s in covering if s.threshold is not None}),
        "weeks": [
            {
                "week_start": s.week_start.isoformat(),
                "hits": s.hits,
                "precision": s.precision,
                "recall": s.recall,
                "threshold": s.threshold,
                "volume_actioned": s.volume_actioned,
            }
            for s in covering
        ],
    }
    if weekly < criteria.volume_floor:
        reason = (
            f"Actioned {weekly:.1f} a week during monitoring, below the floor "
            f"{criteria.volume_floor}."
        )
        return MonitoringVerdict(True, reason, {**evidence, "verdict": reason})
    if precision is not None and precision < criteria.precision_floor:
        reason = (
            f"Actioned {weekly:.1f} a week during monitoring, but precision {precision:.3f} is "
            f"below the floor {criteria.precision_floor:.3f}."
        )
        return MonitoringVerdict(True, reason, {**evidence, "verdict": reason})
    shown = "unknown" if precision is None else f"{precision:.3f}"
    reason = f"Actioned {weekly:.1f} a week during monitoring at precision {shown}."
    return MonitoringVerdict(False, reason, {**evidence, "verdict": reason})
