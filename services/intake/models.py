"""Tables of the intake service: requests, their tags and events, the outbox, idempotency keys.

Every list filter has a composite index ending in `id`, so a filtered, newest-first page is one
index range scan (keyset pagination on `id desc`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from services.common.db import UTCDateTime, make_metadata
from services.common.idempotency import IdempotencyKeyMixin
from services.common.outbox import OutboxMixin


class Base(DeclarativeBase):
    """Declarative base of the intake service's own schema."""

    metadata = make_metadata()


class Request(Base):
    """A partner request; `version` grows by one with every change (optimistic concurrency)."""

    __tablename__ = "request"
    __table_args__ = (
        Index("ix_request_team_status_id", "team", "status", "id"),
        Index("ix_request_team_id", "team", "id"),
        Index("ix_request_status_id", "status", "id"),
        Index("ix_request_request_type_id", "request_type", "id"),
        Index("ix_request_priority_id", "priority", "id"),
        Index("ix_request_assignee_id", "assignee", "id"),
        Index("ix_request_created_at_id", "created_at", "id"),
        # SLA queues: `?breached=` and `?due_before=` (the workflow keeps these columns current).
        Index("ix_request_breached_at_id", "breached_at", "id"),
        Index("ix_request_sla_due_at_id", "sla_due_at", "id"),
        # The indexes of the queue view (score DESC) are in services/intake/triage/models.py.
        # Ids are never reused on SQLite either: a workflow id (`request-<id>`) derives from it.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team: Mapped[str] = mapped_column(String(200))
    request_type: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    priority: Mapped[str] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(32))
    resolution: Mapped[str | None] = mapped_column(String(16))
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("request.id"))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    marketplace: Mapped[str | None] = mapped_column(String(64))
    impact_accounts_affected: Mapped[int | None] = mapped_column(BigInteger)
    impact_money_at_risk_per_week: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    impact_currency: Mapped[str | None] = mapped_column(String(3))
    external_refs: Mapped[list[str]] = mapped_column(JSON)
    requested_by: Mapped[str] = mapped_column(String(200))
    assignee: Mapped[str | None] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Written only by the request's workflow (`PUT /internal/requests/{id}/sla`): the earliest
    # running SLA deadline, the first breach, and each clock's deadline.
    sla_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolution_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Triage and assignment (intake_0003): the type's extra fields, the score the matrix gave
    # (services/intake/triage/scoring.py), the queue, and the first staff public comment.
    details: Mapped[dict[str, Any]] = mapped_column(
        JSON, default=lambda: {}, server_default=text("'{}'")
    )
    urgency: Mapped[str | None] = mapped_column(String(16))
    priority_score: Mapped[int] = mapped_column(Integer, default=40, server_default=text("40"))
    proposed_priority: Mapped[str | None] = mapped_column(String(2))
    queue: Mapped[str | None] = mapped_column(String(100))
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Stats (intake_0008): each SLA clock's business time worked and the instant it stopped,
    # recorded by the request's workflow once the clock stops (null while it runs).
    first_response_business_seconds: Mapped[float | None] = mapped_column(Float)
    first_response_stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolution_business_seconds: Mapped[float | None] = mapped_column(Float)
    resolution_stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    tag_rows: Mapped[list[RequestTag]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="RequestTag.tag"
    )

    @property
    def tags(self) -> list[str]:
        """The request's tags, sorted."""
        return [row.tag for row in self.tag_rows]


class RequestTag(Base):
    """One tag of a request; its own table so that filtering by tag is an index lookup."""

    __tablename__ = "request_tag"
    __table_args__ = (Index("ix_request_tag_tag_request_id", "tag", "request_id"),)

    request_id: Mapped[int] = mapped_column(
        ForeignKey("request.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(50), primary_key=True)


class RequestEvent(Base):
    """The audit trail: one row per change, ordered by the request version it produced."""

    __tablename__ = "request_event"
    __table_args__ = (UniqueConstraint("request_id", "request_version"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("request.id", ondelete="CASCADE"))
    request_version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    action: Mapped[str | None] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    actor_role: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OutboxEvent(OutboxMixin, Base):
    """Signals waiting to reach the request workflows."""


class IdempotencyKey(IdempotencyKeyMixin, Base):
    """Responses remembered per (caller, Idempotency-Key)."""


# Each aggregate's tables register on Base when its module loads, so alembic and the app see them.
from services.intake.aging import models as _aging_models  # noqa: E402, F401
from services.intake.assignment import models as _assignment_models  # noqa: E402, F401
from services.intake.comments import models as _comment_models  # noqa: E402, F401
from services.intake.initiatives import models as _initiative_models  # noqa: E402, F401
from services.intake.mo_suggestions import models as _mo_suggestion_models  # noqa: E402, F401
from services.intake.search import models as _search_models  # noqa: E402, F401
from services.intake.stats import models as _stats_models  # noqa: E402, F401
from services.intake.triage import models as _triage_models  # noqa: E402, F401
