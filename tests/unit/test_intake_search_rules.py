"""Pure rules of search: duplicate scoring, the websearch -> FTS5 translation, `older_than`."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.common.errors import ValidationFailed
from services.intake.search.duplicates import MIN_SCORE, Candidate, rank, score_pair
from services.intake.search.fulltext import significant_words, to_fts5
from services.intake.search.service import parse_age


def test_reworded_titles_score_high_and_unrelated_ones_low() -> None:
    new = Candidate(1, "Coupon abuse ring on new buyer accounts", "Fresh accounts redeem coupons")
    alike = Candidate(2, "New buyer accounts: coupon abuse ring", "Fresh accounts redeem coupons")
    other = Candidate(3, "Chargeback spike in DE electronics", "Disputes doubled this week")
    assert score_pair(new, alike).score >= 90
    assert score_pair(new, other).score < MIN_SCORE
    assert [m.id for m in rank(new, [other, alike, new], limit=5)] == [2]


def test_a_shared_external_reference_scores_at_least_95_whatever_the_words() -> None:
    new = Candidate(1, "Something", "", external_refs=[" JIRA-7 ", "x"])
    other = Candidate(2, "Entirely different", "", external_refs=["jira-7"])
    match = score_pair(new, other)
    assert match.score >= 95
    assert match.reasons[0] == "shares external reference jira-7"


def test_without_descriptions_only_the_title_counts() -> None:
    match = score_pair(Candidate(1, "Gift card fraud", ""), Candidate(2, "gift  CARD fraud", "x"))
    assert match.score == 100
    assert match.reasons == ["title similarity 100"]


def test_rank_limits_and_orders_best_first_then_newest() -> None:
    new = Candidate(1, "refund abuse ring", "")
    others = [Candidate(i, "refund abuse ring", "") for i in range(2, 9)]
    assert [m.id for m in rank(new, others, limit=3)] == [8, 7, 6]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("coupon abuse", '("coupon" AND "abuse")'),
        ('"gift card" or voucher -test', '("gift card" OR "voucher") NOT "test"'),
        ("foo-bar", '("foo bar")'),
        ('NEAR(a b) "unterminated', '("NEAR a" AND "b" AND "unterminated")'),
        ("* ^ : ( )", None),
        ("-only negative", '("negative") NOT "only"'),
        ("or", None),
        ("", None),
    ],
)
def test_websearch_queries_become_safe_fts5_expressions(query: str, expected: str | None) -> None:
    assert to_fts5(query) == expected


def test_significant_words_drop_stopwords_and_duplicates() -> None:
    assert significant_words("The coupon, the COUPON and a ring of 12 bots") == [
        "coupon",
        "ring",
        "bots",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", timedelta(days=7)),
        ("P2W", timedelta(weeks=2)),
        ("p3dt12h", timedelta(days=3, hours=12)),
        ("PT90M", timedelta(minutes=90)),
        ("PT30S", timedelta(seconds=30)),
    ],
)
def test_older_than_accepts_days_and_iso_durations(value: str, expected: timedelta) -> None:
    assert parse_age(value) == expected


@pytest.mark.parametrize("value", ["P1Y", "P1M", "P", "PT", "P1DT", "-3", "soon", "1.5", "9" * 30])
def test_older_than_refuses_anything_else_with_a_422(value: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_age(value)
    assert refused.value.extra["errors"][0]["field"] == "query.older_than"
