"""Pydantic bodies and responses of the rule API. Inputs forbid unknown fields and NUL characters."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from services.common.pagination import Page
from services.sop.rules.domain import (
    MAX_MONITORING_SECONDS,
    CandidateReason,
    Decision,
    DeprecationStage,
    RuleKind,
    RuleStatus,
)

RULE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
PRINTABLE_PATTERN = r"^[^\x00-\x1f\x7f]+$"
MAX_INT = 2**31 - 1
MAX_BULK = 1000
# A clock skew allowance for "not in the future" checks of what the platform reports.
FUTURE_TOLERANCE = timedelta(minutes=5)


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


RuleId = Annotated[str, StringConstraints(pattern=RULE_ID_PATTERN)]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_no_nul),
]
Owner = Annotated[
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
Description = Annotated[str, Field(max_length=20_000), AfterValidator(_no_nul)]
Reason = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
    AfterValidator(_no_nul),
]
MoId = Annotated[int, Field(ge=1, le=MAX_INT)]


def _not_future(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    value = value.astimezone(UTC)
    if value > datetime.now(UTC) + FUTURE_TOLERANCE:
        raise ValueError("must not be in the future")
    return value


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuleCreate(_Input):
    """A rule (or an ML model) to add to the inventory; `id` is the platform's own id."""

    id: RuleId
    name: Name
    kind: RuleKind = Field(
        default=RuleKind.RULE,
        description="`rule` or `model`: an ML model reports precision, recall at a threshold "
        "and volume actioned, and is deprecated on model criteria.",
    )
    owner: Owner
    team: Team = Field(description="The team that owns the rule.")
    description: Description = ""
    mo_ids: list[MoId] = Field(default_factory=list, max_length=100, description="Linked MOs")
    deployed_at: AwareDatetime | None = Field(
        default=None, description="When the rule went live (default now); not in the future."
    )

    _past = field_validator("deployed_at")(_not_future)

    @field_validator("mo_ids")
    @classmethod
    def _dedup(cls, value: list[int]) -> list[int]:
        return sorted(set(value))


class RuleUpdate(_Input):
    """Fields to change; absent fields stay. Status changes only through a deprecation."""

    name: Name | None = None
    owner: Owner | None = None
    team: Team | None = None
    description: Description | None = None
    mo_ids: list[MoId] | None = Field(default=None, max_length=100)
    replaced_by: RuleId | None = None
    merged_into: RuleId | None = None

    @field_validator("mo_ids")
    @classmethod
    def _dedup(cls, value: list[int] | None) -> list[int] | None:
        return None if value is None else sorted(set(value))


class RuleRead(BaseModel):
    """A rule as the API returns it."""

    id: str
    name: str
    owner: str
    team: str
    description: str
    kind: RuleKind
    status: RuleStatus
    mo_ids: list[int]
    deployed_at: datetime
    last_fired_at: datetime | None
    replaced_by: str | None
    merged_into: str | None
    version: int = Field(description="Grows by one with every change.")
    created_by: str
    created_at: datetime
    updated_at: datetime


class RulePage(Page[RuleRead]):
    """One page of rules, by id."""


class MetricFields(_Input):
    """The fields of one weekly snapshot. A rule reports `hits` (required), `true_positive_rate`
    and `actioned_accounts`; a model reports `threshold`, `precision` and `recall` at it and
    `volume_actioned` (required; `hits`, its alerts, defaults to the volume). Each kind's fields
    are a 422 on the other kind."""

    week_start: date = Field(description="Monday of the ISO week the snapshot covers.")
    hits: int | None = Field(default=None, ge=0, le=MAX_INT)
    true_positive_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    actioned_accounts: int = Field(default=0, ge=0, le=MAX_INT)
    last_fired_at: AwareDatetime | None = None
    precision: float | None = Field(default=None, ge=0.0, le=1.0, description="Models only")
    recall: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Models only: recall at `threshold`"
    )
    threshold: float | None = Field(
        default=None,
        ge=-1e12,
        le=1e12,
        allow_inf_nan=False,
        description="Models only: the score above which the model acts",
    )
    volume_actioned: int | None = Field(
        default=None, ge=0, le=MAX_INT, description="Models only: accounts or orders actioned"
    )

    _past = field_validator("last_fired_at")(_not_future)

    @field_validator("week_start")
    @classmethod
    def _monday_not_future(cls, value: date) -> date:
        if value.weekday() != 0:
            raise ValueError("must be a Monday (the start of an ISO week)")
        if value > datetime.now(UTC).date():
            raise ValueError("must not be a future week")
        return value

    @model_validator(mode="after")
    def _fired_needs_hits(self) -> MetricFields:
        if self.hits == 0 and self.true_positive_rate is not None:
            raise ValueError("true_positive_rate needs hits > 0")
        return self


class MetricCreate(MetricFields):
    """One weekly snapshot of a rule's activity. Posting the same week again replaces it (or is a
    no-op if nothing changed)."""


class MetricBulkItem(MetricFields):
    """One snapshot of a bulk post."""

    rule_id: RuleId


class MetricBulkCreate(_Input):
    """Many snapshots at once, all-or-nothing."""

    items: list[MetricBulkItem] = Field(min_length=1, max_length=MAX_BULK)


class MetricRead(BaseModel):
    """A stored weekly snapshot."""

    model_config = ConfigDict(from_attributes=True)

    rule_id: str
    week_start: date
    hits: int
    true_positive_rate: float | None
    actioned_accounts: int
    last_fired_at: datetime | None
    precision: float | None = None
    recall: float | None = None
    threshold: float | None = None
    volume_actioned: int | None = None
    recorded_by: str
    recorded_at: datetime
    updated_at: datetime


class MetricWritten(MetricRead):
    """A snapshot after a post, and what the post did."""

    result: Literal["created", "replaced", "unchanged"]


class MetricBulkResult(BaseModel):
    """What a bulk post did, item by item (same order)."""

    created: int
    replaced: int
    unchanged: int
    items: list[MetricWritten]


class MetricPage(Page[MetricRead]):
    """One page of a rule's snapshots, newest week first."""


class CriteriaInput(_Input):
    """The "non-impacting" test (defaults apply to absent fields). A rule takes `no_hits_days`,
    `precision_floor` and `precision_weeks`; a model `precision_floor` and `volume_floor`
    (average volume actioned a week)."""

    no_hits_days: int | None = Field(default=None, ge=1, le=3650)
    precision_floor: float | None = Field(default=None, ge=0.0, le=1.0)
    precision_weeks: int | None = Field(default=None, ge=1, le=520)
    volume_floor: int | None = Field(default=None, ge=0, le=MAX_INT, description="Models only")


class DeprecationCreate(_Input):
    """A proposal to deprecate a rule after a monitoring period."""

    reason: Reason
    monitoring_seconds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_MONITORING_SECONDS,
        description="Length of the monitoring period (default: the service setting, 28 days).",
    )
    criteria: CriteriaInput | None = None
    replaced_by: RuleId | None = Field(default=None, description="The rule that replaces it.")
    merged_into: RuleId | None = Field(default=None, description="The rule it is merged into.")

    @model_validator(mode="after")
    def _one_successor(self) -> DeprecationCreate:
        if self.replaced_by is not None and self.merged_into is not None:
            raise ValueError("give replaced_by or merged_into, not both")
        return self


class DecisionCreate(_Input):
    """An approver's decision on a clean monitoring period; a rejection needs a comment."""

    decision: Decision
    comment: Reason | None = None

    @model_validator(mode="after")
    def _reject_needs_comment(self) -> DecisionCreate:
        if self.decision is Decision.REJECT and self.comment is None:
            raise ValueError("a rejection needs a comment")
        return self


class DeprecationRead(BaseModel):
    """One deprecation proposal and how it went."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    rule_id: str
    stage: DeprecationStage
    reason: str
    proposed_by: str
    proposed_at: datetime
    monitoring_seconds: int
    criteria: dict[str, Any]
    replaced_by: str | None
    merged_into: str | None
    monitoring_started_at: datetime | None
    monitoring_ends_at: datetime | None
    checked_at: datetime | None
    evidence: dict[str, Any] | None
    decided_by: str | None
    decision_comment: str | None
    outcome: str | None
    finished_at: datetime | None
    workflow_id: str


class DeprecationPage(Page[DeprecationRead]):
    """A rule's deprecation proposals, newest first."""


class CandidateFindingRead(BaseModel):
    """Why a rule is listed."""

    reason: CandidateReason
    detail: str


class CandidateRead(BaseModel):
    """A rule the non-impacting test flags, with the numbers behind it."""

    rule: RuleRead
    findings: list[CandidateFindingRead]
    days_since_last_hit: float | None
    precision: float | None
    weeks_considered: int


class CandidateList(BaseModel):
    """Every deprecation candidate under the given criteria."""

    criteria: dict[str, Any]
    items: list[CandidateRead]


# --- internal (worker) bodies


class MonitoringStarted(BaseModel):
    """The monitoring window a deprecation runs."""

    deprecation_id: int
    started_at: datetime
    ends_at: datetime


class MonitoringCheck(BaseModel):
    """The automatic check of a monitoring period."""

    deprecation_id: int
    clean: bool
    reason: str
    evidence: dict[str, Any]


class OutcomeCreate(_Input):
    """How a deprecation ends (posted by the workflow)."""

    outcome: Literal["deprecated", "retained"]
    decided_by: Owner
    comment: Annotated[str, Field(max_length=2000), AfterValidator(_no_nul)] | None = None
