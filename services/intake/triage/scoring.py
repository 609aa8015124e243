"""The priority score matrix: impact x urgency -> a score 0-100 -> a proposed priority. No I/O.

Documented in README.md ("Triage: how a priority is proposed") so a partner can predict it; the
tables below ARE the rule, the functions only read them.

Impact is the larger of two levels: accounts affected and money at risk per week (compared as
given, in the request's currency; no conversion). Urgency is the larger of the `urgency` field and
the proximity of `due_at`. A missing input counts as `medium`, so a request filed with no impact and
no urgency is scored 40 and proposed P2 (the historic default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import IntEnum, StrEnum

from services.intake.domain import Priority


class Level(IntEnum):
    """One axis of the matrix, lowest first."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


class Urgency(StrEnum):
    """How soon the requester needs an answer (the `urgency` field)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


# (lower bound inclusive, level), highest bound first: the first bound reached wins.
ACCOUNTS_LEVELS: Sequence[tuple[int, Level]] = (
    (10_000, Level.CRITICAL),
    (1_000, Level.HIGH),
    (100, Level.MEDIUM),
    (0, Level.LOW),
)
MONEY_PER_WEEK_LEVELS: Sequence[tuple[Decimal, Level]] = (
    (Decimal(100_000), Level.CRITICAL),
    (Decimal(10_000), Level.HIGH),
    (Decimal(1_000), Level.MEDIUM),
    (Decimal(0), Level.LOW),
)
URGENCY_LEVELS: dict[Urgency, Level] = {
    Urgency.LOW: Level.LOW,
    Urgency.MEDIUM: Level.MEDIUM,
    Urgency.HIGH: Level.HIGH,
    Urgency.CRITICAL: Level.CRITICAL,
}
# (time left until due_at at most, level), shortest first; later than the last bound is LOW.
DUE_LEVELS: Sequence[tuple[timedelta, Level]] = (
    (timedelta(days=2), Level.CRITICAL),
    (timedelta(days=7), Level.HIGH),
    (timedelta(days=30), Level.MEDIUM),
)
UNKNOWN = Level.MEDIUM

# SCORE_MATRIX[impact][urgency]: symmetric, grows along both axes.
SCORE_MATRIX: dict[Level, dict[Level, int]] = {
    Level.LOW: {Level.LOW: 10, Level.MEDIUM: 20, Level.HIGH: 35, Level.CRITICAL: 50},
    Level.MEDIUM: {Level.LOW: 20, Level.MEDIUM: 40, Level.HIGH: 55, Level.CRITICAL: 70},
    Level.HIGH: {Level.LOW: 35, Level.MEDIUM: 55, Level.HIGH: 75, Level.CRITICAL: 85},
    Level.CRITICAL: {Level.LOW: 50, Level.MEDIUM: 70, Level.HIGH: 85, Level.CRITICAL: 100},
}
# (lowest score, priority), highest first.
PRIORITY_BANDS: Sequence[tuple[int, Priority]] = (
    (80, Priority.P0),
    (60, Priority.P1),
    (30, Priority.P2),
    (0, Priority.P3),
)


@dataclass(frozen=True, slots=True)
class ScoreInput:
    """What the score reads from a request; every field may be missing."""

    accounts_affected: int | None = None
    money_at_risk_per_week: Decimal | None = None
    urgency: Urgency | None = None
    due_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Score:
    """A scored request: both axes, the score and the priority it proposes."""

    impact: Level
    urgency: Level
    score: int
    proposed_priority: Priority

    def as_event_data(self) -> dict[str, object]:
        """How a score is recorded in a request event."""
        return {
            "impact_level": self.impact.name.lower(),
            "urgency_level": self.urgency.name.lower(),
            "priority_score": self.score,
            "proposed_priority": self.proposed_priority.value,
        }


def impact_level(accounts_affected: int | None, money_at_risk_per_week: Decimal | None) -> Level:
    """The larger of the accounts and money levels; MEDIUM when neither is known."""
    levels = []
    if accounts_affected is not None:
        levels.append(next(lv for bound, lv in ACCOUNTS_LEVELS if accounts_affected >= bound))
    if money_at_risk_per_week is not None:
        levels.append(
            next(lv for bound, lv in MONEY_PER_WEEK_LEVELS if money_at_risk_per_week >= bound)
        )
    return max(levels, default=UNKNOWN)


def urgency_level(urgency: Urgency | None, due_at: datetime | None, *, now: datetime) -> Level:
    """The larger of the stated urgency and the due date's proximity; MEDIUM when neither."""
    levels = []
    if urgency is not None:
        levels.append(URGENCY_LEVELS[urgency])
    if due_at is not None:
        left = due_at - now
        levels.append(next((lv for bound, lv in DUE_LEVELS if left <= bound), Level.LOW))
    return max(levels, default=UNKNOWN)


def priority_of_score(score: int) -> Priority:
    """The priority a score proposes."""
    return next(priority for bound, priority in PRIORITY_BANDS if score >= bound)


def score_request(data: ScoreInput, *, now: datetime) -> Score:
    """Score a request at `now` (due-date proximity depends on it)."""
    impact = impact_level(data.accounts_affected, data.money_at_risk_per_week)
    urgency = urgency_level(data.urgency, data.due_at, now=now)
    score = SCORE_MATRIX[impact][urgency]
    return Score(
        impact=impact, urgency=urgency, score=score, proposed_priority=priority_of_score(score)
    )
