"""Tables of MO suggestions: a request's embedding and stored suggestions, the labelled pairs
analysts confirmed or rejected, and the last MO catalog version the worker reported."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import UTCDateTime
from services.intake.models import Base


class RequestMoMatch(Base):
    """A request's embedding and its MO suggestions, written only by the worker's activity.

    `*_text_hash` name the request text each was computed from (a changed title or description
    makes them stale); `catalog_version` the sop catalog the suggestions were ranked against. The
    `refresh_*` columns remember the last recompute asked for, so a read asks only once.
    """

    __tablename__ = "request_mo_match"

    request_id: Mapped[int] = mapped_column(
        ForeignKey("request.id", ondelete="CASCADE"), primary_key=True
    )
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    embedding_model: Mapped[str | None] = mapped_column(String(100))
    embedding_text_hash: Mapped[str | None] = mapped_column(String(64))
    embedded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    method: Mapped[str | None] = mapped_column(String(16))
    model: Mapped[str | None] = mapped_column(String(100))
    suggestions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    suggestions_text_hash: Mapped[str | None] = mapped_column(String(64))
    catalog_version: Mapped[int | None] = mapped_column(BigInteger)
    computed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    refresh_text_hash: Mapped[str | None] = mapped_column(String(64))
    refresh_catalog_version: Mapped[int | None] = mapped_column(BigInteger)
    refresh_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MoMatchLabel(Base):
    """An analyst's verdict on one suggested (request, MO) pair: a labelled pair for precision@k.

    `rank`, `score` and `method` are the suggestion's when it was judged; a new verdict on the
    same pair replaces the old one.
    """

    __tablename__ = "mo_match_label"
    __table_args__ = (Index("ix_mo_match_label_decision_request_id", "decision", "request_id"),)

    request_id: Mapped[int] = mapped_column(
        ForeignKey("request.id", ondelete="CASCADE"), primary_key=True
    )
    mo_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    decision: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(16))
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    team: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str] = mapped_column(String(200))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MoCatalogState(Base):
    """One row (id 1): the newest sop MO catalog version the worker reported."""

    __tablename__ = "mo_catalog_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
