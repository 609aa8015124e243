"""Pydantic bodies and responses of the MO API. Inputs forbid unknown fields and NUL characters."""

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
    model_validator,
)

from services.common.pagination import Page
from services.sop.mos.domain import MoStatus
from services.sop.rules.schemas import MAX_INT, Name, RuleId, Team

MAX_LINKS = 200


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _normalise(value: object) -> object:
    # Indicators compare case-insensitively: store them trimmed and lower-case.
    return " ".join(value.split()).lower() if isinstance(value, str) else value


Summary = Annotated[str, Field(max_length=20_000), AfterValidator(_no_nul)]
Indicator = Annotated[
    str,
    BeforeValidator(_normalise),
    StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$"),
]
Indicators = Annotated[list[Indicator], Field(max_length=50)]
RefId = Annotated[int, Field(ge=1, le=MAX_INT)]


def _dedup(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IndicatorsInput(_Input):
    """What gives an MO away: signals, behaviours and the entity types involved."""

    signals: Indicators = Field(default_factory=list)
    behaviours: Indicators = Field(default_factory=list)
    entity_types: Indicators = Field(default_factory=list)

    _unique = field_validator("signals", "behaviours", "entity_types")(_dedup)


class Impact(_Input):
    """The estimated harm of an MO; every field is optional."""

    accounts_affected: int | None = Field(default=None, ge=0, le=10**12)
    money_at_risk_per_week: Decimal | None = Field(
        default=None, ge=0, max_digits=18, decimal_places=2
    )
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$", description="ISO-4217")
    notes: Annotated[str, Field(max_length=2000), AfterValidator(_no_nul)] | None = None

    @model_validator(mode="after")
    def _money_needs_currency(self) -> Impact:
        if (self.money_at_risk_per_week is None) != (self.currency is None):
            raise ValueError("money_at_risk_per_week and currency go together")
        return self


def _past(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    value = value.astimezone(UTC)
    if value > datetime.now(UTC):
        raise ValueError("must not be in the future")
    return value


class MoCreate(_Input):
    """A new MO. `rule_ids` are rules that catch it; request and escalation ids point to the
    intake and escalation services (not checked here: they live there)."""

    name: Name
    summary: Summary = ""
    team: Team = Field(description="The team that found and owns the MO.")
    status: MoStatus = MoStatus.SUSPECTED
    indicators: IndicatorsInput = Field(default_factory=IndicatorsInput)
    first_seen_at: AwareDatetime | None = None
    impact: Impact | None = None
    rule_ids: list[RuleId] = Field(default_factory=list, max_length=MAX_LINKS)
    request_ids: list[RefId] = Field(default_factory=list, max_length=MAX_LINKS)
    escalation_ids: list[RefId] = Field(default_factory=list, max_length=MAX_LINKS)

    _first_seen = field_validator("first_seen_at")(_past)

    @field_validator("rule_ids", "request_ids", "escalation_ids")
    @classmethod
    def _sorted_unique(cls, value: list[Any]) -> list[Any]:
        return sorted(set(value))


class MoUpdate(_Input):
    """Fields to change; absent fields stay. Link lists replace the whole set."""

    name: Name | None = None
    summary: Summary | None = None
    team: Team | None = None
    status: MoStatus | None = None
    indicators: IndicatorsInput | None = None
    first_seen_at: AwareDatetime | None = None
    impact: Impact | None = None
    rule_ids: list[RuleId] | None = Field(default=None, max_length=MAX_LINKS)
    request_ids: list[RefId] | None = Field(default=None, max_length=MAX_LINKS)
    escalation_ids: list[RefId] | None = Field(default=None, max_length=MAX_LINKS)

    _first_seen = field_validator("first_seen_at")(_past)

    @field_validator("rule_ids", "request_ids", "escalation_ids")
    @classmethod
    def _sorted_unique(cls, value: list[Any] | None) -> list[Any] | None:
        return None if value is None else sorted(set(value))


class IndicatorsRead(BaseModel):
    """Indicators as stored."""

    signals: list[str]
    behaviours: list[str]
    entity_types: list[str]


class ImpactRead(BaseModel):
    """Impact as stored."""

    accounts_affected: int | None
    money_at_risk_per_week: Decimal | None
    currency: str | None
    notes: str | None


class MoRead(BaseModel):
    """An MO as the API returns it."""

    id: int
    name: str
    summary: str
    team: str
    status: MoStatus
    indicators: IndicatorsRead
    first_seen_at: datetime | None
    impact: ImpactRead | None
    rule_ids: list[str]
    request_ids: list[int]
    escalation_ids: list[int]
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class MoPage(Page[MoRead]):
    """One page of MOs, newest first."""


class SimilarityRead(BaseModel):
    """How alike, from 0 to 100: overall and per field."""

    score: float
    name: float
    summary: float
    indicators: float


class SimilarMo(BaseModel):
    """One match of a similarity search."""

    mo: MoRead
    similarity: SimilarityRead


class SimilarMoList(BaseModel):
    """Matches, best first."""

    items: list[SimilarMo]
