"""Pure rules of MOs: the status machine and the similarity score (rapidfuzz). No I/O.

suspected -> confirmed -> mitigated
suspected -> mitigated          mitigated -> confirmed (it came back)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from rapidfuzz import fuzz, utils

from services.common.errors import InvalidTransition


class MoStatus(StrEnum):
    """How much is known about an MO, and whether it is handled."""

    SUSPECTED = "suspected"
    CONFIRMED = "confirmed"
    MITIGATED = "mitigated"


S = MoStatus
NEXT_STATUSES: Mapping[MoStatus, frozenset[MoStatus]] = {
    S.SUSPECTED: frozenset({S.CONFIRMED, S.MITIGATED}),
    S.CONFIRMED: frozenset({S.MITIGATED}),
    S.MITIGATED: frozenset({S.CONFIRMED}),
}


def check_status_change(current: MoStatus, target: MoStatus) -> None:
    """Allow `current -> target` (or no change), else 409 naming the statuses allowed."""
    if target is current or target in NEXT_STATUSES[current]:
        return
    allowed = sorted(s.value for s in NEXT_STATUSES[current])
    raise InvalidTransition(
        f"An MO that is {current.value} cannot become {target.value}; allowed: {', '.join(allowed)}.",
        current=current.value,
        allowed=allowed,
    )


# Weights of the fields in the overall score: the name says most, indicators least (they are
# short shared vocabulary like "account" that many MOs carry).
NAME_WEIGHT = 0.4
SUMMARY_WEIGHT = 0.35
INDICATORS_WEIGHT = 0.25


@dataclass(frozen=True, slots=True)
class MoText:
    """The searchable text of an MO (or of a free-text query, in every field)."""

    name: str
    summary: str
    indicators: Sequence[str]

    @classmethod
    def of_query(cls, query: str) -> MoText:
        """A free-text query compared with each field."""
        return cls(name=query, summary=query, indicators=[query])


@dataclass(frozen=True, slots=True)
class Similarity:
    """Scores from 0 to 100: overall and per field."""

    score: float
    name: float
    summary: float
    indicators: float


def _ratio(left: str, right: str) -> float:
    # token_set_ratio ignores word order and repeated words; default_process lower-cases and
    # strips punctuation, so "Coupon-abuse" and "coupon abuse" meet.
    return float(fuzz.token_set_ratio(left, right, processor=utils.default_process))


def similarity(query: MoText, candidate: MoText) -> Similarity:
    """How alike two MOs are (field by field, weighted)."""
    name = _ratio(query.name, candidate.name)
    summary = _ratio(query.summary, candidate.summary)
    indicators = _ratio(" ".join(query.indicators), " ".join(candidate.indicators))
    score = NAME_WEIGHT * name + SUMMARY_WEIGHT * summary + INDICATORS_WEIGHT * indicators
    return Similarity(
        score=round(score, 1),
        name=round(name, 1),
        summary=round(summary, 1),
        indicators=round(indicators, 1),
    )


def rank(
    query: MoText, candidates: Sequence[tuple[int, MoText]], *, min_score: float, limit: int
) -> list[tuple[int, Similarity]]:
    """The candidates scoring at least `min_score`, best first (ties by newest id)."""
    scored = [(mo_id, similarity(query, text)) for mo_id, text in candidates]
    kept = [(mo_id, s) for mo_id, s in scored if s.score >= min_score]
    kept.sort(key=lambda item: (-item[1].score, -item[0]))
    return kept[:limit]
