"""The SOP service: SOPs and their versions, approvals, rollouts and parity across orgs; the
detection-rule inventory and rule deprecation; the MO repository.

This first version is a skeleton: the shared kernel wired in (identity, problem+json, health,
outbox, idempotency tables) and no domain routes yet; the SOP and rule issues add them.
"""
