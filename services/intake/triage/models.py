"""Table of request type configurations (the extra fields each type requires)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import UTCDateTime
from services.intake.models import Base, Request


class RequestTypeConfig(Base):
    """One request type's `details` schema: a list of {name, kind, required, description}."""

    __tablename__ = "request_type_config"

    request_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String(200))


# The queue view (`GET /api/v1/requests/queue`) reads open requests by score DESC, then SLA due time
# ASC (nulls last, PostgreSQL's default), then id: these indexes hold rows in exactly that order,
# per queue and overall, so a page is a range scan and no sort.
Index(
    "ix_request_queue_priority_score_sla_due_at_id",
    Request.queue,
    Request.priority_score.desc(),
    Request.sla_due_at,
    Request.id,
)
Index(
    "ix_request_priority_score_sla_due_at_id",
    Request.priority_score.desc(),
    Request.sla_due_at,
    Request.id,
)
Index("ix_request_queue_id", Request.queue, Request.id)
