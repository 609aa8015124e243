"""Triage of requests: type configurations, the priority score matrix, editing with ETags."""
