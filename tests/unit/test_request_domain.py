"""The request state machine: every (status, action, role) against a hand-written table."""

from __future__ import annotations

import itertools

import pytest

from services.common.errors import Forbidden, InvalidTransition, ValidationFailed
from services.common.identity import Role
from services.intake.domain import (
    Action,
    RequestStatus,
    Resolution,
    Transition,
    allowed_actions,
    plan_transition,
)

S = RequestStatus
A = Action

# Written out independently of domain.TRANSITIONS, so a change there must be a change here too.
EXPECTED: dict[tuple[RequestStatus, Action], tuple[RequestStatus, Resolution | None]] = {
    (S.NEW, A.TRIAGE): (S.TRIAGED, None),
    (S.TRIAGED, A.START): (S.IN_PROGRESS, None),
    (S.IN_PROGRESS, A.REQUEST_INFO): (S.WAITING_ON_REQUESTER, None),
    (S.WAITING_ON_REQUESTER, A.PROVIDE_INFO): (S.IN_PROGRESS, None),
    (S.IN_PROGRESS, A.RESOLVE): (S.RESOLVED, None),
    (S.WAITING_ON_REQUESTER, A.RESOLVE): (S.RESOLVED, None),
    (S.RESOLVED, A.REOPEN): (S.IN_PROGRESS, None),
    (S.RESOLVED, A.CLOSE): (S.CLOSED, Resolution.DONE),
    **{
        (status, A.REJECT): (S.CLOSED, Resolution.REJECTED)
        for status in (S.NEW, S.TRIAGED, S.IN_PROGRESS, S.WAITING_ON_REQUESTER)
    },
    **{
        (status, A.MARK_DUPLICATE): (S.CLOSED, Resolution.DUPLICATE)
        for status in (S.NEW, S.TRIAGED, S.IN_PROGRESS, S.WAITING_ON_REQUESTER)
    },
}
STAFF = (Role.ANALYST, Role.PROGRAM_MANAGER, Role.ADMIN, Role.SYSTEM)
PARTNER_MAY = {A.PROVIDE_INFO, A.REOPEN, A.CLOSE}


def role_may(role: Role, action: Action) -> bool:
    if role in STAFF:
        return True
    return role is Role.PARTNER and action in PARTNER_MAY


def expected_allowed(status: RequestStatus, role: Role) -> list[str]:
    return sorted(a.value for (s, a) in EXPECTED if s is status and role_may(role, a))


def plan(status: RequestStatus, action: Action, role: Role) -> object:
    """plan_transition with the fields an action requires filled in."""
    return plan_transition(
        status=status,
        action=action,
        role=role,
        reason="not fraud" if action in (A.REJECT, A.REOPEN) else None,
        duplicate_of=7 if action is A.MARK_DUPLICATE else None,
    )


@pytest.mark.parametrize(
    ("status", "action", "role"), list(itertools.product(RequestStatus, Action, Role))
)
def test_every_combination(status: RequestStatus, action: Action, role: Role) -> None:
    if not role_may(role, action):
        with pytest.raises(Forbidden):
            plan(status, action, role)
        return
    if (status, action) not in EXPECTED:
        with pytest.raises(InvalidTransition) as caught:
            plan(status, action, role)
        problem = caught.value.to_problem()
        assert problem["status"] == 409
        assert problem["current_status"] == status.value
        assert problem["allowed_actions"] == expected_allowed(status, role)
        return
    transition = plan(status, action, role)
    assert isinstance(transition, Transition)
    assert (transition.target, transition.resolution) == EXPECTED[(status, action)]


@pytest.mark.parametrize(("status", "role"), list(itertools.product(RequestStatus, Role)))
def test_allowed_actions_for_caller(status: RequestStatus, role: Role) -> None:
    assert [a.value for a in allowed_actions(status, role)] == expected_allowed(status, role)


def test_closed_is_terminal_for_everyone() -> None:
    for role in Role:
        assert allowed_actions(S.CLOSED, role) == []


def test_partner_409_names_only_partner_actions() -> None:
    with pytest.raises(InvalidTransition) as caught:
        plan_transition(status=S.RESOLVED, action=A.PROVIDE_INFO, role=Role.PARTNER)
    assert caught.value.to_problem()["allowed_actions"] == ["close", "reopen"]


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_reject_needs_a_reason(reason: str | None) -> None:
    with pytest.raises(ValidationFailed) as caught:
        plan_transition(status=S.NEW, action=A.REJECT, role=Role.ANALYST, reason=reason)
    assert caught.value.to_problem()["errors"][0]["field"] == "body.reason"


def test_mark_duplicate_needs_duplicate_of() -> None:
    with pytest.raises(ValidationFailed) as caught:
        plan_transition(status=S.TRIAGED, action=A.MARK_DUPLICATE, role=Role.ADMIN)
    assert caught.value.to_problem()["errors"][0]["field"] == "body.duplicate_of"


def test_duplicate_of_only_with_mark_duplicate() -> None:
    with pytest.raises(ValidationFailed) as caught:
        plan_transition(status=S.NEW, action=A.TRIAGE, role=Role.ADMIN, duplicate_of=3)
    assert caught.value.to_problem()["errors"][0]["code"] == "unexpected"


def test_role_is_checked_before_state_and_fields() -> None:
    # An approver learns nothing about the state: 403 whatever the request's status.
    with pytest.raises(Forbidden):
        plan_transition(status=S.CLOSED, action=A.REJECT, role=Role.APPROVER)
    # A state that forbids the action wins over a missing field.
    with pytest.raises(InvalidTransition):
        plan_transition(status=S.CLOSED, action=A.REJECT, role=Role.ANALYST)
