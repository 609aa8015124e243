"""Pure rules of auto-assignment: open work weighted by priority, the least-loaded member. No I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from services.intake.domain import Priority

# One open P0 weighs as much as eight open P3s.
PRIORITY_WEIGHTS: Mapping[Priority, int] = {
    Priority.P0: 8,
    Priority.P1: 4,
    Priority.P2: 2,
    Priority.P3: 1,
}


def load_of(priorities: Iterable[Priority]) -> int:
    """The weighted load of a member's open requests."""
    return sum(PRIORITY_WEIGHTS[p] for p in priorities)


def least_loaded(members: Sequence[str], loads: Mapping[str, int]) -> str | None:
    """The member with the smallest load (a member with no open work has 0); ties go to the
    name that sorts first, so the choice is predictable. None for an empty queue."""
    if not members:
        return None
    return min(sorted(members), key=lambda member: loads.get(member, 0))
