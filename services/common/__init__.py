"""The small, domain-free kernel every service shares (settings, database, errors, identity, outbox)."""
