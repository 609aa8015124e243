"""Tables of the detection-rule inventory: rules and ML models, weekly metric snapshots,
deprecations.

Table names start with `rule_` (or are `rule`): the SOP tables of the same service live beside them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import UTCDateTime
from services.sop.models import Base


class Rule(Base):
    """A detection rule of the detection platform; `id` is the platform's own rule id."""

    __tablename__ = "rule"
    __table_args__ = (
        Index("ix_rule_team_id", "team", "id"),
        Index("ix_rule_status_id", "status", "id"),
        Index("ix_rule_owner_id", "owner", "id"),
        # The "no hits in N days" test scans active rules by when they last fired.
        Index("ix_rule_status_last_fired_at", "status", "last_fired_at"),
        # `?kind=model` (sop_0004).
        Index("ix_rule_kind_id", "kind", "id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(200))
    team: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text)
    # `rule` or `model` (domain.RuleKind); rows from before sop_0004 are rules.
    kind: Mapped[str] = mapped_column(String(16), default="rule", server_default=text("'rule'"))
    status: Mapped[str] = mapped_column(String(32))
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    replaced_by: Mapped[str | None] = mapped_column(ForeignKey("rule.id"))
    merged_into: Mapped[str | None] = mapped_column(ForeignKey("rule.id"))
    version: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RuleMetricSnapshot(Base):
    """One week of a rule's activity as the detection platform reports it; one row per week."""

    __tablename__ = "rule_metric_snapshot"
    __table_args__ = (
        UniqueConstraint("rule_id", "week_start"),
        Index("ix_rule_metric_snapshot_week_start", "week_start"),
        Index("ix_rule_metric_snapshot_rule_id_updated_at", "rule_id", "updated_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule_id: Mapped[str] = mapped_column(ForeignKey("rule.id", ondelete="CASCADE"))
    week_start: Mapped[date] = mapped_column(Date)
    hits: Mapped[int] = mapped_column(Integer)
    true_positive_rate: Mapped[float | None] = mapped_column(Float)
    actioned_accounts: Mapped[int] = mapped_column(Integer)
    last_fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # What a model reports (sop_0004; null for a rule): see services/sop/rules/ml_models.py.
    precision: Mapped[float | None] = mapped_column(Float)
    recall: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    volume_actioned: Mapped[int | None] = mapped_column(Integer)
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RuleDeprecation(Base):
    """One proposal to deprecate a rule and how it went (monitoring, check, decision, outcome)."""

    __tablename__ = "rule_deprecation"
    __table_args__ = (
        Index("ix_rule_deprecation_rule_id_id", "rule_id", "id"),
        # Stats (sop_0006): deprecations finished in a period, by outcome.
        Index("ix_rule_deprecation_finished_at_outcome", "finished_at", "outcome"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule_id: Mapped[str] = mapped_column(ForeignKey("rule.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    proposed_by: Mapped[str] = mapped_column(String(200))
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    monitoring_seconds: Mapped[int] = mapped_column(Integer)
    criteria: Mapped[dict[str, Any]] = mapped_column(JSON)
    replaced_by: Mapped[str | None] = mapped_column(String(64))
    merged_into: Mapped[str | None] = mapped_column(String(64))
    monitoring_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    monitoring_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decision_comment: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(String(32))
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
