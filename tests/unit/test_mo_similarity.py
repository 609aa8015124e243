"""Pure MO rules: the status machine and the rapidfuzz similarity score."""

from __future__ import annotations

import pytest

from services.common.errors import InvalidTransition
from services.sop.mos.domain import MoStatus, MoText, check_status_change, rank, similarity

COUPON = MoText(
    name="Coupon abuse ring",
    summary="Organised groups create accounts to redeem first-order coupons repeatedly.",
    indicators=["coupon redemption burst", "new account farming", "account", "device"],
)
ATO = MoText(
    name="Account takeover via SIM swap",
    summary="Phone numbers are ported to take over accounts and change payout details.",
    indicators=["password reset after sim change", "payout change", "account", "phone"],
)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (MoStatus.SUSPECTED, MoStatus.CONFIRMED),
        (MoStatus.SUSPECTED, MoStatus.MITIGATED),
        (MoStatus.CONFIRMED, MoStatus.MITIGATED),
        (MoStatus.MITIGATED, MoStatus.CONFIRMED),
        (MoStatus.CONFIRMED, MoStatus.CONFIRMED),
    ],
)
def test_allowed_status_changes(current: MoStatus, target: MoStatus) -> None:
    check_status_change(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (MoStatus.CONFIRMED, MoStatus.SUSPECTED),
        (MoStatus.MITIGATED, MoStatus.SUSPECTED),
    ],
)
def test_refused_status_changes(current: MoStatus, target: MoStatus) -> None:
    with pytest.raises(InvalidTransition):
        check_status_change(current, target)


def test_identical_text_scores_100_and_scores_are_bounded() -> None:
    assert similarity(COUPON, COUPON).score == 100.0
    score = similarity(COUPON, ATO)
    assert 0 <= score.score < 60
    assert all(0 <= v <= 100 for v in (score.name, score.summary, score.indicators))


def test_a_free_text_query_ranks_the_matching_mo_first() -> None:
    query = MoText.of_query("coupon abuse by farmed new accounts")
    ranked = rank(query, [(1, ATO), (2, COUPON)], min_score=0, limit=10)
    assert [mo_id for mo_id, _ in ranked] == [2, 1]
    assert ranked[0][1].score > ranked[1][1].score


def test_case_punctuation_and_word_order_do_not_matter() -> None:
    a = MoText(name="Coupon-Abuse RING", summary="", indicators=[])
    b = MoText(name="ring coupon abuse", summary="", indicators=[])
    assert similarity(a, b).name == 100.0


def test_rank_filters_by_min_score_limits_and_breaks_ties_by_newest() -> None:
    ranked = rank(
        MoText.of_query("coupon"), [(1, COUPON), (5, COUPON), (3, ATO)], min_score=50, limit=10
    )
    assert [mo_id for mo_id, _ in ranked] == [5, 1]
    assert (
        len(rank(MoText.of_query("coupon"), [(1, COUPON), (5, COUPON)], min_score=0, limit=1)) == 1
    )
