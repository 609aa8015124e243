"""The `sla_policy` table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import UTCDateTime, utcnow
from services.gateway.models import Base


class SlaPolicy(Base):
    """One SLA policy: what it matches, its targets (whole seconds) and its calendar."""

    __tablename__ = "sla_policy"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    # `order` is an SQL keyword; the column is named for what it does. Unique, so matching is
    # deterministic, and its index serves the ordered scan every resolution makes.
    order: Mapped[int] = mapped_column("match_order", Integer, unique=True)
    # None matches any request type / priority.
    request_types: Mapped[list[str] | None] = mapped_column(JSON)
    priorities: Mapped[list[str] | None] = mapped_column(JSON)
    first_response_seconds: Mapped[int] = mapped_column(Integer)
    resolution_seconds: Mapped[int] = mapped_column(Integer)
    calendar_id: Mapped[str] = mapped_column(String(40), ForeignKey("business_calendar.id"))
    warning_thresholds: Mapped[list[int]] = mapped_column(JSON)
    pause_statuses: Mapped[list[str]] = mapped_column(JSON)
    auto_close_seconds: Mapped[int | None] = mapped_column(Integer)
    # SQLAlchemy's version counter: every UPDATE is `... WHERE version = <read version>`, so of two
    # concurrent writers one gets StaleDataError (412) instead of silently losing an update.
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __mapper_args__ = {"version_id_col": version}
