"""The pure rules of ML models in the inventory: which metric fields each kind reports, the model
criteria of a monitoring period, and the model candidate list."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.sop.rules.domain import CandidateReason, RuleKind, Snapshot
from services.sop.rules.ml_models import (
    ModelCriteria,
    ReportedMetric,
    evaluate_model_monitoring,
    metric_errors,
    model_candidate_findings,
    model_hits,
    weeks_spanned,
    weighted_model_precision,
)

# A Wednesday: its ISO week starts on Monday 2027-03-08.
STARTED = datetime(2027, 3, 10, 12, tzinfo=UTC)
WEEK = date(2027, 3, 8)


def reported(**fields: object) -> ReportedMetric:
    values: dict[str, object] = {
        "hits": None,
        "true_positive_rate": None,
        "precision": None,
        "recall": None,
        "threshold": None,
        "volume_actioned": None,
        **fields,
    }
    return ReportedMetric(given=frozenset(fields), **values)  # type: ignore[arg-type]


def snap(
    week: date = WEEK,
    *,
    volume: int | None = 100,
    precision: float | None = 0.9,
    hits: int | None = None,
    posted: datetime = STARTED + timedelta(hours=1),
    recall: float | None = 0.6,
    threshold: float | None = 0.7,
) -> Snapshot:
    return Snapshot(
        week_start=week,
        hits=hits if hits is not None else (volume or 0),
        true_positive_rate=None,
        actioned_accounts=0,
        last_fired_at=None,
        updated_at=posted,
        precision=precision,
        recall=recall,
        threshold=threshold,
        volume_actioned=volume,
    )


def fields_of(errors: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(e["field"], e["code"]) for e in errors]


def test_a_rule_reports_hits_and_no_model_fields() -> None:
    assert metric_errors(RuleKind.RULE, reported(hits=3), prefix="body") == []
    errors = metric_errors(
        RuleKind.RULE, reported(precision=0.5, volume_actioned=3), prefix="body.items.2"
    )
    assert fields_of(errors) == [
        ("body.items.2.precision", "unexpected"),
        ("body.items.2.volume_actioned", "unexpected"),
        ("body.items.2.hits", "missing"),
    ]


def test_a_model_reports_threshold_recall_volume_and_precision_when_it_acted() -> None:
    good = reported(threshold=0.7, precision=0.8, recall=0.4, volume_actioned=12)
    assert metric_errors(RuleKind.MODEL, good, prefix="body") == []
    assert model_hits(good) == 12  # hits default to the volume actioned
    assert model_hits(reported(hits=30, volume_actioned=12)) == 30
    quiet = reported(threshold=0.7, recall=0.0, volume_actioned=0)
    assert metric_errors(RuleKind.MODEL, quiet, prefix="body") == []
    assert fields_of(metric_errors(RuleKind.MODEL, reported(), prefix="body")) == [
        ("body.threshold", "missing"),
        ("body.recall", "missing"),
        ("body.volume_actioned", "missing"),
    ]
    rule_fields = reported(
        threshold=1.0, recall=0.1, volume_actioned=5, true_positive_rate=0.3, precision=0.3
    )
    assert fields_of(metric_errors(RuleKind.MODEL, rule_fields, prefix="body")) == [
        ("body.true_positive_rate", "unexpected")
    ]
    acted_blind = reported(threshold=0.7, recall=0.2, volume_actioned=5)
    assert fields_of(metric_errors(RuleKind.MODEL, acted_blind, prefix="body")) == [
        ("body.precision", "missing")
    ]
    idle_precise = reported(threshold=0.7, recall=0.2, volume_actioned=0, precision=0.9)
    assert fields_of(metric_errors(RuleKind.MODEL, idle_precise, prefix="body")) == [
        ("body.precision", "invalid")
    ]


def test_weeks_spanned_counts_iso_weeks_touched() -> None:
    assert weeks_spanned(date(2027, 3, 10), date(2027, 3, 10)) == 1
    assert weeks_spanned(date(2027, 3, 14), date(2027, 3, 15)) == 2  # Sunday to Monday
    assert weeks_spanned(date(2027, 3, 10), date(2027, 4, 7)) == 5


def test_precision_is_weighted_by_hits() -> None:
    assert weighted_model_precision(
        [snap(volume=100, precision=0.9), snap(volume=300, precision=0.1)]
    ) == (pytest.approx((90 + 30) / 400))
    assert weighted_model_precision([snap(volume=0, precision=None)]) is None


def check(
    snapshots: list[Snapshot], *, days: int = 0, **criteria: object
) -> tuple[bool, dict[str, object]]:
    verdict = evaluate_model_monitoring(
        snapshots=snapshots,
        started_at=STARTED,
        checked_at=STARTED + timedelta(days=days, hours=2),
        criteria=ModelCriteria(**criteria),  # type: ignore[arg-type]
    )
    return verdict.clean, verdict.evidence


def test_a_model_still_acting_precisely_is_kept() -> None:
    clean, evidence = check([snap(volume=120, precision=0.85)])
    assert not clean
    assert evidence["kind"] == "model"
    assert (evidence["volume_actioned"], evidence["weekly_volume_actioned"]) == (120, 120.0)
    assert evidence["precision"] == pytest.approx(0.85)
    assert evidence["thresholds"] == [0.7]
    assert evidence["verdict"] == "Actioned 120.0 a week during monitoring at precision 0.850."


def test_low_volume_or_low_precision_makes_a_clean_period() -> None:
    clean, evidence = check([snap(volume=4, precision=0.95)])
    assert clean
    assert evidence["verdict"] == "Actioned 4.0 a week during monitoring, below the floor 10."
    clean, evidence = check([snap(volume=400, precision=0.2)])
    assert clean
    assert "precision 0.200 is below the floor 0.500" in str(evidence["verdict"])
    # Floors are the proposal's: a stricter volume floor flags a busier model.
    assert check([snap(volume=120)], volume_floor=200)[0]
    assert not check([snap(volume=120, precision=0.3)], precision_floor=0.25)[0]


def test_volume_is_averaged_over_the_weeks_the_window_spans() -> None:
    # 28 days from a Wednesday touch 5 ISO weeks: 45 actioned is 9 a week, below 10.
    later = [
        snap(
            WEEK + timedelta(weeks=n), volume=9, posted=STARTED + timedelta(days=min(7 * n + 1, 28))
        )
        for n in range(5)
    ]
    clean, evidence = check(later, days=28)
    assert (evidence["weeks_spanned"], evidence["volume_actioned"]) == (5, 45)
    assert clean
    # 20 more in the first week: 65 over 5 weeks is 13 a week, at or above the floor.
    busier = [snap(WEEK, volume=29, posted=STARTED + timedelta(days=1)), *later[1:]]
    assert check(busier, days=28)[0] is False


def test_only_reports_posted_during_monitoring_about_its_weeks_count() -> None:
    before = snap(volume=500, posted=STARTED - timedelta(minutes=1))
    old_week = snap(WEEK - timedelta(weeks=1), volume=500)
    clean, evidence = check([before, old_week])
    assert clean  # neither says anything about the monitoring period
    assert (evidence["snapshots_posted"], evidence["volume_actioned"]) == (1, 0)
    # No report at all counts as no volume.
    clean, evidence = check([])
    assert clean
    assert evidence["snapshots_posted"] == 0


def test_criteria_round_trip_and_take_defaults() -> None:
    criteria = ModelCriteria(precision_floor=0.7, volume_floor=25, weeks=6)
    assert ModelCriteria.from_dict(criteria.to_dict()) == criteria
    assert criteria.to_dict()["kind"] == "model"
    assert ModelCriteria.from_dict({}) == ModelCriteria()


def test_candidate_findings_of_a_model() -> None:
    now = datetime(2027, 3, 31, tzinfo=UTC)
    deployed = now - timedelta(days=365)
    busy = [snap(WEEK + timedelta(weeks=n), volume=100, precision=0.9) for n in range(4)]
    assert (
        model_candidate_findings(
            recent=busy, now=now, deployed_at=deployed, criteria=ModelCriteria()
        )
        == []
    )
    noisy = [snap(WEEK, volume=400, precision=0.1)]
    reasons = [
        f.reason
        for f in model_candidate_findings(
            recent=noisy, now=now, deployed_at=deployed, criteria=ModelCriteria()
        )
    ]
    assert reasons == [CandidateReason.LOW_PRECISION]
    idle = model_candidate_findings(
        recent=[], now=now, deployed_at=deployed, criteria=ModelCriteria()
    )
    assert [f.reason for f in idle] == [CandidateReason.LOW_VOLUME]
    # A model deployed two days ago is judged on the weeks since then only.
    fresh = [snap(date(2027, 3, 29), volume=12, precision=0.9)]
    assert (
        model_candidate_findings(
            recent=fresh, now=now, deployed_at=now - timedelta(days=2), criteria=ModelCriteria()
        )
        == []
    )
