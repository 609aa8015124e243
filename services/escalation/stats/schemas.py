"""What `GET /api/v1/stats/escalations` answers."""

from __future__ import annotations

from pydantic import BaseModel, Field

from services.common.stats import DurationStats, PeriodRead


class OpenedCount(BaseModel):
    """Escalations of one source and severity opened in the period."""

    source: str
    severity: str
    count: int


class ActionItemStats(BaseModel):
    """Action items created, completed (done or accepted as not doing) and overdue."""

    created: int
    completed: int
    overdue: int = Field(description="Due before `period.as_of` and not completed by then")


class GapCounts(BaseModel):
    """The gap register's success metric over the ISO weeks the period touches (`/gaps/stats`)."""

    identified: int
    quantified: int
    closed: int


class EscalationStatsRead(BaseModel):
    """The escalation service's numbers for a period."""

    period: PeriodRead
    team: str | None = Field(description="The team filter, if any")
    opened: int
    opened_by_source_severity: list[OpenedCount]
    closed: int
    open: int = Field(description="Opened before `period.as_of` and not closed by then")
    closure_time: DurationStats = Field(
        description="Wall-clock time from opening to closure of those closed in the period"
    )
    action_items: ActionItemStats
    gaps: GapCounts
