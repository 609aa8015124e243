"""Table of queue membership: which analysts take work from which queue."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import UTCDateTime
from services.intake.models import Base


class QueueMember(Base):
    """An analyst (a key subject) who takes work from a queue."""

    __tablename__ = "queue_member"

    queue: Mapped[str] = mapped_column(String(100), primary_key=True)
    member: Mapped[str] = mapped_column(String(200), primary_key=True)
    added_by: Mapped[str] = mapped_column(String(200))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())
