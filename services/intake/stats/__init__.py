"""Intake stats: volume, closures, backlog, response and resolution times, SLA attainment,
reopen rate over a period (`GET /api/v1/stats/intake`), all SQL aggregates."""
