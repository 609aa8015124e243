"""The escalation service: escalations (Sev-2, executive, COE, partner), action items, RCAs, gaps.

Layout (one Base / metadata for the whole service, in `models.py`):
- `domain.py`, `schemas.py`, `service.py`, `api.py`: escalations, their lifecycle, RCA versions
  and closure approval; `signals.py` queues each change's fact snapshot for EscalationWorkflow
  (outbox); `access.py` applies team visibility; `writes.py` holds idempotency and cursors.
- `action_items/`: action items (owner, due date from the follow-up policy, status machine with
  program-manager acceptance of `not_doing`).
- `gaps/`: the systemic-gap register and its weekly identified/quantified/closed counts.

Closure: the program manager's approval is the `approve_closure` update of EscalationWorkflow (its
validator enforces the closure rules on the workflow's facts); once accepted, this service closes
the escalation in the same call, re-checking the rules on its own tables.

Calendars: action items carry their owner's calendar spec (default: India business hours, in
`domain.DEFAULT_CALENDAR_SPEC`). The gateway's `/calendars` are meant to become the source later.
"""
