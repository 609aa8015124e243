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
    LargeBinary,
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
        Index("ix_mo_updated_at", "updated_at"),
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


class MoEmbedding(Base):
    """An MO's sentence embedding (issue 10), written by the worker's activity, never in the request
    path. `text_hash` says which text it was computed from: when the MO's text changes the row is
    stale until the activity stores a new one. Vectors are float32 bytes (services/common/
    embeddings.py): the MO's text as a whole, and one per indicator (to name matching ones)."""

    __tablename__ = "mo_embedding"
    __table_args__ = (Index("ix_mo_embedding_embedded_at", "embedded_at"),)

    mo_id: Mapped[int] = mapped_column(ForeignKey("mo.id", ondelete="CASCADE"), primary_key=True)
    model: Mapped[str] = mapped_column(String(100))
    text_hash: Mapped[str] = mapped_column(String(64))
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    indicators: Mapped[list[str]] = mapped_column(JSON)
    indicator_vectors: Mapped[bytes] = mapped_column(LargeBinary)
    embedded_at: Mapped[datetime] = mapped_column(UTCDateTime())
