"""Body and response of intake's aging query (`POST /internal/requests/aging`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from services.intake.aging.domain import AgeBucket
from services.intake.schemas import PRINTABLE_PATTERN, Team

Assignee = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=PRINTABLE_PATTERN)
]
MAX_ITEMS = 1000


class AgingQuery(BaseModel):
    """What to age, on which calendar, seen when."""

    model_config = ConfigDict(extra="forbid")

    calendar: dict[str, Any] = Field(
        description="The business calendar whose days count (a calendar object as the gateway's "
        "`/calendars` take it; the gateway passes its default policy's calendar)."
    )
    at: AwareDatetime | None = Field(
        default=None, description="The instant the ages are computed at (default: now)."
    )
    stale_business_days: int | None = Field(
        default=None,
        ge=1,
        le=365,
        description="Stale after this many business days without an update "
        "(default: the service's `aging_stale_business_days`).",
    )
    team: Team | None = Field(default=None, description="Staff only; partners age their own team.")
    assignee: Assignee | None = None
    unassigned: bool = Field(default=False, description="Only requests nobody is assigned to.")
    bucket: AgeBucket | None = Field(default=None, description="Only requests of this age bucket.")
    limit: int = Field(
        default=100, ge=1, le=MAX_ITEMS, description="How many stale requests to list at most."
    )

    @model_validator(mode="after")
    def _one_owner_filter(self) -> AgingQuery:
        if self.unassigned and self.assignee is not None:
            raise ValueError("give either assignee or unassigned, not both")
        return self


class AgingGroup(BaseModel):
    """How many open requests of one team and assignee fall in one age bucket."""

    team: str
    assignee: str | None
    bucket: AgeBucket
    count: int


class StaleOwner(BaseModel):
    """How many stale requests one team and assignee (None: unassigned) has."""

    team: str
    assignee: str | None
    count: int


class AgingItem(BaseModel):
    """A stale request, with its age and idle time in business days."""

    id: int
    team: str
    title: str
    request_type: str
    priority: str
    status: str
    assignee: str | None
    created_at: datetime
    updated_at: datetime
    age_business_days: int
    idle_business_days: int
    bucket: AgeBucket


class AgingRead(BaseModel):
    """Open requests (not resolved or closed) by age bucket, and the stale ones, stalest first."""

    as_of: datetime
    as_of_date: date = Field(description="The local business date of `as_of` on the calendar.")
    timezone: str
    stale_business_days: int
    open_count: int
    buckets: dict[AgeBucket, int] = Field(description="Open requests per bucket (all five).")
    groups: list[AgingGroup] = Field(description="Per team, assignee and bucket (non-zero only).")
    stale_count: int
    stale_by_owner: list[StaleOwner]
    stale: list[AgingItem] = Field(description="Stale requests, longest idle first, up to `limit`.")
    truncated: bool = Field(description="True when more stale requests exist than listed.")
