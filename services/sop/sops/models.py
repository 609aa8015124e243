"""Tables of the SOP aggregate: orgs, SOPs, versions, their audit events, rollouts and adoptions.

Table names are `org` or start with `sop_` (or are `sop`): the rule and MO tables of the same service
live beside them. `sop_adoption` holds, per SOP and org, the version in effect there: parity is
read from it without scanning rollouts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import UTCDateTime
from services.sop.models import Base


class Org(Base):
    """A site or partner org that adopts SOPs; `lead_subject` acknowledges rollouts for it."""

    __tablename__ = "org"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    lead_subject: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Sop(Base):
    """A standard operating procedure; its content lives in versions."""

    __tablename__ = "sop"
    __table_args__ = (
        Index("ix_sop_owning_team_id", "owning_team", "id"),
        # The periodic-review sweep scans SOPs by their next review.
        Index("ix_sop_next_review_at", "next_review_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    owning_team: Mapped[str] = mapped_column(String(100))
    owner: Mapped[str] = mapped_column(String(200))
    approval_policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    review_interval_days: Mapped[int] = mapped_column(Integer)
    next_review_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    effective_version: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SopVersion(Base):
    """One version of an SOP (`number` counts from 1 per SOP) and where it is in its life."""

    __tablename__ = "sop_version"
    __table_args__ = (
        UniqueConstraint("sop_id", "number"),
        Index("ix_sop_version_status_id", "status", "id"),
        # Stats (sop_0006): versions approved in a period, with the submission the cycle needs.
        Index("ix_sop_version_approved_at_submitted_at", "approved_at", "submitted_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sop_id: Mapped[int] = mapped_column(ForeignKey("sop.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    change_summary: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(200))
    # Bumped by each submission: every review round has its own approval workflow.
    review_round: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    effective_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SopEvent(Base):
    """The audit trail of an SOP: versions, submissions, each decision, reminders, rollouts."""

    __tablename__ = "sop_event"
    __table_args__ = (Index("ix_sop_event_sop_id_seq", "sop_id", "seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Deterministic for events a workflow reports, so a retried activity records nothing twice.
    event_id: Mapped[str] = mapped_column(String(200), unique=True)
    sop_id: Mapped[int] = mapped_column(ForeignKey("sop.id", ondelete="CASCADE"))
    version_number: Mapped[int | None] = mapped_column(Integer)
    rollout_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SopRollout(Base):
    """The rollout of one approved version to orgs, in waves."""

    __tablename__ = "sop_rollout"
    __table_args__ = (
        Index("ix_sop_rollout_sop_id_id", "sop_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sop_id: Mapped[int] = mapped_column(ForeignKey("sop.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(ForeignKey("sop_version.id", ondelete="CASCADE"))
    version_number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    reminder_interval_seconds: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SopRolloutOrg(Base):
    """One org of a rollout: its wave, its window and its acknowledgement."""

    __tablename__ = "sop_rollout_org"

    rollout_id: Mapped[int] = mapped_column(
        ForeignKey("sop_rollout.id", ondelete="CASCADE"), primary_key=True
    )
    org_id: Mapped[str] = mapped_column(ForeignKey("org.id"), primary_key=True)
    wave: Mapped[int] = mapped_column(Integer)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    training_completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reminders_sent: Mapped[int] = mapped_column(Integer)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    note: Mapped[str | None] = mapped_column(Text)
    late: Mapped[bool] = mapped_column(Boolean)


class SopAdoption(Base):
    """The version of an SOP in effect in an org, and since when."""

    __tablename__ = "sop_adoption"

    sop_id: Mapped[int] = mapped_column(ForeignKey("sop.id", ondelete="CASCADE"), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("org.id"), primary_key=True)
    version_number: Mapped[int] = mapped_column(Integer)
    adopted_at: Mapped[datetime] = mapped_column(UTCDateTime())
