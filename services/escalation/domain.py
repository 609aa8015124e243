"""Pure rules of an escalation: vocabularies, its state machine, closure rules, follow-up policy.

    open -> mitigating -> rca_in_progress -> actions_open -> pending_closure -> closed
    (forward skips allowed: an executive escalation may go straight to actions_open)
    pending_closure -> actions_open (reopen_actions)

`close` is never a plain transition: it needs the program manager's approval, given through the
`approve_closure` update of EscalationWorkflow (`POST /escalations/{id}/closure-approval`). The
same closure rules (`closure_blockers`, in workflows/escalation_rules.py because the workflow
applies them too) are the update's validator and the service's final check. No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from services.common.business_time import Calendar
from services.common.errors import Forbidden, InvalidTransition, ValidationFailed
from services.common.identity import STAFF_ROLES, Role

# The rules the workflow applies too live on the service <-> workflow boundary; re-exported here.
from workflows.escalation_rules import (
    DEFAULT_CALENDAR_SPEC as DEFAULT_CALENDAR_SPEC,
)
from workflows.escalation_rules import (
    RCA_REQUIRED_SOURCES as RCA_REQUIRED_SOURCES,
)
from workflows.escalation_rules import (
    RESOLVED_ITEM_STATUSES as RESOLVED_ITEM_STATUSES,
)
from workflows.escalation_rules import closure_blockers as closure_blockers


class Source(StrEnum):
    """Where an escalation comes from."""

    SEV2_TICKET = "sev2_ticket"
    EXECUTIVE = "executive"
    COE = "coe"
    PARTNER = "partner"


class Severity(StrEnum):
    """sev1 is the most severe."""

    SEV1 = "sev1"
    SEV2 = "sev2"
    SEV3 = "sev3"
    SEV4 = "sev4"


class EscalationStatus(StrEnum):
    """Where an escalation is in its life; `closed` is terminal."""

    OPEN = "open"
    MITIGATING = "mitigating"
    RCA_IN_PROGRESS = "rca_in_progress"
    ACTIONS_OPEN = "actions_open"
    PENDING_CLOSURE = "pending_closure"
    CLOSED = "closed"


class Action(StrEnum):
    """Transitions of `POST /escalations/{id}/transitions` (`close` goes through approval)."""

    MITIGATE = "mitigate"
    START_RCA = "start_rca"
    OPEN_ACTIONS = "open_actions"
    REQUEST_CLOSURE = "request_closure"
    REOPEN_ACTIONS = "reopen_actions"
    CLOSE = "close"


S = EscalationStatus
TRANSITIONS: Mapping[Action, tuple[frozenset[EscalationStatus], EscalationStatus]] = {
    Action.MITIGATE: (frozenset({S.OPEN}), S.MITIGATING),
    Action.START_RCA: (frozenset({S.OPEN, S.MITIGATING}), S.RCA_IN_PROGRESS),
    Action.OPEN_ACTIONS: (frozenset({S.OPEN, S.MITIGATING, S.RCA_IN_PROGRESS}), S.ACTIONS_OPEN),
    Action.REQUEST_CLOSURE: (
        frozenset({S.OPEN, S.MITIGATING, S.RCA_IN_PROGRESS, S.ACTIONS_OPEN}),
        S.PENDING_CLOSURE,
    ),
    Action.REOPEN_ACTIONS: (frozenset({S.PENDING_CLOSURE}), S.ACTIONS_OPEN),
    Action.CLOSE: (frozenset({S.PENDING_CLOSURE}), S.CLOSED),
}
CLOSURE_APPROVER_ROLES = frozenset({Role.PROGRAM_MANAGER})


def allowed_actions(status: EscalationStatus, role: Role) -> list[Action]:
    """The actions `role` may take from `status` (close only for the program manager)."""
    if role not in STAFF_ROLES:
        return []
    return sorted(
        action
        for action, (sources, _) in TRANSITIONS.items()
        if status in sources and (action is not Action.CLOSE or role in CLOSURE_APPROVER_ROLES)
    )


def plan_transition(
    *, status: EscalationStatus, action: Action, role: Role, via_approval: bool = False
) -> EscalationStatus:
    """The status `action` leads to, or the DomainError refusing it (403, then 409)."""
    if role not in STAFF_ROLES:
        raise Forbidden(f"The role {role.value} may not change an escalation.")
    if action is Action.CLOSE and not via_approval:
        raise InvalidTransition(
            "Closing needs the program manager's approval: "
            "POST /api/v1/escalations/{id}/closure-approval.",
            current=status.value,
            allowed=[a.value for a in allowed_actions(status, role) if a is not Action.CLOSE],
        )
    sources, target = TRANSITIONS[action]
    if status not in sources:
        allowed = allowed_actions(status, role)
        raise InvalidTransition(
            f"An escalation in status {status.value} cannot {action.value}; "
            f"allowed: {', '.join(allowed) or 'none'}.",
            current=status.value,
            allowed=[a.value for a in allowed],
        )
    return target


# --- Follow-up policy: default due dates of action items, in business days by severity.

FOLLOW_UP_BUSINESS_DAYS: Mapping[Severity, int] = {
    Severity.SEV1: 5,
    Severity.SEV2: 10,
    Severity.SEV3: 15,
    Severity.SEV4: 20,
}

_MAX_DAYS_SCANNED = 3_660


def add_business_days(calendar: Calendar, start: datetime, days: int) -> datetime:
    """The end of the `days`-th business day after `start`'s local date (24x7: start + days)."""
    if days < 0:
        raise ValueError("days must not be negative")
    if calendar.always_open:
        return (start + timedelta(days=days)).astimezone(UTC)
    zone = calendar.zone
    day: date = start.astimezone(zone).date()
    counted = 0
    for _ in range(_MAX_DAYS_SCANNED):
        if counted == days:
            break
        day += timedelta(days=1)
        if calendar.is_open_on(day):
            counted += 1
    else:  # pragma: no cover - a calendar with no open day in ten years is refused earlier
        raise ValueError("the calendar has no business days")
    if days == 0:
        return start.astimezone(UTC)
    midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
    _, close_seconds = calendar.hours[day.weekday()][-1]
    # Wall-clock arithmetic in zoneinfo: 18:30 stays 18:30 across DST.
    return (midnight + timedelta(seconds=close_seconds)).astimezone(UTC)


def default_due_at(*, severity: Severity, calendar: Calendar, now: datetime) -> datetime:
    """An action item's default due instant: N business days by severity (Sev-2 -> 10)."""
    return add_business_days(calendar, now, FOLLOW_UP_BUSINESS_DAYS[severity])


def field_error(field: str, message: str, *, code: str) -> ValidationFailed:
    """A 422 naming one body field."""
    return ValidationFailed(
        message, errors=[{"field": f"body.{field}", "message": message, "code": code}]
    )
