"""Pure rules of a request: its vocabularies and its state machine, as data. No I/O.

    new -> triaged -> in_progress <-> waiting_on_requester -> resolved -> closed
                                  resolved -> in_progress (reopen)
    new | triaged | in_progress | waiting_on_requester -> closed (reject, mark_duplicate)

Staff may take every action; a partner (own team only) may provide info, reopen and close;
an approver none. `plan_transition` checks role, state and required fields, in that order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from services.common.errors import Forbidden, InvalidTransition, ValidationFailed
from services.common.identity import STAFF_ROLES, Role


class RequestType(StrEnum):
    """What a partner asks the program office for."""

    MO_INVESTIGATION = "mo_investigation"
    DEEP_DIVE = "deep_dive"
    DATA_REQUEST = "data_request"
    RULE_CHANGE = "rule_change"
    SYSTEMIC_GAP_REPORT = "systemic_gap_report"
    OTHER = "other"


class Priority(StrEnum):
    """P0 is the most urgent."""

    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"


class RequestStatus(StrEnum):
    """Where a request is in its life; `closed` is terminal."""

    NEW = "new"
    TRIAGED = "triaged"
    IN_PROGRESS = "in_progress"
    WAITING_ON_REQUESTER = "waiting_on_requester"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Resolution(StrEnum):
    """Why a closed request is closed."""

    DONE = "done"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"


class Action(StrEnum):
    """The transitions a caller may ask for (`POST /requests/{id}/transitions`)."""

    TRIAGE = "triage"
    START = "start"
    REQUEST_INFO = "request_info"
    PROVIDE_INFO = "provide_info"
    RESOLVE = "resolve"
    REOPEN = "reopen"
    CLOSE = "close"
    REJECT = "reject"
    MARK_DUPLICATE = "mark_duplicate"


class EventKind(StrEnum):
    """Kinds of `request_event` rows."""

    CREATED = "created"
    TRANSITIONED = "transitioned"
    # PATCH of editable fields; `assigned` when the assignee or queue changed (assignment history).
    UPDATED = "updated"
    ASSIGNED = "assigned"
    # The first staff public comment: stops the first-response SLA clock (workflows/contracts.py).
    FIRST_RESPONSE = "first_response"


@dataclass(frozen=True, slots=True)
class Transition:
    """One action: the statuses it leaves from, where it goes, and what it needs."""

    action: Action
    sources: frozenset[RequestStatus]
    target: RequestStatus
    resolution: Resolution | None = None
    requires_reason: bool = False
    requires_duplicate_of: bool = False


S = RequestStatus
_OPEN_BEFORE_RESOLVED = frozenset({S.NEW, S.TRIAGED, S.IN_PROGRESS, S.WAITING_ON_REQUESTER})

TRANSITIONS: Mapping[Action, Transition] = {
    t.action: t
    for t in (
        Transition(Action.TRIAGE, frozenset({S.NEW}), S.TRIAGED),
        Transition(Action.START, frozenset({S.TRIAGED}), S.IN_PROGRESS),
        Transition(Action.REQUEST_INFO, frozenset({S.IN_PROGRESS}), S.WAITING_ON_REQUESTER),
        Transition(Action.PROVIDE_INFO, frozenset({S.WAITING_ON_REQUESTER}), S.IN_PROGRESS),
        Transition(Action.RESOLVE, frozenset({S.IN_PROGRESS, S.WAITING_ON_REQUESTER}), S.RESOLVED),
        # A reopen says why (the requester experience of issue 4); the window is the policy's
        # auto-close: once closed, nothing reopens.
        Transition(Action.REOPEN, frozenset({S.RESOLVED}), S.IN_PROGRESS, requires_reason=True),
        Transition(Action.CLOSE, frozenset({S.RESOLVED}), S.CLOSED, resolution=Resolution.DONE),
        Transition(
            Action.REJECT,
            _OPEN_BEFORE_RESOLVED,
            S.CLOSED,
            resolution=Resolution.REJECTED,
            requires_reason=True,
        ),
        Transition(
            Action.MARK_DUPLICATE,
            _OPEN_BEFORE_RESOLVED,
            S.CLOSED,
            resolution=Resolution.DUPLICATE,
            requires_duplicate_of=True,
        ),
    )
}

PARTNER_ACTIONS = frozenset({Action.PROVIDE_INFO, Action.REOPEN, Action.CLOSE})
ALL_ACTIONS = frozenset(Action)


def actions_of_role(role: Role) -> frozenset[Action]:
    """Every action a role may ever take, whatever the state."""
    if role in STAFF_ROLES:
        return ALL_ACTIONS
    if role is Role.PARTNER:
        return PARTNER_ACTIONS
    return frozenset()


def allowed_actions(status: RequestStatus, role: Role) -> list[Action]:
    """The actions this role may take from `status`, sorted by name."""
    permitted = actions_of_role(role)
    return sorted(a for a, t in TRANSITIONS.items() if status in t.sources and a in permitted)


def plan_transition(
    *,
    status: RequestStatus,
    action: Action,
    role: Role,
    reason: str | None = None,
    duplicate_of: int | None = None,
) -> Transition:
    """The transition `action` makes from `status` for `role`, or the DomainError refusing it.

    403 if the role may never take the action, 409 (naming this caller's allowed actions) if the
    state does not allow it, 422 if a required field is missing or a field does not belong.
    """
    if action not in actions_of_role(role):
        raise Forbidden(f"The role {role.value} may not {action.value} a request.")
    transition = TRANSITIONS[action]
    if status not in transition.sources:
        allowed = allowed_actions(status, role)
        raise InvalidTransition(
            f"A request in status {status.value} cannot {action.value}; "
            f"allowed: {', '.join(allowed) or 'none'}.",
            current=status.value,
            allowed=[a.value for a in allowed],
        )
    if transition.requires_reason and not (reason and reason.strip()):
        raise field_error("reason", f"A reason is required to {action.value}.", code="missing")
    if transition.requires_duplicate_of and duplicate_of is None:
        raise field_error(
            "duplicate_of", "duplicate_of is required to mark a duplicate.", code="missing"
        )
    if not transition.requires_duplicate_of and duplicate_of is not None:
        raise field_error(
            "duplicate_of", "duplicate_of is only accepted with mark_duplicate.", code="unexpected"
        )
    return transition


def field_error(field: str, message: str, *, code: str) -> ValidationFailed:
    """A 422 naming one body field."""
    return ValidationFailed(
        message, errors=[{"field": f"body.{field}", "message": message, "code": code}]
    )
