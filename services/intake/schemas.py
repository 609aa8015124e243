"""Pydantic bodies and responses of the intake API.

Inputs forbid unknown fields (a typo is a 422, not silently dropped) and refuse NUL characters,
which PostgreSQL cannot store.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from services.common.pagination import Page
from services.intake.domain import (
    Action,
    EventKind,
    Priority,
    RequestStatus,
    RequestType,
    Resolution,
)
from services.intake.triage.scoring import Urgency

MAX_ID = 2**31 - 1
TAG_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,49}$"
PRINTABLE_PATTERN = r"^[^\x00-\x1f\x7f]+$"


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _normalise_tag(value: object) -> object:
    # Tags compare case-insensitively: store them lower-case (before the pattern is checked).
    return value.strip().lower() if isinstance(value, str) else value


Text = Annotated[str, AfterValidator(_no_nul)]
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
Tag = Annotated[str, BeforeValidator(_normalise_tag), StringConstraints(pattern=TAG_PATTERN)]
ExternalRef = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
    AfterValidator(_no_nul),
]
Marketplace = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=64, pattern=PRINTABLE_PATTERN
    ),
]
RequestId = Annotated[int, Field(ge=1, le=MAX_ID)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Impact(_Input):
    """The estimated harm of the pattern a request is about."""

    accounts_affected: int = Field(ge=0, le=10**12)
    money_at_risk_per_week: Decimal = Field(ge=0, max_digits=18, decimal_places=2)
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO-4217 code, e.g. USD")


class RequestCreate(_Input):
    """A new request. Partners file for their own team; staff name the team."""

    request_type: RequestType
    title: Title
    description: Annotated[Text, Field(max_length=20_000)] = ""
    priority: Priority = Priority.P2
    due_at: AwareDatetime | None = Field(
        default=None, description="ISO-8601 with a zone, in the future"
    )
    marketplace: Marketplace | None = None
    impact: Impact | None = None
    external_refs: list[ExternalRef] = Field(default_factory=list, max_length=20)
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    team: Team | None = Field(
        default=None, description="Required for staff; a partner may only give its own team."
    )
    urgency: Urgency | None = Field(
        default=None, description="How soon an answer is needed; feeds the priority score."
    )
    details: dict[str, Any] = Field(
        default_factory=dict,
        max_length=50,
        description="The request type's own fields (`GET /api/v1/request-types/{type}`).",
    )

    @field_validator("due_at")
    @classmethod
    def _due_in_future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        if value <= datetime.now(UTC):
            raise ValueError("must be in the future")
        return value

    @field_validator("tags")
    @classmethod
    def _dedup_tags(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class TransitionCreate(_Input):
    """An action on a request; `reason` is needed to reject, `duplicate_of` to mark a duplicate."""

    action: Action
    reason: Annotated[Text, Field(max_length=2000)] | None = None
    duplicate_of: RequestId | None = None
    note: Annotated[Text, Field(max_length=20_000)] | None = None


class ImpactRead(BaseModel):
    """Impact as stored."""

    accounts_affected: int
    money_at_risk_per_week: Decimal
    currency: str


class RequestRead(BaseModel):
    """A request as the API returns it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    team: str
    request_type: RequestType
    title: str
    description: str
    priority: Priority
    status: RequestStatus
    resolution: Resolution | None
    duplicate_of: int | None
    due_at: datetime | None
    marketplace: str | None
    impact: ImpactRead | None
    external_refs: list[str]
    tags: list[str]
    requested_by: str
    assignee: str | None
    version: int = Field(description="Grows by one with every change.")
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    sla_due_at: datetime | None = Field(
        default=None, description="The earliest deadline of the SLA clocks running now."
    )
    breached_at: datetime | None = Field(
        default=None, description="When the request first breached an SLA target, if it did."
    )
    details: dict[str, Any] = Field(default_factory=dict, description="The type's own fields.")
    urgency: Urgency | None = None
    priority_score: int = Field(
        default=40, description="0-100 from the impact x urgency matrix (README, Triage)."
    )
    proposed_priority: Priority | None = Field(
        default=None, description="The priority the score proposes; `priority` may differ."
    )
    queue: str | None = Field(default=None, description="The work queue it sits in, if any.")
    first_response_at: datetime | None = Field(
        default=None, description="When staff first answered with a public comment."
    )


class RequestPage(Page[RequestRead]):
    """One page of requests, newest first."""


class RequestEventRead(BaseModel):
    """One change of a request."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    request_id: int
    request_version: int
    kind: EventKind
    action: Action | None
    from_status: RequestStatus | None
    to_status: RequestStatus
    actor: str
    actor_role: str
    data: dict[str, Any]
    occurred_at: datetime


class RequestEventPage(Page[RequestEventRead]):
    """One page of a request's events, oldest first."""


class SlaRecordUpdate(_Input):
    """The SLA columns of a request, as its workflow computed them (internal, system only)."""

    sla_due_at: AwareDatetime | None = None
    breached_at: AwareDatetime | None = None
    first_response_due_at: AwareDatetime | None = None
    resolution_due_at: AwareDatetime | None = None
    # Each clock's business time worked and stop instant, once stopped (the stats read them).
    first_response_business_seconds: float | None = Field(default=None, ge=0)
    first_response_stopped_at: AwareDatetime | None = None
    resolution_business_seconds: float | None = Field(default=None, ge=0)
    resolution_stopped_at: AwareDatetime | None = None


class SlaClockRead(BaseModel):
    """One SLA clock, computed at `computed_at` by the request's workflow."""

    name: str = Field(description="`first_response` or `resolution`")
    state: str = Field(description="running, paused, stopped, breached, or pending (no policy yet)")
    target: str | None = Field(default=None, description="ISO-8601 business duration")
    target_seconds: float | None = None
    elapsed: str | None = Field(default=None, description="Business time worked so far")
    elapsed_seconds: float | None = None
    remaining: str | None = Field(default=None, description="Business time left (0 once breached)")
    remaining_seconds: float | None = None
    due_at: datetime | None = Field(default=None, description="Deadline; null while paused")
    breached_at: datetime | None = None
    warnings_sent: list[int] = Field(default_factory=list, description="Thresholds raised (%)")
    paused_since: datetime | None = None
    stopped_at: datetime | None = None


class RequestSlaRead(BaseModel):
    """A request's SLA clocks and the policy they run under."""

    request_id: int
    computed_at: datetime
    policy_id: str | None = None
    policy_name: str | None = None
    calendar_id: str | None = None
    clocks: list[SlaClockRead]
