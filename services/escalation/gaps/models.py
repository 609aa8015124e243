"""The `gap` and `gap_link` tables (on the escalation service's Base).

The ISO week of each milestone (`identified_week`, `quantified_week`, `closed_week`, like
"2026-W48") is stored with it, so the weekly counts are plain indexed GROUP BYs on both SQLite and
PostgreSQL (no dialect-specific week functions).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from services.common.db import UTCDateTime
from services.escalation.models import Base


class Gap(Base):
    """A systemic gap: what is missing, who owns fixing it, what it costs per week."""

    __tablename__ = "gap"
    __table_args__ = (
        Index("ix_gap_owning_team_status_id", "owning_team", "status", "id"),
        Index("ix_gap_status_id", "status", "id"),
        Index("ix_gap_identified_week", "identified_week"),
        Index("ix_gap_quantified_week", "quantified_week"),
        Index("ix_gap_closed_week", "closed_week"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    owning_team: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    impact_accounts_per_week: Mapped[int | None] = mapped_column(BigInteger)
    impact_money_per_week: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    impact_currency: Mapped[str | None] = mapped_column(String(3))
    impact_method: Mapped[str | None] = mapped_column(Text)
    charter_owner: Mapped[str | None] = mapped_column(String(200))
    target_date: Mapped[date | None] = mapped_column(Date)
    resolution_note: Mapped[str | None] = mapped_column(Text)
    identified_at: Mapped[datetime] = mapped_column(UTCDateTime())
    identified_week: Mapped[str] = mapped_column(String(8))
    quantified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    quantified_week: Mapped[str | None] = mapped_column(String(8))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_week: Mapped[str | None] = mapped_column(String(8))
    created_by: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    link_rows: Mapped[list[GapLink]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by=lambda: [GapLink.kind, GapLink.ref]
    )


class GapLink(Base):
    """A link from a gap to an escalation, a request or a detection rule."""

    __tablename__ = "gap_link"
    __table_args__ = (Index("ix_gap_link_kind_ref", "kind", "ref"),)

    gap_id: Mapped[int] = mapped_column(ForeignKey("gap.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    ref: Mapped[str] = mapped_column(String(100), primary_key=True)
