"""The indexes the intake stats read through; stats have no table of their own.

Loaded at the bottom of `services/intake/models.py`, so they are part of the intake metadata
exactly as migration `intake_0008` makes them (with the four clock columns on `request`).
"""

from __future__ import annotations

from sqlalchemy import Index, text

from services.intake.models import Request, RequestEvent

# Volume of a period by team and type: an index-only range scan on created_at.
CREATED_AT_TEAM_TYPE_INDEX = Index(
    "ix_request_created_at_team_type", Request.created_at, Request.team, Request.request_type
)
# Closed in a period; the backlog at an instant = never closed and filed before it (a partial
# index: only the open requests, a small share of a million) + closed after it, filed before.
CLOSED_AT_INDEX = Index("ix_request_closed_at", Request.closed_at)
OPEN_CREATED_AT_INDEX = Index(
    "ix_request_open_created_at",
    Request.created_at,
    postgresql_where=text("closed_at IS NULL"),
    sqlite_where=text("closed_at IS NULL"),
)
# Clocks stopped in a period, with the durations the percentiles order by.
FIRST_RESPONSE_STOPPED_INDEX = Index(
    "ix_request_first_response_stopped_at",
    Request.first_response_stopped_at,
    Request.first_response_business_seconds,
)
RESOLUTION_STOPPED_INDEX = Index(
    "ix_request_resolution_stopped_at",
    Request.resolution_stopped_at,
    Request.resolution_business_seconds,
)
# Resolve and reopen actions of a period (the reopen rate).
EVENT_ACTION_OCCURRED_INDEX = Index(
    "ix_request_event_action_occurred_at", RequestEvent.action, RequestEvent.occurred_at
)
