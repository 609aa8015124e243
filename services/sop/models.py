"""SQLAlchemy tables of the sop service (so far the shared outbox and idempotency ones)."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from services.common.db import make_metadata
from services.common.idempotency import IdempotencyKeyMixin
from services.common.outbox import OutboxMixin


class Base(DeclarativeBase):
    """Declarative base of the sop service; its metadata is this service's alone."""

    metadata = make_metadata()


class OutboxEvent(OutboxMixin, Base):
    """Signals waiting to reach Temporal, written in the same transaction as their change."""


class IdempotencyKey(IdempotencyKeyMixin, Base):
    """Responses stored per (caller, Idempotency-Key) so a retried POST has no second effect."""


# Each aggregate's tables register on Base when its module loads, so alembic and the app see them.
from services.sop.mos import models as _mo_models  # noqa: E402, F401
from services.sop.rules import models as _rule_models  # noqa: E402, F401
from services.sop.sops import models as _sop_models  # noqa: E402, F401
