"""Pydantic bodies and responses of escalations and their RCA, and the field types every part of
the escalation service shares.

Inputs forbid unknown fields (a typo is a 422, not silently dropped) and refuse NUL characters,
which PostgreSQL cannot store. The RCA's structure (five-whys chains of 1 to 5 steps, a root-cause
category, corrective actions that each create or link an action item) is enforced here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from services.common.pagination import Page
from services.escalation.domain import Action, EscalationStatus, Severity, Source

PRINTABLE_PATTERN = r"^[^\x00-\x1f\x7f]+$"


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


Text = Annotated[str, AfterValidator(_no_nul)]
LongText = Annotated[str, StringConstraints(max_length=20_000), AfterValidator(_no_nul)]
Line = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
    AfterValidator(_no_nul),
]
Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_no_nul),
]
Team = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=100, pattern=PRINTABLE_PATTERN
    ),
]
Subject = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=200, pattern=PRINTABLE_PATTERN
    ),
]
Ref = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=200, pattern=PRINTABLE_PATTERN
    ),
]
Instant = Annotated[AwareDatetime, AfterValidator(_utc)]
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _plausible(value: datetime) -> datetime:
    # Deadlines feed timers and calendar arithmetic: keep them where both are meaningful.
    if not EARLIEST <= value < LATEST:
        raise ValueError("must be between 2000-01-01 and 2100-01-01")
    return value


Deadline = Annotated[AwareDatetime, AfterValidator(_utc), AfterValidator(_plausible)]
ItemId = Annotated[int, Field(ge=1, le=2**31 - 1)]


class Input(BaseModel):
    """Base of request bodies: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class TimelineEntry(Input):
    """One dated line of what happened."""

    at: Instant
    entry: Line


class EscalationCreate(Input):
    """A new escalation. Staff name the team it concerns; a partner escalates (source `partner`)
    for its own team only."""

    source: Source
    severity: Severity
    title: Title
    summary: LongText = ""
    external_ref: Ref | None = Field(default=None, description="e.g. the Sev-2 ticket id")
    owner: Subject = Field(description="Who drives the escalation (a subject)")
    program_manager: Subject | None = Field(
        default=None, description="The program manager chased last by the overdue ladder"
    )
    customer_impact: LongText = ""
    business_impact: LongText = ""
    timeline: list[TimelineEntry] = Field(default_factory=list, max_length=200)
    team: Team | None = Field(
        default=None, description="Required for staff; a partner may only give its own team."
    )


class EscalationUpdate(Input):
    """Editable fields; only the fields present change (null clears an optional one)."""

    severity: Severity | None = None
    title: Title | None = None
    summary: LongText | None = None
    external_ref: Ref | None = None
    owner: Subject | None = None
    program_manager: Subject | None = None
    customer_impact: LongText | None = None
    business_impact: LongText | None = None
    timeline: list[TimelineEntry] | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _required_fields_not_cleared(self) -> Self:
        for name in ("severity", "title", "owner", "summary", "customer_impact", "business_impact"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be cleared")
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        return self


class TransitionCreate(Input):
    """An action on an escalation (`close` goes through `/closure-approval`)."""

    action: Action
    note: Annotated[Text, Field(max_length=2000)] | None = None


class ClosureApprovalCreate(Input):
    """The program manager's approval to close an escalation in `pending_closure`."""

    note: Annotated[Text, Field(max_length=2000)] | None = None


class EscalationRead(BaseModel):
    """An escalation as the API returns it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    team: str
    source: Source
    severity: Severity
    status: EscalationStatus
    title: str
    summary: str
    external_ref: str | None
    owner: str
    program_manager: str | None
    customer_impact: str
    business_impact: str
    timeline: list[dict[str, Any]]
    rca_version: int = Field(description="Latest RCA version (0: none on file)")
    closure_approved_by: str | None
    closure_note: str | None
    created_by: str
    version: int = Field(description="Grows by one with every change (items and RCA included).")
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class EscalationPage(Page[EscalationRead]):
    """One page of escalations, newest first."""


class ClosureApprovalRead(BaseModel):
    """The approval recorded by the workflow, and the escalation it closed."""

    approved_by: str
    approved_at: datetime
    note: str | None
    escalation: EscalationRead


# --- RCA / COE document


class RootCauseCategory(StrEnum):
    """Where the root cause lies."""

    DATA_GAP = "data_gap"
    RULE_GAP = "rule_gap"
    MODEL_GAP = "model_gap"
    PROCESS_GAP = "process_gap"
    TOOLING_GAP = "tooling_gap"
    PARTNER_DEPENDENCY = "partner_dependency"


class WhyStep(Input):
    """One step of a five-whys chain."""

    why: Line
    because: Line


class FiveWhysChain(Input):
    """A problem statement and 1 to 5 why/because steps down to a root cause."""

    problem: Line
    steps: list[WhyStep] = Field(min_length=1, max_length=5)


class NewActionItem(Input):
    """An action item a corrective action creates (due date defaults from the follow-up policy)."""

    title: Title
    owner: Subject
    owner_manager: Subject | None = None
    due_at: Deadline | None = None
    priority: str = Field(default="P2", pattern=r"^P[0-3]$")


class CorrectiveAction(Input):
    """A corrective action: it links an existing action item of this escalation or creates one."""

    description: Line
    action_item_id: ItemId | None = None
    new_action_item: NewActionItem | None = None

    @model_validator(mode="after")
    def _exactly_one_target(self) -> Self:
        if (self.action_item_id is None) == (self.new_action_item is None):
            raise ValueError("give exactly one of action_item_id or new_action_item")
        return self


class RcaPut(Input):
    """A full RCA / COE document; each PUT stores it as a new version."""

    what_happened: Annotated[LongText, StringConstraints(min_length=1)]
    impact: Annotated[LongText, StringConstraints(min_length=1)]
    timeline: list[TimelineEntry] = Field(default_factory=list, max_length=200)
    five_whys: list[FiveWhysChain] = Field(min_length=1, max_length=10)
    root_cause_category: RootCauseCategory
    contributing_factors: list[Line] = Field(default_factory=list, max_length=50)
    what_went_well: list[Line] = Field(default_factory=list, max_length=50)
    lessons_learned: list[Line] = Field(default_factory=list, max_length=50)
    corrective_actions: list[CorrectiveAction] = Field(default_factory=list, max_length=50)


class CorrectiveActionRead(BaseModel):
    """A corrective action as stored: always linked to an action item."""

    description: str
    action_item_id: int
    created: bool = Field(description="Whether this version's PUT created the item")


class RcaRead(BaseModel):
    """One version of an escalation's RCA."""

    escalation_id: int
    version: int
    author: str
    created_at: datetime
    what_happened: str
    impact: str
    timeline: list[dict[str, Any]]
    five_whys: list[dict[str, Any]]
    root_cause_category: RootCauseCategory
    contributing_factors: list[str]
    what_went_well: list[str]
    lessons_learned: list[str]
    corrective_actions: list[CorrectiveActionRead]
