"""The aging alerts response (mirrors intake's aging report; a service never imports another)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

AgeBucket = Literal["0-2", "3-7", "8-14", "15-30", "30+"]
BUCKET_DESCRIPTION = (
    "Age in business days since filing: 0-2, 3-7, 8-14, 15-30 (30 included), 30+ (more than 30). "
    "A business day is a local date with business hours on the calendar; the age counts the "
    "business days begun since the day the request was filed."
)


class AgingGroup(BaseModel):
    """How many open requests of one team and owner fall in one age bucket."""

    team: str
    owner: str | None = Field(description="The assignee; null for unassigned requests.")
    bucket: AgeBucket
    count: int


class StaleOwner(BaseModel):
    """How many stale requests one team and owner (null: unassigned) has."""

    team: str
    owner: str | None
    count: int


class StaleRequest(BaseModel):
    """A stale request, with its age and idle time in business days."""

    id: int
    team: str
    title: str
    request_type: str
    priority: str
    status: str
    owner: str | None
    created_at: datetime
    updated_at: datetime
    age_business_days: int
    idle_business_days: int
    bucket: AgeBucket


class AgingAlertsRead(BaseModel):
    """Open requests by age bucket, and the stale ones (no update for N business days)."""

    as_of: datetime
    as_of_date: date = Field(description="The local business date of `as_of` on the calendar.")
    calendar_id: str = Field(description="The calendar whose business days were counted.")
    timezone: str
    stale_business_days: int
    open_count: int
    buckets: dict[AgeBucket, int] = Field(description=BUCKET_DESCRIPTION)
    groups: list[AgingGroup] = Field(description="Per team, owner and bucket (non-zero only).")
    stale_count: int
    stale_by_owner: list[StaleOwner]
    stale: list[StaleRequest] = Field(description="Longest idle first, up to `limit`.")
    truncated: bool = Field(description="True when more stale requests exist than listed.")
