"""Pydantic bodies and responses of the person directory."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.common.pagination import Page
from services.escalation.schemas import Input

# A handle is the subject an action item names as its owner: no spaces, slashes or controls.
HANDLE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+:-]{0,199}$"
# The gateway's calendar slug pattern (services/gateway/sla/domain.py SLUG_PATTERN; services do
# not import each other, so it is repeated here).
CALENDAR_ID_PATTERN = r"^[a-z0-9-]{2,40}$"
EMAIL_PATTERN = r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$"

Handle = Annotated[str, StringConstraints(pattern=HANDLE_PATTERN)]
DisplayName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]
Email = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=254, pattern=EMAIL_PATTERN)
]
CalendarId = Annotated[str, StringConstraints(pattern=CALENDAR_ID_PATTERN)]


class PersonPut(Input):
    """A directory entry (PUT creates or replaces it whole)."""

    display_name: DisplayName
    email: Email
    manager_handle: Handle | None = Field(
        default=None, description="The overdue ladder's second level for this person's items"
    )
    calendar_id: CalendarId | None = Field(
        default=None,
        description=(
            "A gateway calendar (`/api/v1/calendars/{id}`): quiet hours and default due dates of "
            "this person's items. None: the program office default (India business hours)."
        ),
    )


class PersonRead(BaseModel):
    """A directory entry as the API returns it."""

    model_config = ConfigDict(from_attributes=True)

    handle: str
    display_name: str
    email: str
    manager_handle: str | None
    calendar_id: str | None
    version: int = Field(description="Bumped by every change; the ETag is this number.")
    created_at: datetime
    updated_at: datetime


class PersonPage(Page[PersonRead]):
    """One page of directory entries, by handle."""
