"""Pure rules of detection rules: the state machine, the non-impacting test, the monitoring check."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.common.errors import InvalidTransition
from services.sop.rules.domain import (
    CandidateReason,
    Criteria,
    RuleAction,
    RuleStatus,
    Snapshot,
    candidate_findings,
    evaluate_monitoring,
    plan_rule_transition,
    week_start_of,
    weighted_precision,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday
MONDAY = date(2026, 11, 23)


def snap(
    week: date = MONDAY,
    hits: int = 0,
    rate: float | None = None,
    fired: datetime | None = None,
    posted: datetime = NOW,
    actioned: int = 0,
) -> Snapshot:
    return Snapshot(
        week_start=week,
        hits=hits,
        true_positive_rate=rate,
        actioned_accounts=actioned,
        last_fired_at=fired,
        updated_at=posted,
    )


@pytest.mark.parametrize(
    ("status", "action", "target"),
    [
        (RuleStatus.ACTIVE, RuleAction.PROPOSE_DEPRECATION, RuleStatus.DEPRECATION_PROPOSED),
        (RuleStatus.RETAINED, RuleAction.PROPOSE_DEPRECATION, RuleStatus.DEPRECATION_PROPOSED),
        (RuleStatus.DEPRECATION_PROPOSED, RuleAction.START_MONITORING, RuleStatus.MONITORING),
        (RuleStatus.MONITORING, RuleAction.DEPRECATE, RuleStatus.DEPRECATED),
        (RuleStatus.MONITORING, RuleAction.RETAIN, RuleStatus.RETAINED),
        (RuleStatus.DEPRECATION_PROPOSED, RuleAction.RETAIN, RuleStatus.RETAINED),
    ],
)
def test_allowed_transitions(status: RuleStatus, action: RuleAction, target: RuleStatus) -> None:
    assert plan_rule_transition(status, action) is target


def test_every_other_transition_is_refused_naming_the_allowed_ones() -> None:
    allowed = {
        (RuleStatus.ACTIVE, RuleAction.PROPOSE_DEPRECATION),
        (RuleStatus.RETAINED, RuleAction.PROPOSE_DEPRECATION),
        (RuleStatus.DEPRECATION_PROPOSED, RuleAction.START_MONITORING),
        (RuleStatus.DEPRECATION_PROPOSED, RuleAction.RETAIN),
        (RuleStatus.MONITORING, RuleAction.DEPRECATE),
        (RuleStatus.MONITORING, RuleAction.RETAIN),
    }
    for status in RuleStatus:
        for action in RuleAction:
            if (status, action) in allowed:
                continue
            with pytest.raises(InvalidTransition) as raised:
                plan_rule_transition(status, action)
            assert raised.value.extra["current_status"] == status.value
            assert raised.value.extra["allowed_actions"] == sorted(
                a.value for s, a in allowed if s is status
            )
    # Deprecated is terminal.
    with pytest.raises(InvalidTransition) as raised:
        plan_rule_transition(RuleStatus.DEPRECATED, RuleAction.PROPOSE_DEPRECATION)
    assert raised.value.extra["allowed_actions"] == []


def test_week_start_is_the_monday() -> None:
    assert week_start_of(date(2026, 11, 29)) == MONDAY
    assert week_start_of(MONDAY) == MONDAY


def test_precision_is_weighted_by_hits_and_ignores_unknown_rates() -> None:
    assert weighted_precision([]) is None
    assert weighted_precision([snap(hits=0), snap(hits=5, rate=None)]) is None
    assert weighted_precision([snap(hits=90, rate=0.0), snap(hits=10, rate=1.0)]) == pytest.approx(
        0.1
    )


def test_candidates_no_hits_counts_from_deployment_or_the_last_firing() -> None:
    criteria = Criteria(no_hits_days=90)
    old = NOW - timedelta(days=200)
    assert [
        f.reason
        for f in candidate_findings(
            deployed_at=old, last_fired_at=None, recent=[], now=NOW, criteria=criteria
        )
    ] == [CandidateReason.NO_HITS]
    assert (
        candidate_findings(
            deployed_at=NOW - timedelta(days=10),
            last_fired_at=None,
            recent=[],
            now=NOW,
            criteria=criteria,
        )
        == []
    )
    assert (
        candidate_findings(
            deployed_at=old,
            last_fired_at=NOW - timedelta(days=89),
            recent=[],
            now=NOW,
            criteria=criteria,
        )
        == []
    )
    found = candidate_findings(
        deployed_at=old,
        last_fired_at=NOW - timedelta(days=90),
        recent=[],
        now=NOW,
        criteria=criteria,
    )
    assert [f.reason for f in found] == [CandidateReason.NO_HITS]
    assert "last fired" in found[0].detail


def test_candidates_low_precision_and_both_reasons() -> None:
    criteria = Criteria(no_hits_days=30, precision_floor=0.2)
    noisy = [snap(hits=100, rate=0.1), snap(week=MONDAY - timedelta(days=7), hits=100, rate=0.2)]
    found = candidate_findings(
        deployed_at=NOW - timedelta(days=400),
        last_fired_at=NOW - timedelta(days=1),
        recent=noisy,
        now=NOW,
        criteria=criteria,
    )
    assert [f.reason for f in found] == [CandidateReason.LOW_PRECISION]
    assert "0.150" in found[0].detail
    precise = [snap(hits=100, rate=0.2)]
    assert (
        candidate_findings(
            deployed_at=NOW - timedelta(days=400),
            last_fired_at=NOW - timedelta(days=1),
            recent=precise,
            now=NOW,
            criteria=criteria,
        )
        == []
    )
    both = candidate_findings(
        deployed_at=NOW - timedelta(days=400),
        last_fired_at=NOW - timedelta(days=31),
        recent=noisy,
        now=NOW,
        criteria=criteria,
    )
    assert [f.reason for f in both] == [CandidateReason.NO_HITS, CandidateReason.LOW_PRECISION]


def test_monitoring_without_any_hit_is_clean() -> None:
    start = NOW - timedelta(days=2)
    verdict = evaluate_monitoring(
        snapshots=[snap(hits=0, posted=NOW - timedelta(hours=1))],
        started_at=start,
        checked_at=NOW,
        criteria=Criteria(),
    )
    assert verdict.clean
    assert verdict.evidence["snapshots_posted"] == 1
    assert (verdict.evidence["fired"], verdict.evidence["hits"]) == (False, 0)


def test_monitoring_with_hits_retains_with_the_evidence() -> None:
    start = NOW - timedelta(days=2)
    fired = NOW - timedelta(hours=5)
    verdict = evaluate_monitoring(
        snapshots=[
            snap(hits=4, rate=0.5, fired=fired, actioned=2, posted=NOW - timedelta(hours=1))
        ],
        started_at=start,
        checked_at=NOW,
        criteria=Criteria(precision_floor=0.1),
    )
    assert not verdict.clean
    assert verdict.reason == "Fired during monitoring (4 hits)."
    assert verdict.evidence["hits"] == 4
    assert verdict.evidence["actioned_accounts"] == 2
    assert verdict.evidence["precision"] == 0.5
    assert verdict.evidence["last_fired_at"] == fired.isoformat()
    assert verdict.evidence["weeks"][0]["week_start"] == MONDAY.isoformat()


def test_monitoring_hits_on_noise_only_are_clean() -> None:
    verdict = evaluate_monitoring(
        snapshots=[snap(hits=50, rate=0.01, posted=NOW)],
        started_at=NOW - timedelta(days=1),
        checked_at=NOW,
        criteria=Criteria(precision_floor=0.1),
    )
    assert verdict.clean
    assert verdict.evidence["fired"]
    assert "below the floor" in verdict.reason


def test_monitoring_ignores_what_was_not_posted_during_it_or_is_about_older_weeks() -> None:
    start = NOW - timedelta(days=1)
    verdict = evaluate_monitoring(
        snapshots=[
            # Posted before monitoring began.
            snap(hits=9, rate=0.9, posted=start - timedelta(seconds=1)),
            # A late correction of a week long before monitoring.
            snap(week=MONDAY - timedelta(days=70), hits=9, rate=0.9, posted=NOW),
            # Posted after the check.
            snap(hits=9, rate=0.9, posted=NOW + timedelta(seconds=1)),
        ],
        started_at=start,
        checked_at=NOW,
        criteria=Criteria(),
    )
    assert verdict.clean
    assert verdict.evidence["snapshots_posted"] == 1
    # A firing reported after the start counts even in an older week's snapshot.
    fired = evaluate_monitoring(
        snapshots=[snap(week=MONDAY - timedelta(days=7), hits=1, fired=NOW, posted=NOW)],
        started_at=start,
        checked_at=NOW,
        criteria=Criteria(),
    )
    assert not fired.clean


def test_criteria_round_trip_with_defaults() -> None:
    criteria = Criteria(no_hits_days=30, precision_floor=0.3, precision_weeks=6)
    assert Criteria.from_dict(criteria.to_dict()) == criteria
    assert Criteria.from_dict({}) == Criteria()
