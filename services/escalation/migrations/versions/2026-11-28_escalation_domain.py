"""Escalation domain: escalation, rca_version, action_item, gap, gap_link.

Revision ID: escalation_0002
Revises: escalation_0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "escalation_0002"
down_revision: str | Sequence[str] | None = "escalation_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "escalation",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("team", sa.String(100), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("external_ref", sa.String(200), nullable=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("program_manager", sa.String(200), nullable=True),
        sa.Column("customer_impact", sa.Text(), nullable=False),
        sa.Column("business_impact", sa.Text(), nullable=False),
        sa.Column("timeline", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("rca_version", sa.Integer(), nullable=False),
        sa.Column("closure_approved_by", sa.String(200), nullable=True),
        sa.Column("closure_note", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_escalation"),
        # Ids are never reused on SQLite either: a workflow id (`escalation-<id>`) derives from it.
        sqlite_autoincrement=True,
    )
    for name, columns in _ESCALATION_INDEXES:
        op.create_index(name, "escalation", columns)

    op.create_table(
        "rca_version",
        sa.Column("escalation_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["escalation_id"],
            ["escalation.id"],
            name="fk_rca_version_escalation_id_escalation",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("escalation_id", "version", name="pk_rca_version"),
    )

    op.create_table(
        "action_item",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("escalation_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("owner_manager", sa.String(200), nullable=True),
        sa.Column("priority", sa.String(2), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("calendar", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("blocked_reason", sa.Text(), nullable=True),
        sa.Column("not_doing_justification", sa.Text(), nullable=True),
        sa.Column("not_doing_decided_by", sa.String(200), nullable=True),
        sa.Column("not_doing_decision_note", sa.Text(), nullable=True),
        sa.Column("external_link", sa.String(500), nullable=True),
        sa.Column("completion_evidence", sa.Text(), nullable=True),
        sa.Column("rca_version", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["escalation_id"],
            ["escalation.id"],
            name="fk_action_item_escalation_id_escalation",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_action_item"),
        sqlite_autoincrement=True,
    )
    for name, columns in _ACTION_ITEM_INDEXES:
        op.create_index(name, "action_item", columns)

    op.create_table(
        "gap",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("owning_team", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("impact_accounts_per_week", sa.BigInteger(), nullable=True),
        sa.Column("impact_money_per_week", sa.Numeric(18, 2), nullable=True),
        sa.Column("impact_currency", sa.String(3), nullable=True),
        sa.Column("impact_method", sa.Text(), nullable=True),
        sa.Column("charter_owner", sa.String(200), nullable=True),
        sa.Column("target_date", sa.Date(), nullable=True),
        sa.Column("resolution_note", sa.Text(), nullable=True),
        sa.Column("identified_at", UTCDateTime(), nullable=False),
        sa.Column("identified_week", sa.String(8), nullable=False),
        sa.Column("quantified_at", UTCDateTime(), nullable=True),
        sa.Column("quantified_week", sa.String(8), nullable=True),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("closed_week", sa.String(8), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_gap"),
        sqlite_autoincrement=True,
    )
    for name, columns in _GAP_INDEXES:
        op.create_index(name, "gap", columns)

    op.create_table(
        "gap_link",
        sa.Column("gap_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ref", sa.String(100), nullable=False),
        sa.ForeignKeyConstraint(
            ["gap_id"], ["gap.id"], name="fk_gap_link_gap_id_gap", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("gap_id", "kind", "ref", name="pk_gap_link"),
    )
    op.create_index("ix_gap_link_kind_ref", "gap_link", ["kind", "ref"])


def downgrade() -> None:
    op.drop_index("ix_gap_link_kind_ref", table_name="gap_link")
    op.drop_table("gap_link")
    for name, _ in reversed(_GAP_INDEXES):
        op.drop_index(name, table_name="gap")
    op.drop_table("gap")
    for name, _ in reversed(_ACTION_ITEM_INDEXES):
        op.drop_index(name, table_name="action_item")
    op.drop_table("action_item")
    op.drop_table("rca_version")
    for name, _ in reversed(_ESCALATION_INDEXES):
        op.drop_index(name, table_name="escalation")
    op.drop_table("escalation")


_ESCALATION_INDEXES = (
    ("ix_escalation_team_status_id", ["team", "status", "id"]),
    ("ix_escalation_team_id", ["team", "id"]),
    ("ix_escalation_status_id", ["status", "id"]),
    ("ix_escalation_source_id", ["source", "id"]),
    ("ix_escalation_severity_id", ["severity", "id"]),
    ("ix_escalation_owner_id", ["owner", "id"]),
    ("ix_escalation_created_at_id", ["created_at", "id"]),
)
_ACTION_ITEM_INDEXES = (
    ("ix_action_item_escalation_id_id", ["escalation_id", "id"]),
    ("ix_action_item_owner_status_id", ["owner", "status", "id"]),
    ("ix_action_item_status_id", ["status", "id"]),
    ("ix_action_item_status_due_at", ["status", "due_at"]),
)
_GAP_INDEXES = (
    ("ix_gap_owning_team_status_id", ["owning_team", "status", "id"]),
    ("ix_gap_status_id", ["status", "id"]),
    ("ix_gap_identified_week", ["identified_week"]),
    ("ix_gap_quantified_week", ["quantified_week"]),
    ("ix_gap_closed_week", ["closed_week"]),
)
