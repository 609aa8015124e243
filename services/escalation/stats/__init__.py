"""Escalation stats: escalations opened and closed, closure time, action items overdue, and the
gap register's counts over a period (`GET /api/v1/stats/escalations`), all SQL aggregates."""
