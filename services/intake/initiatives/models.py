"""Table of OP1 initiatives.

Every list filter has a composite index ending in `id` (newest first is `id desc`), the score sort
has its own `(score, id)` index, and the roadmap reads `(target_quarter, status)`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, BigInteger, Boolean, Float, Index, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import UTCDateTime
from services.intake.models import Base


class Initiative(Base):
    """One idea for the yearly plan; `version` grows by one with every change (ETag)."""

    __tablename__ = "initiative"
    __table_args__ = (
        Index("ix_initiative_team_id", "team", "id"),
        Index("ix_initiative_status_id", "status", "id"),
        Index("ix_initiative_source_kind_id", "source_kind", "id"),
        Index("ix_initiative_target_quarter_id", "target_quarter", "id"),
        Index("ix_initiative_ai_id", "ai", "id"),
        Index("ix_initiative_score_id", "score", "id"),
        Index("ix_initiative_status_score_id", "status", "score", "id"),
        Index("ix_initiative_target_quarter_status", "target_quarter", "status"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team: Mapped[str] = mapped_column(String(100))
    source_kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    problem: Mapped[str] = mapped_column(Text)
    proposal: Mapped[str] = mapped_column(Text)
    ai: Mapped[bool] = mapped_column(Boolean)
    expected_accounts_protected: Mapped[int] = mapped_column(BigInteger)
    expected_money_saved: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    expected_currency: Mapped[str] = mapped_column(String(3))
    expected_analyst_hours: Mapped[Decimal] = mapped_column(Numeric(12, 1))
    effort_person_weeks: Mapped[Decimal] = mapped_column(Numeric(8, 1))
    confidence: Mapped[float] = mapped_column(Float)
    reach: Mapped[int | None] = mapped_column(BigInteger)
    dependencies: Mapped[list[str]] = mapped_column(JSON)
    target_quarter: Mapped[str | None] = mapped_column(String(7))
    score: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))
    drop_reason: Mapped[str | None] = mapped_column(Text)
    realised_accounts_protected: Mapped[int | None] = mapped_column(BigInteger)
    realised_money_saved: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    realised_currency: Mapped[str | None] = mapped_column(String(3))
    realised_analyst_hours: Mapped[Decimal | None] = mapped_column(Numeric(12, 1))
    proposed_by: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    committed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    measured_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
