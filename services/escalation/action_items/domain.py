"""Pure rules of an action item: statuses and transitions, as data. No I/O.

    open -> in_progress; open | in_progress -> blocked (reason) -> in_progress (unblock)
    open | in_progress | blocked -> done (evidence)
    open | in_progress | blocked -> not_doing_proposed (justification)
        -> not_doing (accept_not_doing, program manager) | open (reject_not_doing, program manager)
    done | not_doing -> open (reopen)

`not_doing` only exists once the program manager has accepted the justification: until then the
item is open for closure purposes and still on the owner.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from services.common.errors import Forbidden, InvalidTransition
from services.common.identity import STAFF_ROLES, Role
from services.escalation.domain import field_error
from workflows.escalation_rules import CHASED_ITEM_STATUSES, RESOLVED_ITEM_STATUSES


class ItemStatus(StrEnum):
    """Where an action item is."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    BLOCKED = "blocked"
    NOT_DOING_PROPOSED = "not_doing_proposed"
    DONE = "done"
    NOT_DOING = "not_doing"


class ItemAction(StrEnum):
    """Transitions of `POST /action-items/{id}/transitions`."""

    START = "start"
    BLOCK = "block"
    UNBLOCK = "unblock"
    COMPLETE = "complete"
    PROPOSE_NOT_DOING = "propose_not_doing"
    ACCEPT_NOT_DOING = "accept_not_doing"
    REJECT_NOT_DOING = "reject_not_doing"
    REOPEN = "reopen"


class ItemPriority(StrEnum):
    """P0 is the most urgent."""

    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"


@dataclass(frozen=True, slots=True)
class ItemTransition:
    """One action: where it leaves from, where it goes, what it needs, who may take it."""

    action: ItemAction
    sources: frozenset[ItemStatus]
    target: ItemStatus
    requires: str | None = None
    roles: frozenset[Role] = STAFF_ROLES


IS = ItemStatus
_WORKING = frozenset({IS.OPEN, IS.IN_PROGRESS, IS.BLOCKED})
NOT_DOING_DECIDERS = frozenset({Role.PROGRAM_MANAGER})
# Statuses the overdue ladder chases and those that no longer block closure: the workflow applies
# the same sets (workflows/escalation_rules.py, the single source).
CHASED_STATUSES = frozenset(IS(s) for s in CHASED_ITEM_STATUSES)
RESOLVED_STATUSES = frozenset(IS(s) for s in RESOLVED_ITEM_STATUSES)

ITEM_TRANSITIONS: Mapping[ItemAction, ItemTransition] = {
    t.action: t
    for t in (
        ItemTransition(ItemAction.START, frozenset({IS.OPEN}), IS.IN_PROGRESS),
        ItemTransition(
            ItemAction.BLOCK, frozenset({IS.OPEN, IS.IN_PROGRESS}), IS.BLOCKED, requires="reason"
        ),
        ItemTransition(ItemAction.UNBLOCK, frozenset({IS.BLOCKED}), IS.IN_PROGRESS),
        ItemTransition(ItemAction.COMPLETE, _WORKING, IS.DONE, requires="evidence"),
        ItemTransition(
            ItemAction.PROPOSE_NOT_DOING, _WORKING, IS.NOT_DOING_PROPOSED, requires="justification"
        ),
        ItemTransition(
            ItemAction.ACCEPT_NOT_DOING,
            frozenset({IS.NOT_DOING_PROPOSED}),
            IS.NOT_DOING,
            roles=NOT_DOING_DECIDERS,
        ),
        ItemTransition(
            ItemAction.REJECT_NOT_DOING,
            frozenset({IS.NOT_DOING_PROPOSED}),
            IS.OPEN,
            requires="reason",
            roles=NOT_DOING_DECIDERS,
        ),
        ItemTransition(ItemAction.REOPEN, frozenset({IS.DONE, IS.NOT_DOING}), IS.OPEN),
    )
}


def allowed_item_actions(status: ItemStatus, role: Role) -> list[ItemAction]:
    """The actions `role` may take on an item in `status`, sorted by name."""
    return sorted(a for a, t in ITEM_TRANSITIONS.items() if status in t.sources and role in t.roles)


def plan_item_transition(
    *, status: ItemStatus, action: ItemAction, role: Role, given: Mapping[str, str | None]
) -> ItemTransition:
    """The transition, or the DomainError refusing it: 403 (role), 409 (state), 422 (field)."""
    transition = ITEM_TRANSITIONS[action]
    if role not in transition.roles:
        who = "the program manager" if transition.roles == NOT_DOING_DECIDERS else "staff"
        raise Forbidden(f"Only {who} may {action.value} an action item.")
    if status not in transition.sources:
        allowed = allowed_item_actions(status, role)
        raise InvalidTransition(
            f"An action item in status {status.value} cannot {action.value}; "
            f"allowed: {', '.join(allowed) or 'none'}.",
            current=status.value,
            allowed=[a.value for a in allowed],
        )
    if transition.requires is not None:
        value = given.get(transition.requires)
        if not (value and value.strip()):
            raise field_error(
                transition.requires,
                f"{transition.requires} is required to {action.value}.",
                code="missing",
            )
    return transition
