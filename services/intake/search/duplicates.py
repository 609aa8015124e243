"""Similar open requests: candidates from indexes, scored with rapidfuzz (pure scoring below).

A candidate is an open request of the same team (duplicates never cross teams: a partner may only
ever see its own). Candidates come from three index lookups, so the cost does not grow with the
table: requests citing one of the same external references, full-text matches of the title's
words, and the team's most recent open requests. Each is then scored:

- title: `token_set_ratio` of the normalised titles (word order and repeated words do not matter);
- text: `WRatio` of title + description (partial and reordered overlaps of longer text);
- score = round(0.6 * title + 0.4 * text), or the title score alone when either description is
  empty; a shared external reference lifts the score to at least 95 (two requests citing the same
  ticket are almost certainly about the same thing).

Candidates at or above `MIN_SCORE` are returned, best first, each with its reasons.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rapidfuzz import fuzz
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.domain import RequestStatus
from services.intake.models import Request
from services.intake.search import fulltext
from services.intake.search.models import RequestExternalRef

MIN_SCORE = 70
SHARED_REF_SCORE = 95
TITLE_WEIGHT = 0.6
DEFAULT_SIMILAR_LIMIT = 5
MAX_SIMILAR_LIMIT = 20
RECENT_CANDIDATES = 100
TEXT_CANDIDATES = 100
REF_CANDIDATES = 50
OPEN_STATUSES = tuple(s.value for s in RequestStatus if s is not RequestStatus.CLOSED)
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Candidate:
    """What scoring needs of a request."""

    id: int
    title: str
    description: str
    external_refs: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class Match:
    """A candidate judged similar, its score (0-100) and why."""

    id: int
    title: str
    score: int
    reasons: list[str] = field(default_factory=list)


def normalise_ref(ref: str) -> str:
    """The comparable form of an external reference (as the database triggers store it)."""
    return ref.strip().lower()[:500]


def _normalise_text(value: str) -> str:
    return _SPACES.sub(" ", value).strip().lower()


def score_pair(new: Candidate, other: Candidate) -> Match:
    """How similar `other` is to `new`: the score and the reasons behind it (pure)."""
    title = fuzz.token_set_ratio(_normalise_text(new.title), _normalise_text(other.title))
    reasons = [f"title similarity {round(title)}"]
    if new.description.strip() and other.description.strip():
        text = fuzz.WRatio(
            _normalise_text(f"{new.title} {new.description}"),
            _normalise_text(f"{other.title} {other.description}"),
        )
        score = round(TITLE_WEIGHT * title + (1 - TITLE_WEIGHT) * text)
        reasons.append(f"text similarity {round(text)}")
    else:
        score = round(title)
    shared = sorted(
        {normalise_ref(r) for r in new.external_refs}
        & {normalise_ref(r) for r in other.external_refs} - {""}
    )
    if shared:
        score = max(score, SHARED_REF_SCORE)
        reasons.insert(0, "shares external reference " + ", ".join(shared))
    return Match(id=other.id, title=other.title, score=min(score, 100), reasons=reasons)


def rank(new: Candidate, others: Sequence[Candidate], *, limit: int) -> list[Match]:
    """The `limit` best matches at or above MIN_SCORE, best first (ties: newest first)."""
    matches = [score_pair(new, other) for other in others if other.id != new.id]
    kept = [m for m in matches if m.score >= MIN_SCORE]
    kept.sort(key=lambda m: (-m.score, -m.id))
    return kept[:limit]


async def find_similar(
    session: AsyncSession,
    *,
    team: str,
    subject: Candidate,
    limit: int = DEFAULT_SIMILAR_LIMIT,
) -> list[Match]:
    """Open requests of `team` similar to `subject` (which is excluded), best first."""
    ids: set[int] = set()
    refs = sorted({normalise_ref(r) for r in subject.external_refs} - {""})
    if refs:
        ids.update(
            (
                await session.execute(
                    select(RequestExternalRef.request_id)
                    .where(RequestExternalRef.ref.in_(refs))
                    .order_by(RequestExternalRef.request_id.desc())
                    .limit(REF_CANDIDATES)
                )
            ).scalars()
        )
    base = select(Request.id).where(Request.team == team, Request.status.in_(OPEN_STATUSES))
    any_word = fulltext.any_word_condition(session, subject.title)
    if any_word is not None:
        ids.update(
            (
                await session.execute(
                    base.where(any_word).order_by(Request.id.desc()).limit(TEXT_CANDIDATES)
                )
            ).scalars()
        )
    ids.update(
        (await session.execute(base.order_by(Request.id.desc()).limit(RECENT_CANDIDATES))).scalars()
    )
    ids.discard(subject.id)
    if not ids:
        return []
    rows = (
        await session.execute(
            select(Request.id, Request.title, Request.description, Request.external_refs).where(
                Request.id.in_(sorted(ids)),
                Request.team == team,
                Request.status.in_(OPEN_STATUSES),
            )
        )
    ).all()
    others = [
        Candidate(
            id=row.id,
            title=row.title,
            description=row.description,
            external_refs=row.external_refs or [],
        )
        for row in rows
    ]
    return rank(subject, others, limit=limit)


def candidate_of(request: Request) -> Candidate:
    """The scoring view of a request row."""
    return Candidate(
        id=request.id,
        title=request.title,
        description=request.description,
        external_refs=list(request.external_refs or []),
    )


async def similar_on_filing(session: AsyncSession, *, request: Request) -> list[dict[str, Any]]:
    """The `similar` field of a 201: matches of a just-filed (flushed) request, as JSON."""
    matches = await find_similar(session, team=request.team, subject=candidate_of(request))
    return [asdict(match) for match in matches]
