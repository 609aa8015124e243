"""The `action_item` table (on the escalation service's Base)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import UTCDateTime
from services.escalation.models import Base


class ActionItem(Base):
    """One follow-up of an escalation, with one owner and a due instant."""

    __tablename__ = "action_item"
    __table_args__ = (
        Index("ix_action_item_escalation_id_id", "escalation_id", "id"),
        Index("ix_action_item_owner_status_id", "owner", "status", "id"),
        Index("ix_action_item_status_id", "status", "id"),
        Index("ix_action_item_status_due_at", "status", "due_at"),
        # Stats (escalation_0004): overdue at an instant = due before it, not completed by then.
        Index("ix_action_item_due_at_completed_at", "due_at", "completed_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    escalation_id: Mapped[int] = mapped_column(ForeignKey("escalation.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(200))
    owner_manager: Mapped[str | None] = mapped_column(String(200))
    priority: Mapped[str] = mapped_column(String(2))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The calendar the default due date was counted on (or the item's own, when `calendar_source`
    # is "item"); see services/escalation/people/resolution.py for the rules.
    calendar: Mapped[dict[str, Any]] = mapped_column(JSON)
    calendar_source: Mapped[str] = mapped_column(String(8), server_default="item")
    calendar_id: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(24))
    blocked_reason: Mapped[str | None] = mapped_column(Text)
    not_doing_justification: Mapped[str | None] = mapped_column(Text)
    not_doing_decided_by: Mapped[str | None] = mapped_column(String(200))
    not_doing_decision_note: Mapped[str | None] = mapped_column(Text)
    external_link: Mapped[str | None] = mapped_column(String(500))
    completion_evidence: Mapped[str | None] = mapped_column(Text)
    rca_version: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
