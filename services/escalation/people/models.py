"""The `person` table (on the escalation service's Base)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import UTCDateTime
from services.escalation.models import Base


class Person(Base):
    """One entry of the directory, keyed by the handle action items name as their owner."""

    __tablename__ = "person"
    __table_args__ = (Index("ix_person_manager_handle_handle", "manager_handle", "handle"),)

    handle: Mapped[str] = mapped_column(String(200), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    manager_handle: Mapped[str | None] = mapped_column(String(200))
    # A gateway calendar slug (`/api/v1/calendars/{id}`); not checked against the gateway on write.
    calendar_id: Mapped[str | None] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
