"""Pure rules of a systemic gap: statuses, transitions and ISO weeks. No I/O.

identified -> accepted -> in_progress -> closed
identified | accepted | in_progress -> wont_fix (reason)
closed | wont_fix -> identified (reopen)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from services.common.errors import Forbidden, InvalidTransition
from services.common.identity import STAFF_ROLES, Role
from services.escalation.domain import field_error


class GapStatus(StrEnum):
    """Where a gap is."""

    IDENTIFIED = "identified"
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    CLOSED = "closed"
    WONT_FIX = "wont_fix"


class GapAction(StrEnum):
    """Transitions of `POST /gaps/{id}/transitions`."""

    ACCEPT = "accept"
    START = "start"
    CLOSE = "close"
    WONT_FIX = "wont_fix"
    REOPEN = "reopen"


class LinkKind(StrEnum):
    """What a gap may link to."""

    ESCALATION = "escalation"
    REQUEST = "request"
    RULE = "rule"


G = GapStatus
_OPEN = frozenset({G.IDENTIFIED, G.ACCEPTED, G.IN_PROGRESS})
GAP_TRANSITIONS: Mapping[GapAction, tuple[frozenset[GapStatus], GapStatus]] = {
    GapAction.ACCEPT: (frozenset({G.IDENTIFIED}), G.ACCEPTED),
    GapAction.START: (frozenset({G.ACCEPTED}), G.IN_PROGRESS),
    GapAction.CLOSE: (frozenset({G.IN_PROGRESS}), G.CLOSED),
    GapAction.WONT_FIX: (_OPEN, G.WONT_FIX),
    GapAction.REOPEN: (frozenset({G.CLOSED, G.WONT_FIX}), G.IDENTIFIED),
}
REASON_REQUIRED = frozenset({GapAction.WONT_FIX, GapAction.CLOSE})


def allowed_gap_actions(status: GapStatus, role: Role) -> list[GapAction]:
    """The actions `role` may take on a gap in `status`."""
    if role not in STAFF_ROLES:
        return []
    return sorted(a for a, (sources, _) in GAP_TRANSITIONS.items() if status in sources)


def plan_gap_transition(
    *, status: GapStatus, action: GapAction, role: Role, reason: str | None
) -> GapStatus:
    """The status `action` leads to, or the DomainError refusing it (403, 409, 422)."""
    if role not in STAFF_ROLES:
        raise Forbidden(f"The role {role.value} may not change a gap.")
    sources, target = GAP_TRANSITIONS[action]
    if status not in sources:
        allowed = allowed_gap_actions(status, role)
        raise InvalidTransition(
            f"A gap in status {status.value} cannot {action.value}; "
            f"allowed: {', '.join(allowed) or 'none'}.",
            current=status.value,
            allowed=[a.value for a in allowed],
        )
    if action in REASON_REQUIRED and not (reason and reason.strip()):
        raise field_error("reason", f"A reason is required to {action.value}.", code="missing")
    return target


def iso_week(instant: datetime) -> str:
    """The ISO week of an instant, in UTC, like "2026-W48"."""
    year, week, _ = instant.astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


def weeks_between(first: date, last: date) -> list[str]:
    """Every ISO week from the one holding `first` to the one holding `last`, in order."""
    weeks: list[str] = []
    monday = first - timedelta(days=first.weekday())
    while monday <= last:
        year, week, _ = monday.isocalendar()
        weeks.append(f"{year}-W{week:02d}")
        monday += timedelta(days=7)
    return weeks
