"""Tables of the MO repository: MOs, their links to the rules that catch them, and their references
to requests and escalations (ids in other services; never joined, only listed)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import UTCDateTime
from services.sop.models import Base


class Mo(Base):
    """A modus operandi: a bad-actor pattern, what gives it away, and where it stands."""

    __tablename__ = "mo"
    __table_args__ = (
        Index("ix_mo_team_id", "team", "id"),
        Index("ix_mo_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text)
    team: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(32))
    signals: Mapped[list[str]] = mapped_column(JSON)
    behaviours: Mapped[list[str]] = mapped_column(JSON)
    entity_types: Mapped[list[str]] = mapped_column(JSON)
    first_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    impact_accounts_affected: Mapped[int | None] = mapped_column(BigInteger)
    impact_money_at_risk_per_week: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    impact_currency: Mapped[str | None] = mapped_column(String(3))
    impact_notes: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MoRuleLink(Base):
    """A rule that catches an MO (read from both sides: an MO's rules, a rule's MOs)."""

    __tablename__ = "mo_rule_link"
    __table_args__ = (Index("ix_mo_rule_link_rule_id_mo_id", "rule_id", "mo_id"),)

    mo_id: Mapped[int] = mapped_column(ForeignKey("mo.id", ondelete="CASCADE"), primary_key=True)
    rule_id: Mapped[str] = mapped_column(
        ForeignKey("rule.id", ondelete="CASCADE"), primary_key=True
    )


class MoReference(Base):
    """A request or escalation (by id, in its own service) that is about an MO."""

    __tablename__ = "mo_reference"
    __table_args__ = (Index("ix_mo_reference_kind_ref_id_mo_id", "kind", "ref_id", "mo_id"),)

    mo_id: Mapped[int] = mapped_column(ForeignKey("mo.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    ref_id: Mapped[int] = mapped_column(Integer, primary_key=True)
