"""Pydantic bodies and responses of the initiatives API.

Inputs forbid unknown fields (a typo is a 422) and refuse NUL characters.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from services.common.pagination import Page
from services.intake.initiatives.domain import (
    PLANNING_RATES_USD,
    InitiativeAction,
    InitiativeStatus,
    SourceKind,
)
from services.intake.schemas import Team, Text, Title

QUARTER_PATTERN = r"^(20[0-9]{2}|2100)-Q[1-4]$"
MIN_YEAR, MAX_YEAR = 2000, 2100
MAX_PERSON_WEEKS = Decimal(5200)

Quarter = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=QUARTER_PATTERN),
    Field(description="`YYYY-Qn`, e.g. 2027-Q2"),
]
LongText = Annotated[
    Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000)
]
Dependency = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ConfidenceLabel = Literal["low", "med", "medium", "high"]
Confidence = Annotated[
    Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] | ConfidenceLabel,
    Field(description="0-1, or low (0.5) / medium (0.8) / high (1.0)"),
]
Effort = Annotated[
    Decimal,
    Field(gt=0, le=MAX_PERSON_WEEKS, decimal_places=1, description="Person-weeks, > 0"),
]
Reach = Annotated[
    int, Field(ge=0, le=10**12, description="Accounts, cases or users touched a year (context)")
]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BenefitInput(_Input):
    """A yearly benefit; absent measures count as zero."""

    accounts_protected_per_year: int = Field(default=0, ge=0, le=10**12)
    money_saved_per_year: Decimal = Field(default=Decimal(0), ge=0, max_digits=18, decimal_places=2)
    currency: str = Field(
        default="USD",
        description=f"ISO-4217; one of the planning currencies: {', '.join(PLANNING_RATES_USD)}",
    )
    analyst_hours_saved_per_year: Decimal = Field(
        default=Decimal(0), ge=0, max_digits=12, decimal_places=1
    )

    @field_validator("currency")
    @classmethod
    def _planning_currency(cls, value: str) -> str:
        if value not in PLANNING_RATES_USD:
            raise ValueError(f"must be one of the planning currencies {sorted(PLANNING_RATES_USD)}")
        return value


class InitiativeCreate(_Input):
    """A new idea. A partner proposes for its own team (`team` may be omitted); staff name it."""

    title: Title
    source_kind: SourceKind | None = Field(
        default=None, description="risk_mining, partner, ml or engineering (partners: partner)"
    )
    problem: LongText
    proposal: LongText
    ai: bool = Field(description="Whether the initiative is an AI / ML one")
    expected_benefit: BenefitInput
    effort_person_weeks: Effort
    confidence: Confidence
    reach: Reach | None = None
    dependencies: list[Dependency] = Field(default_factory=list, max_length=20)
    target_quarter: Quarter | None = None
    team: Team | None = Field(
        default=None, description="Required for staff; a partner may only give its own team."
    )


class InitiativeUpdate(_Input):
    """Fields to change; absent fields stay. `expected_benefit` replaces the whole benefit."""

    title: Title | None = None
    source_kind: SourceKind | None = None
    problem: LongText | None = None
    proposal: LongText | None = None
    ai: bool | None = None
    expected_benefit: BenefitInput | None = None
    effort_person_weeks: Effort | None = None
    confidence: Confidence | None = None
    reach: Reach | None = None
    dependencies: list[Dependency] | None = Field(default=None, max_length=20)
    target_quarter: Quarter | None = None


class InitiativeTransition(_Input):
    """An action; `commit` may set `target_quarter`, `measure` needs `realised`, `drop` a reason."""

    action: InitiativeAction
    reason: Annotated[Text, Field(max_length=2000)] | None = None
    target_quarter: Quarter | None = None
    realised: BenefitInput | None = Field(
        default=None, description="The benefit measured after delivery (with `measure`)"
    )


class BenefitRead(BaseModel):
    """A yearly benefit and what it is worth in planning US dollars."""

    accounts_protected_per_year: int
    money_saved_per_year: Decimal
    currency: str
    analyst_hours_saved_per_year: Decimal
    value_usd: Decimal = Field(description="In planning US dollars a year (see `score`)")


class RealisationRead(BaseModel):
    """Realised over expected (1.0 = as planned); null where nothing was expected."""

    value: float | None
    accounts_protected: float | None
    money_saved: float | None
    analyst_hours_saved: float | None


class InitiativeRead(BaseModel):
    """An initiative as the API returns it."""

    id: int
    team: str
    source_kind: SourceKind
    title: str
    problem: str
    proposal: str
    ai: bool
    expected_benefit: BenefitRead
    effort_person_weeks: Decimal
    confidence: float
    reach: int | None
    dependencies: list[str]
    target_quarter: str | None
    score: float = Field(description="RICE-style: (value_usd / 1000) x confidence / effort")
    status: InitiativeStatus
    drop_reason: str | None
    realised_benefit: BenefitRead | None = Field(description="Recorded on `measure`")
    realisation: RealisationRead | None = Field(description="Realised over expected, once measured")
    proposed_by: str
    version: int = Field(description="Grows by one with every change (the ETag).")
    created_at: datetime
    updated_at: datetime
    committed_at: datetime | None
    delivered_at: datetime | None
    measured_at: datetime | None
    closed_at: datetime | None


class InitiativePage(Page[InitiativeRead]):
    """One page of initiatives, in the order asked for."""


class RoadmapItem(BaseModel):
    """One initiative on the roadmap."""

    id: int
    title: str
    team: str
    source_kind: SourceKind
    ai: bool
    status: InitiativeStatus
    score: float
    effort_person_weeks: Decimal
    expected_value_usd: Decimal
    realised_value_usd: Decimal | None


class RoadmapTotals(BaseModel):
    """Sums over a quarter (or the year)."""

    initiatives: int
    by_status: dict[str, int]
    ai_initiatives: int
    effort_person_weeks: Decimal
    expected_accounts_protected_per_year: int
    expected_money_saved_per_year_by_currency: dict[str, Decimal]
    expected_analyst_hours_saved_per_year: Decimal
    expected_value_usd: Decimal
    realised_value_usd: Decimal = Field(description="Of the measured initiatives")
    expected_value_usd_of_measured: Decimal
    realisation: float | None = Field(description="Realised over expected, measured ones only")


class RoadmapQuarter(BaseModel):
    """One quarter of the roadmap, best score first."""

    quarter: str
    items: list[RoadmapItem]
    totals: RoadmapTotals


class RoadmapRead(BaseModel):
    """Committed, in-progress, delivered and measured initiatives of a year, by quarter."""

    year: int
    quarters: list[RoadmapQuarter]
    totals: RoadmapTotals
