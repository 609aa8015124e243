"""SQLAlchemy tables of the escalation service (so far the shared outbox and idempotency ones)."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from services.common.db import make_metadata
from services.common.idempotency import IdempotencyKeyMixin
from services.common.outbox import OutboxMixin


class Base(DeclarativeBase):
    """Declarative base of the escalation service; its metadata is this service's alone."""

    metadata = make_metadata()


class OutboxEvent(OutboxMixin, Base):
    """Signals waiting to reach Temporal, written in the same transaction as their change."""


class IdempotencyKey(IdempotencyKeyMixin, Base):
    """Responses stored per (caller, Idempotency-Key) so a retried POST has no second effect."""
