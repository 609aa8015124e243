"""The escalation service: escalations (Sev-2, executive, COE), action items, RCAs, systemic gaps.

This first version is a skeleton: the shared kernel wired in (identity, problem+json, health,
outbox, idempotency tables) and no domain routes yet; the escalation issues add them.
"""
