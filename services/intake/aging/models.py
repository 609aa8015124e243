"""The index aging reads through; the aging aggregate has no table of its own.

Loaded at the bottom of `services/intake/models.py`, so the index is part of the intake metadata
(alembic's model comparison and `create_all` see it) exactly as migration `intake_0005` makes it.
"""

from __future__ import annotations

from sqlalchemy import Index

from services.intake.models import Request

# Open requests by status, stalest first: the stale list is one range scan per open status.
STATUS_UPDATED_AT_INDEX = Index(
    "ix_request_status_updated_at_id", Request.status, Request.updated_at, Request.id
)
