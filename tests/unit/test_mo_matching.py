"""Pure MO matching: the embedded text, the semantic and lexical rankings, matching indicators,
when a request needs matching again; and the done-when case with the real model: a gift-card-
draining request sharing no keyword with the gift-card MO is matched to it at rank 1."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from services.common import embeddings
from services.intake.mo_suggestions.triggers import text_changed
from services.sop.mos.matching import (
    SEMANTIC_INDICATOR_MIN,
    Candidate,
    EmbeddedCandidate,
    Indicator,
    indicators_of,
    lexical_rank,
    mo_text,
    request_text,
    semantic_rank,
)

DATA = Path(__file__).parents[2] / "bench" / "data" / "mo_matching.json"
GIFT = Candidate(
    mo_id=1,
    name="Gift card draining",
    summary="Gift cards bought with stolen payment cards are redeemed within minutes.",
    indicators=indicators_of(
        signals=["gift card redemption within minutes"],
        behaviours=["gift card resale"],
        entity_types=["gift card"],
    ),
)
ATO = Candidate(
    mo_id=2,
    name="Account takeover via SIM swap",
    summary="Phone numbers are ported to take over accounts.",
    indicators=(Indicator("signal", "password reset after sim change"),),
)


def unit(*values: float) -> list[float]:
    norm = sum(v * v for v in values) ** 0.5
    return [v / norm for v in values]


def test_the_embedded_text_holds_name_summary_and_indicators() -> None:
    text = mo_text(GIFT)
    assert text.splitlines()[0] == "Gift card draining"
    assert "stolen payment cards" in text
    assert "Indicators: gift card redemption within minutes; gift card resale; gift card." in text
    assert mo_text(Candidate(3, "Bare", "", ())) == "Bare"
    assert request_text(" Title ", " body ") == "Title\nbody"
    assert request_text("Title", "") == "Title"
    assert [i.kind for i in GIFT.indicators] == ["signal", "behaviour", "entity_type"]


def test_semantic_rank_orders_by_cosine_and_names_close_indicators() -> None:
    query = unit(1.0, 0.2, 0.0)
    candidates = [
        EmbeddedCandidate(GIFT, unit(1.0, 0.1, 0.0), [unit(1, 0, 0), unit(0, 0, 1), unit(0, 1, 0)]),
        EmbeddedCandidate(ATO, unit(0.0, 1.0, 1.0), [unit(0, 0, 1)]),
    ]
    first, second = semantic_rank(query=query, text="vouchers", candidates=candidates, limit=5)
    assert (first.mo_id, second.mo_id) == (1, 2)
    assert first.score > 95
    assert 0 < second.score < 20
    # Only the indicator whose vector is close to the request's is named, with its score.
    assert [(m.kind, m.text) for m in first.matching_indicators] == [
        ("signal", "gift card redemption within minutes")
    ]
    assert first.matching_indicators[0].score >= SEMANTIC_INDICATOR_MIN * 100
    assert second.matching_indicators == ()
    assert semantic_rank(query=query, text="", candidates=candidates, limit=1)[0].mo_id == 1
    assert [
        m.mo_id
        for m in semantic_rank(query=query, text="", candidates=candidates, limit=5, min_score=50)
    ] == [1]


def test_the_closest_indicator_counts_and_lexical_indicators_are_named_too() -> None:
    vector = unit(1.0, 0.0)
    older = EmbeddedCandidate(
        Candidate(3, "a", "", (Indicator("signal", "gift card"),)), vector, [unit(0, 1)]
    )
    newer = EmbeddedCandidate(Candidate(9, "b", "", ()), vector, [])
    ranked = semantic_rank(
        query=vector, text="a Gift-Card was drained", candidates=[older, newer], limit=5
    )
    assert [m.mo_id for m in ranked] == [9, 3]
    assert [m.text for m in ranked[1].matching_indicators] == ["gift card"]


def test_lexical_rank_uses_the_repository_score_and_names_indicators_found_in_the_text() -> None:
    ranked = lexical_rank(
        text="Password reset after SIM change, then payouts moved", candidates=[GIFT, ATO], limit=5
    )
    assert [m.mo_id for m in ranked] == [2, 1]
    assert [m.text for m in ranked[0].matching_indicators] == ["password reset after sim change"]
    assert ranked[0].matching_indicators[0].score == 100.0
    assert lexical_rank(text="zzz", candidates=[GIFT, ATO], limit=5, min_score=90) == []


@pytest.mark.parametrize(
    ("kind", "data", "expected"),
    [
        ("created", {}, True),
        ("updated", {"changes": {"title": {"from": "a", "to": "b"}}}, True),
        ("assigned", {"changes": {"description": {}, "assignee": {}}}, True),
        ("updated", {"changes": {"priority": {}}}, False),
        ("transitioned", {"reason": "x"}, False),
        ("updated", {"changes": ["title"]}, False),
    ],
)
def test_only_a_new_or_changed_text_asks_for_matching(
    kind: str, data: dict[str, object], expected: bool
) -> None:
    assert text_changed(kind=kind, data=data) is expected


STOPWORDS = {
    "a",
    "an",
    "the",
    "of",
    "to",
    "in",
    "on",
    "and",
    "or",
    "is",
    "are",
    "with",
    "by",
    "for",
    "within",
    "right",
    "after",
    "was",
    "were",
    "it",
    "they",
    "their",
    "our",
    "we",
}


def words(text: str) -> set[str]:
    stems = {w[:5] for w in re.findall(r"[a-z]+", text.lower()) if w not in STOPWORDS}
    return stems


def test_a_gift_card_request_with_no_shared_keyword_matches_the_gift_card_mo_first(
    embedding_model: None,
) -> None:
    data = json.loads(DATA.read_text())
    candidates = [
        Candidate(
            mo_id=index,
            name=mo["name"],
            summary=mo["summary"],
            indicators=indicators_of(
                signals=mo["signals"], behaviours=mo["behaviours"], entity_types=mo["entity_types"]
            ),
        )
        for index, mo in enumerate(data["mos"], start=1)
    ]
    gift = next(
        c
        for c, mo in zip(candidates, data["mos"], strict=True)
        if mo["key"] == "gift_card_draining"
    )
    text = request_text(
        "E-vouchers worth nothing moments after the order",
        "The store credit codes we sell are spent by someone else right after checkout, and the "
        "bank later claws the money back.",
    )
    assert words(text).isdisjoint(words(mo_text(gift))), "the request must share no keyword"

    vectors = embeddings.embed([text, *(mo_text(c) for c in candidates)])
    embedded = [
        EmbeddedCandidate(c, v, embeddings.embed([i.text for i in c.indicators]))
        for c, v in zip(candidates, vectors[1:], strict=True)
    ]
    semantic = semantic_rank(query=vectors[0], text=text, candidates=embedded, limit=3)
    assert semantic[0].mo_id == gift.mo_id
    # Lexically nothing links them: the fallback does not find it first.
    assert lexical_rank(text=text, candidates=candidates, limit=1)[0].mo_id != gift.mo_id
