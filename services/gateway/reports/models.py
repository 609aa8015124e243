"""Tables of the weekly report: stored reports, goals per metric, path-to-green notes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import UTCDateTime
from services.gateway.models import Base


class WeeklyReport(Base):
    """The frozen report of an ended ISO week (values, goals, RAG, trends) as built."""

    __tablename__ = "weekly_report"

    week: Mapped[str] = mapped_column(String(8), primary_key=True)
    built_at: Mapped[datetime] = mapped_column(UTCDateTime())
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)


class ReportGoal(Base):
    """A goal set for one metric (the code's default applies to metrics without a row)."""

    __tablename__ = "report_goal"

    metric: Mapped[str] = mapped_column(String(64), primary_key=True)
    target: Mapped[float | None] = mapped_column(Float)
    amber_within: Mapped[float] = mapped_column(Float)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReportNote(Base):
    """The path-to-green note of one metric in one week's report."""

    __tablename__ = "report_note"

    week: Mapped[str] = mapped_column(String(8), primary_key=True)
    metric: Mapped[str] = mapped_column(String(64), primary_key=True)
    note: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
