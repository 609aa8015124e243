"""What `GET /api/v1/stats/intake` answers."""

from __future__ import annotations

from pydantic import BaseModel, Field

from services.common.stats import DurationStats, PeriodRead


class FiledCount(BaseModel):
    """Requests of one team and type filed in the period."""

    team: str
    request_type: str
    count: int


class SlaAttainment(BaseModel):
    """SLA over the requests whose resolution clock stopped in the period."""

    resolved: int = Field(description="Requests whose resolution clock stopped in the period")
    met: int = Field(description="Of those, how many never breached a clock")
    attainment: float | None = Field(description="met / resolved (null when none)")
    breaches: int = Field(description="Requests whose first breach fell in the period")


class ReopenRate(BaseModel):
    """Reopen actions against resolve actions in the period."""

    resolved: int = Field(description="`resolve` actions in the period")
    reopened: int = Field(description="`reopen` actions in the period")
    rate: float | None = Field(description="reopened / resolved (null when none)")


class IntakeStatsRead(BaseModel):
    """Intake's numbers for a period; durations are business seconds on each request's SLA
    calendar, as its workflow measured them."""

    period: PeriodRead
    team: str | None = Field(description="The team filter, if any")
    filed: int
    filed_by_team_type: list[FiledCount]
    closed: int
    closed_by_resolution: dict[str, int]
    backlog: int = Field(description="Filed before `period.as_of` and not closed by then")
    first_response: DurationStats = Field(
        description="Business time to first response of the clocks that stopped in the period"
    )
    resolution: DurationStats = Field(
        description="Business time to resolution of the clocks that stopped in the period "
        "(a reopen continues the clock: the total counts)"
    )
    sla: SlaAttainment
    reopen: ReopenRate
