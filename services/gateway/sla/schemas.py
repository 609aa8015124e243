"""Request and response bodies of the SLA policy, preview and resolution endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from services.common.pagination import Page
from services.gateway.calendars.schemas import (
    CALENDAR_DESCRIPTION,
    CALENDAR_EXAMPLE,
    DisplayName,
    Slug,
)
from services.gateway.sla import domain

Priority = Literal["P0", "P1", "P2", "P3"]
MAX_PAUSES = 1_000

TARGET_DESCRIPTION = (
    "Business time as an ISO-8601 duration in hours, minutes and seconds (`PT8H`, `PT90M`, "
    "`PT30S`); days are refused because a business day depends on the calendar."
)


class PolicyUpdate(BaseModel):
    """A policy's full definition (PUT replaces it; omitted fields take their defaults)."""

    model_config = ConfigDict(extra="forbid")

    name: DisplayName
    order: int = Field(
        ge=0, le=1_000_000, description="Match order: the lowest matching order wins. Unique."
    )
    request_types: list[str] | None = Field(
        default=None,
        description=f"Request types matched (any of {', '.join(domain.REQUEST_TYPES)}); null = any.",
    )
    priorities: list[Priority] | None = Field(
        default=None, description="Priorities matched; null = any."
    )
    first_response_target: str = Field(description=TARGET_DESCRIPTION, examples=["PT4H"])
    resolution_target: str = Field(description=TARGET_DESCRIPTION, examples=["PT40H"])
    calendar_id: Slug = Field(description="The business calendar the clocks count in.")
    warning_thresholds: list[int] = Field(
        default=list(domain.DEFAULT_WARNING_THRESHOLDS),
        max_length=20,
        description="Percents of a target at which a warning is raised: 1..99, increasing.",
    )
    pause_statuses: list[str] = Field(
        default=list(domain.DEFAULT_PAUSE_STATUSES),
        description=f"Statuses that pause the clocks (some of {', '.join(domain.PAUSABLE_STATUSES)}).",
    )
    auto_close_after: str | None = Field(
        default=domain.DEFAULT_AUTO_CLOSE_AFTER,
        description="Wall-clock time after resolution before an un-reopened request is closed "
        "(`PT72H`, `P3D`); null never auto-closes.",
    )

    @field_validator("request_types")
    @classmethod
    def _known_types(cls, value: list[str] | None) -> list[str] | None:
        return domain.check_choices(value, allowed=domain.REQUEST_TYPES)

    @field_validator("priorities")
    @classmethod
    def _distinct_priorities(cls, value: list[str] | None) -> list[str] | None:
        return domain.check_choices(value, allowed=domain.PRIORITIES)

    @field_validator("first_response_target", "resolution_target")
    @classmethod
    def _business_duration(cls, value: str) -> str:
        domain.parse_target(value)
        return value

    @field_validator("auto_close_after")
    @classmethod
    def _wall_duration(cls, value: str | None) -> str | None:
        if value is not None:
            domain.parse_wall_duration(value)
        return value

    @field_validator("warning_thresholds")
    @classmethod
    def _thresholds(cls, value: list[int]) -> list[int]:
        return domain.check_thresholds(value)

    @field_validator("pause_statuses")
    @classmethod
    def _pause_statuses(cls, value: list[str]) -> list[str]:
        return domain.check_pause_statuses(value)


class PolicyCreate(PolicyUpdate):
    """A new policy, with the slug that names it for good."""

    id: Slug = Field(description="Slug, `^[a-z0-9-]{2,40}$` (not `match`).")

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in domain.RESERVED_POLICY_IDS:
            raise ValueError(f"{value!r} is reserved")
        return value


class PolicyRead(BaseModel):
    """A policy as stored (durations normalized to hours, minutes and seconds)."""

    id: str
    name: str
    order: int
    request_types: list[str] | None
    priorities: list[str] | None
    first_response_target: str
    resolution_target: str
    calendar_id: str
    warning_thresholds: list[int]
    pause_statuses: list[str]
    auto_close_after: str | None
    version: int = Field(description="Bumped by every change; the ETag is this number.")
    created_at: datetime
    updated_at: datetime


PolicyPage = Page[PolicyRead]


class ResolveRequest(BaseModel):
    """Which request needs a policy."""

    model_config = ConfigDict(extra="forbid")

    request_type: str = Field(min_length=1, max_length=64)
    priority: Priority


class ResolvedPolicy(BaseModel):
    """The policy a request gets, with its calendar inline so a clock needs no second call."""

    policy_id: str
    policy_name: str
    first_response_target: str = Field(examples=["PT4H"])
    resolution_target: str = Field(examples=["PT40H"])
    warning_thresholds: list[int]
    pause_statuses: list[str]
    auto_close_after: str | None
    calendar_id: str
    calendar: dict[str, Any] = Field(description=CALENDAR_DESCRIPTION)


class PreviewRequest(BaseModel):
    """A deadline (with `target`) or elapsed business time (with `at`) to compute."""

    model_config = ConfigDict(extra="forbid")

    calendar: dict[str, Any] | None = Field(
        default=None, description=CALENDAR_DESCRIPTION, examples=[CALENDAR_EXAMPLE]
    )
    calendar_id: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="A stored calendar, instead of `calendar`."
    )
    start: AwareDatetime = Field(description="When the clock starts (ISO-8601 with an offset).")
    target: str | None = Field(default=None, description=TARGET_DESCRIPTION)
    at: AwareDatetime | None = Field(
        default=None, description="Instead of `target`: count business time from start to here."
    )
    pauses: list[tuple[AwareDatetime, AwareDatetime]] = Field(
        default_factory=list,
        max_length=MAX_PAUSES,
        description="`[[from, to], ...]` half-open instant ranges when the clock stood still.",
    )

    @field_validator("target")
    @classmethod
    def _business_duration(cls, value: str | None) -> str | None:
        if value is not None:
            domain.parse_target(value)
        return value

    @model_validator(mode="after")
    def _one_of_each(self) -> PreviewRequest:
        if (self.calendar is None) == (self.calendar_id is None):
            raise ValueError("give exactly one of calendar and calendar_id")
        if (self.target is None) == (self.at is None):
            raise ValueError("give exactly one of target and at")
        return self


class PreviewRead(BaseModel):
    """The deadline of a target, or the business time elapsed at an instant."""

    deadline: datetime | None = Field(
        description="First instant at which the business time worked, less pauses, reaches the "
        "target; null when `at` was given."
    )
    business_seconds: int = Field(
        description="The target in seconds, or the whole business seconds from start to `at`."
    )
