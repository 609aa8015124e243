"""Pure rules of OP1 initiatives: vocabularies, the state machine, the score and the realised
return. No I/O.

    proposed -> shortlisted -> committed -> in_progress -> delivered -> measured
    proposed | shortlisted | committed | in_progress -> dropped

A partner (own team) or staff proposes; only staff (analyst, program_manager, admin) move an
initiative. `plan_transition` checks role, state and required fields, in that order.

**The score** is RICE-style: Reach x Impact x Confidence / Effort, where Reach x Impact is the
expected yearly value the initiative's benefit fields add up to, in planning US dollars:

    value_usd  = money_saved_per_year x PLANNING_RATES_USD[currency]
               + accounts_protected_per_year x ACCOUNT_VALUE_USD   (50: loss prevented per account)
               + analyst_hours_saved_per_year x ANALYST_HOUR_USD   (75: loaded cost of an hour)
    score      = (value_usd / 1000) x confidence / effort_person_weeks

so a score is "thousands of planning dollars a year per person-week, discounted by confidence".
The benefit fields are already totals over everything the initiative reaches, so `reach` (accounts,
cases or users touched a year) is not multiplied in a second time: it is kept for context.
`confidence` is 0-1, or a label: high = 1.0, medium = 0.8, low = 0.5 (RICE's usual steps).
The planning rates are fixed for the planning year on purpose: a score must not move with the
market between two reviews of the same plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from services.common.errors import Forbidden, InvalidTransition, ValidationFailed
from services.common.identity import Role

ACCOUNT_VALUE_USD = Decimal(50)
ANALYST_HOUR_USD = Decimal(75)
# OP1 planning rates (USD per unit of the currency), fixed for the planning year.
PLANNING_RATES_USD: Mapping[str, Decimal] = {
    "USD": Decimal("1"),
    "EUR": Decimal("1.08"),
    "GBP": Decimal("1.27"),
    "CAD": Decimal("0.73"),
    "AUD": Decimal("0.66"),
    "JPY": Decimal("0.0067"),
    "INR": Decimal("0.012"),
    "CRC": Decimal("0.0019"),
    "MXN": Decimal("0.058"),
    "BRL": Decimal("0.20"),
}
CONFIDENCE_LABELS: Mapping[str, float] = {"high": 1.0, "medium": 0.8, "med": 0.8, "low": 0.5}
SCORE_FORMULA = (
    "score = (value_usd / 1000) x confidence / effort_person_weeks, where value_usd = "
    "money_saved_per_year x planning rate of its currency + accounts_protected_per_year x 50 + "
    "analyst_hours_saved_per_year x 75 (RICE: Reach x Impact is the expected yearly value)"
)


class SourceKind(StrEnum):
    """Which kind of team an idea comes from."""

    RISK_MINING = "risk_mining"
    PARTNER = "partner"
    ML = "ml"
    ENGINEERING = "engineering"


class InitiativeStatus(StrEnum):
    """Where an initiative is in its life; `measured` and `dropped` are terminal."""

    PROPOSED = "proposed"
    SHORTLISTED = "shortlisted"
    COMMITTED = "committed"
    IN_PROGRESS = "in_progress"
    DELIVERED = "delivered"
    MEASURED = "measured"
    DROPPED = "dropped"


class InitiativeAction(StrEnum):
    """The transitions a caller may ask for (`POST /initiatives/{id}/transitions`)."""

    SHORTLIST = "shortlist"
    COMMIT = "commit"
    START = "start"
    DELIVER = "deliver"
    MEASURE = "measure"
    DROP = "drop"


S = InitiativeStatus
A = InitiativeAction
TRANSITIONS: Mapping[InitiativeAction, tuple[frozenset[InitiativeStatus], InitiativeStatus]] = {
    A.SHORTLIST: (frozenset({S.PROPOSED}), S.SHORTLISTED),
    A.COMMIT: (frozenset({S.SHORTLISTED}), S.COMMITTED),
    A.START: (frozenset({S.COMMITTED}), S.IN_PROGRESS),
    A.DELIVER: (frozenset({S.IN_PROGRESS}), S.DELIVERED),
    A.MEASURE: (frozenset({S.DELIVERED}), S.MEASURED),
    A.DROP: (frozenset({S.PROPOSED, S.SHORTLISTED, S.COMMITTED, S.IN_PROGRESS}), S.DROPPED),
}
# The roadmap shows planned and done work; `measured` is delivered work whose return is known.
ROADMAP_STATUSES = (S.COMMITTED, S.IN_PROGRESS, S.DELIVERED, S.MEASURED)
# Staff may edit until delivery; a partner only its own idea, and only while it is proposed.
STAFF_EDITABLE = frozenset({S.PROPOSED, S.SHORTLISTED, S.COMMITTED, S.IN_PROGRESS})
PARTNER_EDITABLE = frozenset({S.PROPOSED})
MOVER_ROLES = frozenset({Role.ANALYST, Role.PROGRAM_MANAGER, Role.ADMIN, Role.SYSTEM})
PROPOSER_ROLES = MOVER_ROLES | {Role.PARTNER}


def allowed_actions(status: InitiativeStatus, role: Role) -> list[str]:
    """The actions `role` may take from `status`, sorted by name."""
    if role not in MOVER_ROLES:
        return []
    return sorted(a.value for a, (sources, _) in TRANSITIONS.items() if status in sources)


@dataclass(frozen=True, slots=True)
class TransitionFields:
    """What a transition body carries besides the action."""

    reason: str | None = None
    target_quarter: str | None = None
    has_realised: bool = False


def plan_transition(
    *,
    status: InitiativeStatus,
    action: InitiativeAction,
    role: Role,
    fields: TransitionFields,
    current_quarter: str | None,
) -> InitiativeStatus:
    """The status `action` leads to, or the DomainError refusing it.

    403 if the role may never move initiatives; 409 (with this caller's allowed actions) if the
    state does not allow it; 422 if `commit` has no target quarter (in the body or already set),
    `measure` no `realised` benefit, `drop` no reason, or a field does not belong to the action.
    """
    if role not in MOVER_ROLES:
        raise Forbidden(
            f"The role {role.value} may not move initiatives "
            "(analyst, program_manager or admin may)."
        )
    sources, target = TRANSITIONS[action]
    if status not in sources:
        allowed = allowed_actions(status, role)
        raise InvalidTransition(
            f"An initiative in status {status.value} cannot {action.value}; "
            f"allowed: {', '.join(allowed) or 'none'}.",
            current=status.value,
            allowed=allowed,
        )
    if action is A.COMMIT and fields.target_quarter is None and current_quarter is None:
        raise field_error("target_quarter", "Commit to a target quarter.", code="missing")
    if action is not A.COMMIT and fields.target_quarter is not None:
        raise field_error(
            "target_quarter", "target_quarter is set on commit (or by PATCH).", code="unexpected"
        )
    if action is A.MEASURE and not fields.has_realised:
        raise field_error("realised", "Measuring records the realised benefit.", code="missing")
    if action is not A.MEASURE and fields.has_realised:
        raise field_error("realised", "realised is only accepted with measure.", code="unexpected")
    if action is A.DROP and not (fields.reason and fields.reason.strip()):
        raise field_error("reason", "A reason is required to drop an initiative.", code="missing")
    return target


def field_error(field: str, message: str, *, code: str) -> ValidationFailed:
    """A 422 naming one body field."""
    return ValidationFailed(
        message, errors=[{"field": f"body.{field}", "message": message, "code": code}]
    )


def confidence_value(confidence: float | str) -> float:
    """A confidence as a number in 0-1 (labels map to RICE's steps)."""
    if isinstance(confidence, str):
        return CONFIDENCE_LABELS[confidence.strip().lower()]
    return float(confidence)


@dataclass(frozen=True, slots=True)
class Benefit:
    """A yearly benefit: accounts protected, money saved (in `currency`), analyst hours saved."""

    accounts_protected_per_year: int = 0
    money_saved_per_year: Decimal = Decimal(0)
    currency: str = "USD"
    analyst_hours_saved_per_year: Decimal = Decimal(0)


def value_usd(benefit: Benefit) -> Decimal:
    """The benefit in planning US dollars a year (the module docstring's formula), to the cent."""
    money = benefit.money_saved_per_year * PLANNING_RATES_USD[benefit.currency]
    accounts = benefit.accounts_protected_per_year * ACCOUNT_VALUE_USD
    hours = benefit.analyst_hours_saved_per_year * ANALYST_HOUR_USD
    return (money + accounts + hours).quantize(Decimal("0.01"))


def rice_score(*, benefit: Benefit, confidence: float, effort_person_weeks: Decimal) -> float:
    """The initiative's score (module docstring), rounded to 4 decimals; effort must be > 0."""
    if effort_person_weeks <= 0:
        raise ValueError("effort must be positive")
    value_k = float(value_usd(benefit)) / 1000
    return round(value_k * confidence / float(effort_person_weeks), 4)


def _ratio(realised: Decimal | int, expected: Decimal | int) -> float | None:
    return round(float(realised) / float(expected), 4) if expected else None


def realisation(*, expected: Benefit, realised: Benefit) -> dict[str, float | None]:
    """Realised over expected, per measure and for the total value (None where nothing was
    expected: a ratio against zero says nothing)."""
    return {
        "value": _ratio(value_usd(realised), value_usd(expected)),
        "accounts_protected": _ratio(
            realised.accounts_protected_per_year, expected.accounts_protected_per_year
        ),
        "money_saved": _ratio(
            realised.money_saved_per_year * PLANNING_RATES_USD[realised.currency],
            expected.money_saved_per_year * PLANNING_RATES_USD[expected.currency],
        ),
        "analyst_hours_saved": _ratio(
            realised.analyst_hours_saved_per_year, expected.analyst_hours_saved_per_year
        ),
    }


def quarter_bounds(year: int) -> tuple[str, str]:
    """The first and last quarter names of a year (`2027-Q1`, `2027-Q4`); they sort as text."""
    return f"{year:04d}-Q1", f"{year:04d}-Q4"


def quarters_of(year: int) -> list[str]:
    """The four quarter names of a year."""
    return [f"{year:04d}-Q{q}" for q in range(1, 5)]
