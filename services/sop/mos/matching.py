"""Pure rules of MO matching (issue 10): the text an MO is embedded from, and the two rankings of
MOs for a request's text. No I/O.

- **semantic**: the cosine of sentence embeddings (request text vs the MO's whole text), so a
  request about "vouchers emptied right after purchase" finds the gift-card-draining MO with no
  word in common. An indicator *matches* when its own embedding is close to the request's.
- **lexical** (the fallback without the `ai` extra): the rapidfuzz score of services/sop/mos/
  domain.py, the request text compared with the MO's name, summary and indicators. An indicator
  matches when it appears (fuzzily) in the request text.

Both report scores from 0 to 100 and say which method produced them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from rapidfuzz import fuzz, utils

from services.common.embeddings import Vector, dot
from services.sop.mos.domain import MoText, similarity


class Method(StrEnum):
    """How suggestions were ranked."""

    SEMANTIC = "semantic"
    LEXICAL = "lexical"


# An indicator whose embedding has at least this cosine with the request's "matches" it: short
# phrases of all-MiniLM-L6-v2 score ~0.1-0.25 against unrelated text, 0.35+ when on topic.
SEMANTIC_INDICATOR_MIN = 0.35
# An indicator that appears in the request text with this rapidfuzz partial ratio matches it.
LEXICAL_INDICATOR_MIN = 85.0
MAX_MATCHING_INDICATORS = 10
# The semantic score: mostly the whole MO text, plus its closest indicator (a request often
# describes one symptom). Tuned on bench/data/mo_matching.json: precision@3 0.91 -> 0.93.
WHOLE_WEIGHT = 0.8
INDICATOR_WEIGHT = 0.2


@dataclass(frozen=True, slots=True)
class Indicator:
    """One indicator of an MO and its kind (`signal`, `behaviour` or `entity_type`)."""

    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """An MO as matching sees it."""

    mo_id: int
    name: str
    summary: str
    indicators: tuple[Indicator, ...]


@dataclass(frozen=True, slots=True)
class EmbeddedCandidate:
    """A candidate with its stored vectors: the whole text, and one per indicator (same order)."""

    candidate: Candidate
    vector: Vector
    indicator_vectors: Sequence[Vector]


@dataclass(frozen=True, slots=True)
class IndicatorMatch:
    """An indicator of the MO that the request's text matches, with how well (0-100)."""

    kind: str
    text: str
    score: float


@dataclass(frozen=True, slots=True)
class Match:
    """One ranked MO."""

    mo_id: int
    score: float
    matching_indicators: tuple[IndicatorMatch, ...]


def indicators_of(
    *, signals: Sequence[str], behaviours: Sequence[str], entity_types: Sequence[str]
) -> tuple[Indicator, ...]:
    """An MO's indicators in a fixed order: signals, behaviours, entity types."""
    return (
        *(Indicator("signal", s) for s in signals),
        *(Indicator("behaviour", b) for b in behaviours),
        *(Indicator("entity_type", e) for e in entity_types),
    )


def mo_text(candidate: Candidate) -> str:
    """The text an MO's embedding is computed from: name, summary and indicators."""
    parts = [candidate.name.strip()]
    if candidate.summary.strip():
        parts.append(candidate.summary.strip())
    if candidate.indicators:
        parts.append("Indicators: " + "; ".join(i.text for i in candidate.indicators) + ".")
    return "\n".join(parts)


def request_text(title: str, description: str) -> str:
    """The text a request's embedding is computed from: title and description."""
    return f"{title.strip()}\n{description.strip()}".strip()


def _percent(cos: float) -> float:
    return round(max(0.0, min(1.0, cos)) * 100, 1)


def _lexical_indicators(text: str, indicators: Sequence[Indicator]) -> list[IndicatorMatch]:
    found = []
    for indicator in indicators:
        score = float(fuzz.partial_ratio(indicator.text, text, processor=utils.default_process))
        if score >= LEXICAL_INDICATOR_MIN:
            found.append(IndicatorMatch(indicator.kind, indicator.text, round(score, 1)))
    return found


def _best(matches: list[IndicatorMatch]) -> tuple[IndicatorMatch, ...]:
    best: dict[tuple[str, str], IndicatorMatch] = {}
    for match in matches:
        key = (match.kind, match.text)
        if key not in best or match.score > best[key].score:
            best[key] = match
    ranked = sorted(best.values(), key=lambda m: (-m.score, m.kind, m.text))
    return tuple(ranked[:MAX_MATCHING_INDICATORS])


def semantic_rank(
    *,
    query: Vector,
    text: str,
    candidates: Sequence[EmbeddedCandidate],
    limit: int,
    min_score: float = 0.0,
) -> list[Match]:
    """Candidates by similarity with the request's vector (0.8 x cosine with the MO's text + 0.2 x
    cosine with its closest indicator), best first (ties: newest id first)."""
    matches = []
    for embedded in candidates:
        whole = dot(query, embedded.vector)
        closest = max((dot(query, v) for v in embedded.indicator_vectors), default=whole)
        score = _percent(WHOLE_WEIGHT * whole + INDICATOR_WEIGHT * closest)
        if score < min_score:
            continue
        matches.append((embedded, score))
    matches.sort(key=lambda item: (-item[1], -item[0].candidate.mo_id))
    ranked = []
    for embedded, score in matches[:limit]:
        indicators = embedded.candidate.indicators
        close = [
            IndicatorMatch(indicator.kind, indicator.text, _percent(cos))
            for indicator, vector in zip(indicators, embedded.indicator_vectors, strict=True)
            if (cos := dot(query, vector)) >= SEMANTIC_INDICATOR_MIN
        ]
        found = _best([*close, *_lexical_indicators(text, indicators)])
        ranked.append(Match(embedded.candidate.mo_id, score, found))
    return ranked


def lexical_rank(
    *, text: str, candidates: Sequence[Candidate], limit: int, min_score: float = 0.0
) -> list[Match]:
    """Candidates by the rapidfuzz score of the MO repository, best first (ties: newest id)."""
    query = MoText.of_query(text)
    scored = []
    for candidate in candidates:
        mo = MoText(
            name=candidate.name,
            summary=candidate.summary,
            indicators=[i.text for i in candidate.indicators],
        )
        score = similarity(query, mo).score
        if score >= min_score:
            scored.append((candidate, score))
    scored.sort(key=lambda item: (-item[1], -item[0].mo_id))
    return [
        Match(c.mo_id, score, _best(_lexical_indicators(text, c.indicators)))
        for c, score in scored[:limit]
    ]
