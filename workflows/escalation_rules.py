"""Pure rules of escalations that the escalation service and EscalationWorkflow both apply.

Like `workflows/contracts.py`, this module sits on the service <-> workflow boundary: the service
imports it (its domain re-exports these names) and so does the workflow, which never imports a
service module (DESIGN.md). Plain data and functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# Sources whose closure needs an RCA on file (`sev2_ticket`, `coe`).
RCA_REQUIRED_SOURCES = frozenset({"sev2_ticket", "coe"})
# Action item statuses that no longer block closure.
RESOLVED_ITEM_STATUSES = frozenset({"done", "not_doing"})
# Action item statuses the overdue ladder chases (a proposed not_doing waits on the program manager
# instead, and resolved items are done with).
CHASED_ITEM_STATUSES = frozenset({"open", "in_progress", "blocked"})

# The program office's calendar: the fallback for quiet hours and default due dates when an
# action item's owner has no calendar of their own (no directory entry, no `calendar_id`, or a
# calendar the gateway does not know). India, Monday to Friday, 09:30-18:30 IST, with the national
# public holidays.
DEFAULT_CALENDAR_SPEC: dict[str, Any] = {
    "timezone": "Asia/Kolkata",
    "hours": {day: [["09:30", "18:30"]] for day in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": {"country": "IN", "subdivision": None},
    "closed_dates": [],
}


def closure_blockers(
    *, source: str, rca_present: bool, items: Iterable[tuple[int, str]]
) -> list[str]:
    """Why an escalation cannot close now (empty when it can): open items, a missing RCA.

    `items` are (id, status) pairs. The workflow's update validator applies these rules to its
    facts and the service re-checks them on its tables when it closes.
    """
    reasons: list[str] = []
    open_ids = sorted(item_id for item_id, status in items if status not in RESOLVED_ITEM_STATUSES)
    if open_ids:
        listed = ", ".join(f"#{i}" for i in open_ids)
        reasons.append(f"{len(open_ids)} action item(s) still open: {listed}")
    if source in RCA_REQUIRED_SOURCES and not rca_present:
        reasons.append(f"an RCA is required to close a {source} escalation and none is on file")
    return reasons
