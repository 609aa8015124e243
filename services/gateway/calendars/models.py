"""The `business_calendar` table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import UTCDateTime, utcnow
from services.gateway.models import Base


class BusinessCalendar(Base):
    """A named business calendar; `spec` is the validated calendar object as the API shows it."""

    __tablename__ = "business_calendar"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    # Stored as `Calendar.to_spec()` gives it, so what is read back is what was validated.
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    # SQLAlchemy's version counter: every UPDATE is `... WHERE version = <read version>`, so of two
    # concurrent writers one gets StaleDataError (412) instead of silently losing an update.
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __mapper_args__ = {"version_id_col": version}
