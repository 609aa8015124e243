"""Pydantic bodies and responses of the systemic-gap register."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from services.common.pagination import Page
from services.escalation.gaps.domain import GapAction, GapStatus, LinkKind
from services.escalation.schemas import (
    PRINTABLE_PATTERN,
    Input,
    Line,
    LongText,
    Subject,
    Team,
    Title,
)

LinkRef = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=100, pattern=PRINTABLE_PATTERN
    ),
]


class GapImpact(Input):
    """The harm a gap lets through, per week, and how it was estimated."""

    accounts_per_week: int = Field(ge=0, le=10**12)
    money_per_week: Decimal = Field(ge=0, max_digits=18, decimal_places=2)
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO-4217 code, e.g. USD")
    method: Annotated[LongText, StringConstraints(min_length=1)] = Field(
        description="How the numbers were obtained (query, sample, model)"
    )


class GapLinkIn(Input):
    """A link to an escalation, a request or a detection rule (by id)."""

    kind: LinkKind
    ref: LinkRef


class GapCreate(Input):
    """A newly identified gap; quantify it now (`impact`) or later (PATCH)."""

    title: Title
    description: LongText = ""
    owning_team: Team
    impact: GapImpact | None = None
    charter_owner: Subject | None = None
    target_date: date | None = None
    links: list[GapLinkIn] = Field(default_factory=list, max_length=100)


class GapUpdate(Input):
    """Editable fields; only the fields present change. `links` replaces the whole set."""

    title: Title | None = None
    description: LongText | None = None
    owning_team: Team | None = None
    impact: GapImpact | None = None
    charter_owner: Subject | None = None
    target_date: date | None = None
    links: list[GapLinkIn] | None = Field(default=None, max_length=100)

    @model_validator(mode="after")
    def _required_fields_not_cleared(self) -> Self:
        for name in ("title", "description", "owning_team", "links"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be cleared")
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        return self


class GapTransitionCreate(Input):
    """An action on a gap; `close` and `wont_fix` need a `reason` (the resolution note)."""

    action: GapAction
    reason: Line | None = None


class GapLinkRead(BaseModel):
    """A link as stored."""

    kind: LinkKind
    ref: str


class GapImpactRead(BaseModel):
    """Impact as stored."""

    accounts_per_week: int
    money_per_week: Decimal
    currency: str
    method: str


class GapRead(BaseModel):
    """A gap as the API returns it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    description: str
    owning_team: str
    status: GapStatus
    impact: GapImpactRead | None
    charter_owner: str | None
    target_date: date | None
    resolution_note: str | None
    links: list[GapLinkRead]
    identified_at: datetime
    quantified_at: datetime | None
    closed_at: datetime | None
    created_by: str
    version: int
    created_at: datetime
    updated_at: datetime


class GapPage(Page[GapRead]):
    """One page of gaps, newest first."""


class GapWeek(BaseModel):
    """Counts of one ISO week (UTC): gaps identified, first quantified, and closed in it."""

    week: str = Field(description='ISO week, e.g. "2026-W48"')
    identified: int
    quantified: int
    closed: int


class GapStats(BaseModel):
    """The program's success metric, week by week, and the totals over the range."""

    since: date
    until: date
    weeks: list[GapWeek]
    identified: int
    quantified: int
    closed: int
