"""Pydantic bodies and responses of the SOP API.

Inputs forbid unknown fields (a typo is a 422) and refuse NUL characters (PostgreSQL cannot store
them). Durations are ISO-8601 (`P1D`, `PT30S`) or seconds.
"""

from __future__ import annotations

from datetime import datetime, timedelta
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
from services.sop.sops.domain import Decision, RolloutStatus, VersionStatus

MAX_ID = 2**31 - 1
PRINTABLE_PATTERN = r"^[^\x00-\x1f\x7f]+$"
SOP_KEY_PATTERN = r"^SOP-[A-Z0-9]{2,12}-[0-9]{1,6}$"
ORG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Markdown = Annotated[str, Field(min_length=1, max_length=200_000), AfterValidator(_no_nul)]
Comment = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=5_000), AfterValidator(_no_nul)
]
Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_no_nul),
]
Subject = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=200, pattern=PRINTABLE_PATTERN
    ),
]
Team = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=100, pattern=PRINTABLE_PATTERN
    ),
]
OrgId = Annotated[str, StringConstraints(pattern=ORG_PATTERN)]
SopKey = Annotated[str, StringConstraints(strip_whitespace=True, pattern=SOP_KEY_PATTERN)]
Duration = Annotated[
    timedelta, Field(ge=timedelta(seconds=1), le=timedelta(days=365), description="ISO-8601")
]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApprovalStageIn(_Input):
    """A stage: approvers decide in parallel; `min_approvals` (k of n) or `min_percent` ends it.

    With neither, every approver must approve."""

    name: Title
    approvers: list[Subject] = Field(min_length=1, max_length=50)
    min_approvals: int | None = Field(default=None, ge=1, le=50)
    min_percent: int | None = Field(default=None, ge=1, le=100)

    @model_validator(mode="after")
    def _quorum(self) -> Self:
        if len(set(self.approvers)) != len(self.approvers):
            raise ValueError("approvers must be distinct")
        if self.min_approvals is not None and self.min_percent is not None:
            raise ValueError("give min_approvals or min_percent, not both")
        if self.min_approvals is not None and self.min_approvals > len(self.approvers):
            raise ValueError("min_approvals exceeds the number of approvers")
        return self


class ApprovalPolicy(_Input):
    """How versions of an SOP are approved: sequential stages, reminders, escalation."""

    stages: list[ApprovalStageIn] = Field(min_length=1, max_length=10)
    reject_returns_to_draft: bool = Field(
        default=True,
        description="One rejection (with a comment) sends the version back to draft; otherwise "
        "rejections count against the quorum and the version is rejected once it is unreachable.",
    )
    reminder_interval: Duration = Field(
        default=timedelta(days=1), description="Pending approvers are reminded this often."
    )
    escalate_after: Duration = Field(
        default=timedelta(days=3),
        description="A stage still open this long after it started is escalated to the owner.",
    )


class SopCreate(_Input):
    """A new SOP with its first (draft) version."""

    key: SopKey = Field(description="e.g. SOP-ACC-012")
    title: Title
    owning_team: Team
    owner: Subject | None = Field(default=None, description="Defaults to the caller.")
    approval_policy: ApprovalPolicy
    review_interval_days: int = Field(default=365, ge=1, le=3650)
    content: Markdown
    change_summary: Comment = "Initial version"


class SopUpdate(_Input):
    """Changes to an SOP's metadata (content changes are new versions)."""

    title: Title | None = None
    owner: Subject | None = None
    approval_policy: ApprovalPolicy | None = None
    review_interval_days: int | None = Field(default=None, ge=1, le=3650)


class VersionCreate(_Input):
    """A new draft version."""

    content: Markdown
    change_summary: Comment = Field(min_length=1)


class VersionUpdate(_Input):
    """Edits of a draft version."""

    content: Markdown | None = None
    change_summary: Comment | None = None


class DecisionCreate(_Input):
    """An approver's decision; a rejection needs a comment."""

    decision: Decision
    comment: Comment | None = None


class RolloutWaveIn(_Input):
    """A wave: its orgs start at `starts_at` (default now) and must acknowledge by `due_at`."""

    orgs: list[OrgId] = Field(min_length=1, max_length=50)
    starts_at: AwareDatetime | None = None
    due_at: AwareDatetime


class RolloutCreate(_Input):
    """The rollout of an approved version, in waves."""

    waves: list[RolloutWaveIn] = Field(min_length=1, max_length=20)
    reminder_interval: Duration = Field(
        default=timedelta(days=1),
        description="Org leads that have not acknowledged are reminded this often until due.",
    )


class AcknowledgementCreate(_Input):
    """An org lead acknowledges the rollout (and, once done, records training completion)."""

    org: OrgId
    training_completed: bool = False
    note: Comment | None = None


class ReviewCreate(_Input):
    """A periodic review done: the next one is due one review interval from now."""

    note: Comment | None = None


class SopRead(BaseModel):
    """An SOP as the API returns it."""

    id: int
    key: str
    title: str
    owning_team: str
    owner: str
    approval_policy: dict[str, Any]
    review_interval_days: int
    next_review_at: datetime
    last_reviewed_at: datetime | None
    review_status: str = Field(description="ok, due_soon or overdue")
    effective_version: int | None
    latest_version: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class SopPage(Page[SopRead]):
    """One page of SOPs, newest first."""


class SopVersionRead(BaseModel):
    """A version of an SOP."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    sop_id: int
    number: int
    status: VersionStatus
    content: str
    change_summary: str
    author: str
    review_round: int
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    approved_at: datetime | None
    effective_at: datetime | None
    ended_at: datetime | None


class SopVersionPage(Page[SopVersionRead]):
    """One page of an SOP's versions, oldest first."""


class DiffRead(BaseModel):
    """A unified diff between two versions."""

    sop_id: int
    from_version: int
    to_version: int
    diff: str


class DecisionRead(BaseModel):
    """An accepted decision and where the approval stands after it."""

    actor: str
    decision: Decision
    stage: int
    stage_name: str
    stage_status: str
    outcome: str | None


class ApprovalStageRead(BaseModel):
    """A stage of an approval as its workflow reports it."""

    name: str
    approvers: list[str]
    required: int
    approvals: list[str]
    rejections: list[str]
    status: str
    reminders_sent: int
    escalated: bool


class ApprovalRead(BaseModel):
    """The approval of a version's current review round."""

    version_id: int
    review_round: int
    current_stage: int
    stages: list[ApprovalStageRead]
    outcome: str | None


class SopEventRead(BaseModel):
    """One entry of an SOP's audit trail."""

    model_config = ConfigDict(from_attributes=True)

    seq: int
    event_id: str
    sop_id: int
    version_number: int | None
    rollout_id: int | None
    kind: str
    actor: str
    comment: str | None
    data: dict[str, Any]
    occurred_at: datetime


class SopEventPage(Page[SopEventRead]):
    """One page of an SOP's audit trail, oldest first."""


class RolloutOrgRead(BaseModel):
    """One org of a rollout."""

    org: str
    wave: int
    starts_at: datetime
    due_at: datetime
    state: str = Field(description="scheduled, pending, overdue or acknowledged")
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    training_completed_at: datetime | None
    reminders_sent: int
    escalated_at: datetime | None
    late: bool = Field(description="Acknowledged after its due time")


class RolloutRead(BaseModel):
    """A rollout and each org's acknowledgement."""

    id: int
    sop_id: int
    version_number: int
    status: RolloutStatus
    reminder_interval_seconds: int
    created_by: str
    created_at: datetime
    ended_at: datetime | None
    orgs: list[RolloutOrgRead]


class OrgRead(BaseModel):
    """A site or partner org."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    kind: str
    lead_subject: str


class OrgParityRead(BaseModel):
    """One org's standing on one SOP."""

    org: str
    version_in_effect: int | None
    adopted_at: datetime | None
    at_parity: bool
    lagging_since: datetime | None
    lag_seconds: float | None
    due_at: datetime | None = Field(description="When the newest version's rollout is due here")
    overdue: bool


class SopParityRead(BaseModel):
    """Parity of one SOP across the orgs it has been rolled out to."""

    sop_id: int
    key: str
    title: str
    newest_effective_version: int | None
    effective_since: datetime | None
    parity_percent: float | None
    laggards: list[str]
    orgs: list[OrgParityRead]


class ParityRead(BaseModel):
    """Parity per SOP and overall (org-SOP pairs at parity / all pairs with an effective SOP)."""

    computed_at: datetime
    overall_parity_percent: float | None
    sops: list[SopParityRead]


class SopEventIn(_Input):
    """An audit event reported by a workflow (internal)."""

    event_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    kind: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,40}$")]
    actor: Subject
    occurred_at: AwareDatetime
    version_number: int | None = Field(default=None, ge=1, le=MAX_ID)
    rollout_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    org_id: OrgId | None = None
    comment: Comment | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class ApprovalOutcomeIn(_Input):
    """How an approval round ended (internal)."""

    review_round: int = Field(ge=1)
    outcome: str = Field(pattern=r"^(approved|rejected|returned_to_draft)$")


class DueReviewRead(BaseModel):
    """An SOP whose review is due soon or overdue (internal, for the sweep)."""

    sop_id: int
    key: str
    title: str
    team: str
    owner: str
    next_review_at: datetime
    overdue: bool
