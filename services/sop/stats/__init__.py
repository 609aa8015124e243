"""SOP stats: approval cycle time, rollout parity, reviews and acknowledgements overdue, rule
deprecations over a period (`GET /api/v1/stats/sops`), all SQL aggregates.

Its indexes are declared on the tables themselves (`SopVersion`, `RuleDeprecation`; migration
`sop_0006`): a stats models module importing those tables would be a circular import.
"""
