"""Request and response bodies of the calendar endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.common.pagination import Page
from services.gateway.sla.domain import SLUG_PATTERN

Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]

CALENDAR_DESCRIPTION = (
    'A calendar object: `{"timezone": "Asia/Kolkata", "hours": {"mon": [["09:00", "18:00"]], ...}, '
    '"holidays": {"country": "IN", "subdivision": null}, "closed_dates": ["2026-12-24"]}` '
    '(local wall-clock hours; a weekday left out is closed; `"24:00"` ends a day), or '
    '`{"timezone": "UTC", "always_open": true}`.'
)
CALENDAR_EXAMPLE: dict[str, Any] = {
    "timezone": "Asia/Kolkata",
    "hours": {day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": {"country": "IN", "subdivision": None},
    "closed_dates": [],
}


class CalendarUpdate(BaseModel):
    """A calendar's new name and hours (PUT replaces both)."""

    model_config = ConfigDict(extra="forbid")

    name: DisplayName
    calendar: dict[str, Any] = Field(description=CALENDAR_DESCRIPTION, examples=[CALENDAR_EXAMPLE])


class CalendarCreate(CalendarUpdate):
    """A new calendar, with the slug that names it for good."""

    id: Slug = Field(description="Slug, `^[a-z0-9-]{2,40}$`; policies refer to it.")


class CalendarRead(BaseModel):
    """A calendar as stored (its `calendar` object normalized)."""

    id: str
    name: str
    calendar: dict[str, Any] = Field(description=CALENDAR_DESCRIPTION)
    version: int = Field(description="Bumped by every change; the ETag is this number.")
    created_at: datetime
    updated_at: datetime


CalendarPage = Page[CalendarRead]
