"""Tables of the escalation service: escalations and their RCA versions (here), action items,
systemic gaps and the person directory (in their subpackages, on the same Base), the outbox and
idempotency keys.

Every list filter has a composite index ending in `id`, so a filtered, newest-first page is one
index range scan (keyset pagination on `id desc`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import UTCDateTime, make_metadata
from services.common.idempotency import IdempotencyKeyMixin
from services.common.outbox import OutboxMixin


class Base(DeclarativeBase):
    """Declarative base of the escalation service; its metadata is this service's alone."""

    metadata = make_metadata()


class Escalation(Base):
    """A Sev-2, executive, COE or partner escalation; `version` grows with every change of it or
    of its action items and RCA (its workflow keeps the newest snapshot)."""

    __tablename__ = "escalation"
    __table_args__ = (
        Index("ix_escalation_team_status_id", "team", "status", "id"),
        Index("ix_escalation_team_id", "team", "id"),
        Index("ix_escalation_status_id", "status", "id"),
        Index("ix_escalation_source_id", "source", "id"),
        Index("ix_escalation_severity_id", "severity", "id"),
        Index("ix_escalation_owner_id", "owner", "id"),
        Index("ix_escalation_created_at_id", "created_at", "id"),
        # Ids are never reused on SQLite either: a workflow id (`escalation-<id>`) derives from it.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(20))
    severity: Mapped[str] = mapped_column(String(8))
    external_ref: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(200))
    program_manager: Mapped[str | None] = mapped_column(String(200))
    customer_impact: Mapped[str] = mapped_column(Text)
    business_impact: Mapped[str] = mapped_column(Text)
    timeline: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))
    rca_version: Mapped[int] = mapped_column(Integer)
    closure_approved_by: Mapped[str | None] = mapped_column(String(200))
    closure_note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RcaVersion(Base):
    """One version of an escalation's RCA / COE document; a PUT adds version n+1."""

    __tablename__ = "rca_version"

    escalation_id: Mapped[int] = mapped_column(
        ForeignKey("escalation.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OutboxEvent(OutboxMixin, Base):
    """Signals waiting to reach Temporal, written in the same transaction as their change."""


class IdempotencyKey(IdempotencyKeyMixin, Base):
    """Responses stored per (caller, Idempotency-Key) so a retried POST has no second effect."""


# The aggregates in subpackages map their tables on this Base; importing them here puts every
# table in `Base.metadata` (alembic and the tests compare against it).
from services.escalation.action_items import models as _action_item_models  # noqa: E402, F401
from services.escalation.gaps import models as _gap_models  # noqa: E402, F401
from services.escalation.people import models as _people_models  # noqa: E402, F401
from services.escalation.stats import models as _stats_models  # noqa: E402, F401
