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

- `people/`: the person directory (`/api/v1/people`): each owner's manager (the ladder's second
  level) and calendar (a gateway calendar id); `people/resolution.py` holds the rules.

Calendars: an action item's own `calendar` wins; else its owner's directory calendar, read from the
gateway's `GET /internal/calendars/{id}` (default due dates here, quiet hours in the workflow);
else the program office default (India business hours, `workflows/escalation_rules.py`).
"""
