"""The weekly report's JSON shape, goals and notes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints


class TrendPoint(BaseModel):
    """One week's value of a metric (null when there was nothing to measure)."""

    week: str
    value: float | None


class NoteRead(BaseModel):
    """A path-to-green note."""

    text: str
    author: str
    updated_at: datetime


class MetricLine(BaseModel):
    """One metric of the report."""

    key: str
    label: str
    area: Literal["intake", "escalation", "sop"]
    unit: Literal["count", "hours", "days", "percent"]
    direction: Literal["higher", "lower"] = Field(description="Which way is better")
    value: float | None
    previous: float | None = Field(description="Last week's value")
    change: float | None = Field(description="value - previous")
    improved: bool | None = Field(description="Whether the change is for the better")
    goal: float | None
    goal_set: bool = Field(description="False when the goal is the built-in default")
    amber_within: float
    rag: Literal["green", "amber", "red", "none"]
    trend: list[TrendPoint] = Field(description="The last 8 weeks, oldest first, this one last")
    note: NoteRead | None = Field(description="The path to green, if written")
    needs_path_to_green: bool = Field(description="Red or amber, and no note yet")


class AgingBuckets(BaseModel):
    """Open requests by age in business days at the end of the week (or now)."""

    as_of: datetime | None
    timezone: str | None
    calendar_id: str
    open_count: int | None
    buckets: dict[str, int]


class WeeklyReportRead(BaseModel):
    """The weekly flash report of one ISO week."""

    week: str
    previous_week: str
    start: datetime
    end: datetime
    built_at: datetime
    final: bool = Field(description="The week had ended when the report was built")
    stored: bool = Field(description="Stored and read back unchanged (false: computed live)")
    rag_rule: str
    summary: dict[str, int] = Field(description="How many metrics are green, amber, red, none")
    metrics: list[MetricLine]
    aging: AgingBuckets


class GoalUpdate(BaseModel):
    """A metric's goal; `target: null` removes the goal (no RAG status)."""

    model_config = ConfigDict(extra="forbid")

    target: float | None = Field(ge=-1e12, le=1e12)
    amber_within: float = Field(
        default=0.1, ge=0, le=1, description="The amber band, as a fraction of the goal"
    )


class GoalRead(BaseModel):
    """A metric's goal as the next report will use it."""

    metric: str
    label: str
    direction: str
    unit: str
    target: float | None
    amber_within: float
    default: bool = Field(description="True when no goal was set and the built-in one applies")


NoteText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]


class NoteUpdate(BaseModel):
    """A path-to-green note."""

    model_config = ConfigDict(extra="forbid")

    note: NoteText


class NoteWritten(BaseModel):
    """A note as stored."""

    week: str
    metric: str
    note: str
    author: str
    updated_at: datetime


class WeeklyBuilt(BaseModel):
    """What `POST /internal/reports/weekly/{week}` did."""

    week: str
    built_at: datetime
    created: bool = Field(description="False when the week's report was already stored")
    events: list[str] = Field(description="The `report.weekly` event ids published (one a team)")
