"""The pure rules of OP1 initiatives: the score formula, confidence labels, realised over expected,
and the state machine (every status x action, roles, required fields)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.common.errors import Forbidden, InvalidTransition, ValidationFailed
from services.common.identity import Role
from services.intake.initiatives.domain import (
    TRANSITIONS,
    Benefit,
    InitiativeAction,
    InitiativeStatus,
    TransitionFields,
    allowed_actions,
    confidence_value,
    plan_transition,
    quarter_bounds,
    quarters_of,
    realisation,
    rice_score,
    value_usd,
)

S, A = InitiativeStatus, InitiativeAction
# The path of a successful initiative, and what each step needs.
HAPPY = {
    A.SHORTLIST: TransitionFields(),
    A.COMMIT: TransitionFields(target_quarter="2027-Q2"),
    A.START: TransitionFields(),
    A.DELIVER: TransitionFields(),
    A.MEASURE: TransitionFields(has_realised=True),
    A.DROP: TransitionFields(reason="superseded by the vendor tool"),
}
EXPECTED_TARGETS = {
    (S.PROPOSED, A.SHORTLIST): S.SHORTLISTED,
    (S.SHORTLISTED, A.COMMIT): S.COMMITTED,
    (S.COMMITTED, A.START): S.IN_PROGRESS,
    (S.IN_PROGRESS, A.DELIVER): S.DELIVERED,
    (S.DELIVERED, A.MEASURE): S.MEASURED,
    **{(s, A.DROP): S.DROPPED for s in (S.PROPOSED, S.SHORTLISTED, S.COMMITTED, S.IN_PROGRESS)},
}


def test_value_adds_money_at_planning_rates_accounts_and_hours() -> None:
    benefit = Benefit(
        accounts_protected_per_year=200,
        money_saved_per_year=Decimal("10000"),
        currency="EUR",
        analyst_hours_saved_per_year=Decimal("40"),
    )
    # 10,000 EUR x 1.08 + 200 accounts x 50 + 40 h x 75
    assert value_usd(benefit) == Decimal("10800") + Decimal("10000") + Decimal("3000")
    assert value_usd(Benefit()) == Decimal("0.00")


def test_score_is_thousands_of_value_times_confidence_per_person_week() -> None:
    benefit = Benefit(money_saved_per_year=Decimal("120000"))
    assert rice_score(benefit=benefit, confidence=0.8, effort_person_weeks=Decimal("4")) == 24.0
    # Half the effort doubles the score; zero confidence zeroes it.
    assert rice_score(benefit=benefit, confidence=0.8, effort_person_weeks=Decimal("2")) == 48.0
    assert rice_score(benefit=benefit, confidence=0.0, effort_person_weeks=Decimal("2")) == 0.0
    assert rice_score(
        benefit=Benefit(accounts_protected_per_year=1), confidence=1, effort_person_weeks=Decimal(3)
    ) == round(0.05 / 3, 4)
    with pytest.raises(ValueError, match="effort"):
        rice_score(benefit=benefit, confidence=1.0, effort_person_weeks=Decimal(0))


@pytest.mark.parametrize(
    ("given", "value"),
    [("high", 1.0), ("medium", 0.8), ("med", 0.8), ("low", 0.5), ("  LOW ", 0.5), (0.3, 0.3)],
)
def test_confidence_labels_map_to_rice_steps(given: float | str, value: float) -> None:
    assert confidence_value(given) == value


def test_realisation_compares_each_measure_and_the_value() -> None:
    expected = Benefit(
        accounts_protected_per_year=100,
        money_saved_per_year=Decimal("1000"),
        currency="USD",
        analyst_hours_saved_per_year=Decimal("0"),
    )
    realised = Benefit(
        accounts_protected_per_year=150,
        money_saved_per_year=Decimal("1000"),
        currency="EUR",
        analyst_hours_saved_per_year=Decimal("10"),
    )
    ratios = realisation(expected=expected, realised=realised)
    assert ratios["accounts_protected"] == 1.5
    assert ratios["money_saved"] == 1.08  # compared in planning dollars
    assert ratios["analyst_hours_saved"] is None  # nothing was expected: no ratio
    # value: (1080 + 7500 + 750) / (1000 + 5000)
    assert ratios["value"] == round(9330 / 6000, 4)
    assert realisation(expected=Benefit(), realised=realised)["value"] is None


@pytest.mark.parametrize("status", list(S))
@pytest.mark.parametrize("action", list(A))
def test_every_status_and_action_for_staff(
    status: InitiativeStatus, action: InitiativeAction
) -> None:
    target = EXPECTED_TARGETS.get((status, action))
    fields = HAPPY[action]
    if target is None:
        with pytest.raises(InvalidTransition) as refused:
            plan_transition(
                status=status,
                action=action,
                role=Role.PROGRAM_MANAGER,
                fields=fields,
                current_quarter=None,
            )
        assert refused.value.extra["allowed_actions"] == allowed_actions(
            status, Role.PROGRAM_MANAGER
        )
        assert refused.value.extra["current_status"] == status.value
    else:
        assert (
            plan_transition(
                status=status, action=action, role=Role.ANALYST, fields=fields, current_quarter=None
            )
            is target
        )


def test_terminal_states_allow_nothing_and_the_table_matches() -> None:
    assert allowed_actions(S.MEASURED, Role.ADMIN) == []
    assert allowed_actions(S.DROPPED, Role.ADMIN) == []
    assert allowed_actions(S.PROPOSED, Role.ADMIN) == ["drop", "shortlist"]
    assert {(s, a) for a, (sources, _) in TRANSITIONS.items() for s in sources} == set(
        EXPECTED_TARGETS
    )


@pytest.mark.parametrize("role", [Role.PARTNER, Role.APPROVER])
def test_partners_and_approvers_move_nothing(role: Role) -> None:
    assert allowed_actions(S.PROPOSED, role) == []
    with pytest.raises(Forbidden):
        plan_transition(
            status=S.PROPOSED,
            action=A.SHORTLIST,
            role=role,
            fields=TransitionFields(),
            current_quarter=None,
        )


def _field_of(error: ValidationFailed) -> str:
    return str(error.extra["errors"][0]["field"])


def test_commit_needs_a_quarter_measure_a_realised_benefit_and_drop_a_reason() -> None:
    def plan(
        status: InitiativeStatus,
        action: InitiativeAction,
        fields: TransitionFields,
        quarter: str | None = None,
    ) -> InitiativeStatus:
        return plan_transition(
            status=status, action=action, role=Role.ANALYST, fields=fields, current_quarter=quarter
        )

    with pytest.raises(ValidationFailed) as no_quarter:
        plan(S.SHORTLISTED, A.COMMIT, TransitionFields())
    assert _field_of(no_quarter.value) == "body.target_quarter"
    # A quarter already set by PATCH is enough.
    assert plan(S.SHORTLISTED, A.COMMIT, TransitionFields(), "2027-Q1") is S.COMMITTED
    with pytest.raises(ValidationFailed) as no_realised:
        plan(S.DELIVERED, A.MEASURE, TransitionFields())
    assert _field_of(no_realised.value) == "body.realised"
    with pytest.raises(ValidationFailed) as blank_reason:
        plan(S.COMMITTED, A.DROP, TransitionFields(reason="   "))
    assert _field_of(blank_reason.value) == "body.reason"
    # Fields that do not belong to the action are refused, not ignored.
    with pytest.raises(ValidationFailed) as stray_quarter:
        plan(S.PROPOSED, A.SHORTLIST, TransitionFields(target_quarter="2027-Q1"))
    assert _field_of(stray_quarter.value) == "body.target_quarter"
    with pytest.raises(ValidationFailed) as stray_realised:
        plan(S.IN_PROGRESS, A.DELIVER, TransitionFields(has_realised=True))
    assert _field_of(stray_realised.value) == "body.realised"


def test_quarters_sort_as_text_within_a_year() -> None:
    assert quarter_bounds(2027) == ("2027-Q1", "2027-Q4")
    assert quarters_of(2027) == ["2027-Q1", "2027-Q2", "2027-Q3", "2027-Q4"]
    assert sorted(quarters_of(2028) + quarters_of(2027)) == quarters_of(2027) + quarters_of(2028)
