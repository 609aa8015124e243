"""Aging alerts (`GET /api/v1/alerts/aging`): buckets and stale requests, computed by intake."""
