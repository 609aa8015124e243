"""SQLAlchemy tables of the gateway: its Base and the shared-kernel tables.

The key table lives with its aggregate in `keys/models.py` (on this Base); alembic's env.py
imports both modules so the metadata is complete.
"""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from services.common.db import make_metadata
from services.common.idempotency import IdempotencyKeyMixin
from services.common.outbox import OutboxMixin


class Base(DeclarativeBase):
    """Declarative base of the gateway; its metadata is the gateway's alone."""

    metadata = make_metadata()


class OutboxEvent(OutboxMixin, Base):
    """Signals waiting to reach Temporal (unused by the gateway so far; kept for symmetry)."""


class IdempotencyKey(IdempotencyKeyMixin, Base):
    """Responses stored per (caller, Idempotency-Key) so a retried POST has no second effect."""
