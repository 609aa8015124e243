"""Pydantic bodies and responses of action items."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from services.common.pagination import Page
from services.escalation.action_items.domain import ItemAction, ItemPriority, ItemStatus
from services.escalation.people.resolution import CalendarSource
from services.escalation.schemas import Deadline, Input, Line, LongText, Subject, Title, _no_nul

Link = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=500, pattern=r"^https?://\S+$"
    ),
]
CalendarSpec = Annotated[
    dict[str, Any],
    Field(
        description=(
            "This item's own business calendar (as the gateway's calendars take it), overriding "
            "the owner's: reminders and ladder notifications wait for its open hours. Without "
            "it, the owner's directory calendar applies, else the program office default (India, "
            "Mon-Fri 09:30-18:30). On PATCH, null goes back to the owner's calendar."
        )
    ),
]


class ActionItemCreate(Input):
    """A new action item; `due_at` defaults to N business days by severity (Sev-2: 10)."""

    title: Title
    description: LongText = ""
    owner: Subject
    owner_manager: Subject | None = Field(
        default=None,
        description="Overrides the owner's manager from the person directory for this item",
    )
    priority: ItemPriority = ItemPriority.P2
    due_at: Deadline | None = None
    external_link: Link | None = None
    calendar: CalendarSpec | None = None


class ActionItemUpdate(Input):
    """Editable fields; only the fields present change. Moving `due_at` starts a new overdue
    episode (the ladder starts again from the owner)."""

    title: Title | None = None
    description: LongText | None = None
    owner: Subject | None = None
    owner_manager: Subject | None = None
    priority: ItemPriority | None = None
    due_at: Deadline | None = None
    external_link: Link | None = None
    calendar: CalendarSpec | None = None

    @model_validator(mode="after")
    def _required_fields_not_cleared(self) -> Self:
        for name in ("title", "owner", "priority", "due_at", "description"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be cleared")
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        return self


class ActionItemTransitionCreate(Input):
    """An action on an item: `block` needs `reason`, `complete` needs `evidence`,
    `propose_not_doing` needs `justification`, `reject_not_doing` needs `reason`."""

    action: ItemAction
    reason: Line | None = None
    justification: Line | None = None
    evidence: Annotated[LongText, StringConstraints(min_length=1)] | None = None
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None

    @model_validator(mode="after")
    def _note_has_no_nul(self) -> Self:
        if self.note is not None:
            _no_nul(self.note)
        return self


class ActionItemRead(BaseModel):
    """An action item as the API returns it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    escalation_id: int
    title: str
    description: str
    owner: str
    owner_manager: str | None
    priority: ItemPriority
    due_at: datetime
    calendar: dict[str, Any] = Field(
        description="The item's own calendar, or the one its default due date was counted on"
    )
    calendar_source: CalendarSource = Field(
        description="item: given on the item; owner: the owner's directory calendar "
        "(`calendar_id`); default: the program office default"
    )
    calendar_id: str | None = Field(description="The owner's gateway calendar, when used")
    status: ItemStatus
    blocked_reason: str | None
    not_doing_justification: str | None
    not_doing_decided_by: str | None
    not_doing_decision_note: str | None
    external_link: str | None
    completion_evidence: str | None
    rca_version: int | None = Field(description="The RCA version whose corrective action made it")
    created_by: str
    version: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class ActionItemPage(Page[ActionItemRead]):
    """One page of action items, newest first."""
