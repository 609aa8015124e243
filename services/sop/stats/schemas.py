"""What `GET /api/v1/stats/sops` answers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from services.common.stats import DurationStats, PeriodRead


class ParityStats(BaseModel):
    """Rollout parity now: (SOP, org) pairs in scope and those at the newest effective version.

    Adoptions keep no history, so parity is always the value at `computed_at` (a stored weekly
    report keeps the value of its week)."""

    computed_at: datetime
    pairs: int
    at_parity: int
    parity: float | None = Field(description="at_parity / pairs (null when no pair)")


class RuleStats(BaseModel):
    """Rule deprecations finished in the period, by outcome."""

    deprecated: int
    retained: int


class SopStatsRead(BaseModel):
    """The SOP service's numbers for a period."""

    period: PeriodRead
    team: str | None = Field(description="The owning-team filter, if any")
    versions_submitted: int
    versions_approved: int
    approval_cycle_time: DurationStats = Field(
        description="Wall-clock time from submission to approval of the versions approved in "
        "the period"
    )
    reviews_overdue: int = Field(description="SOPs whose review was due before `period.as_of`")
    acknowledgements_overdue: int = Field(
        description="Rollout orgs that had not acknowledged by their due time (`period.as_of`)"
    )
    parity: ParityStats
    rules: RuleStats
