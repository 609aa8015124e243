"""Detection rules (inventory, weekly metric snapshots, deprecations) and the MO repository.

Revision ID: sop_0003
Revises: sop_0001
Create Date: 2026-11-28

A branch parallel to sop_0002 (SOPs): the two aggregates share no table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "sop_0003"
down_revision: str | None = "sop_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rule",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("team", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("deployed_at", UTCDateTime(), nullable=False),
        sa.Column("last_fired_at", UTCDateTime(), nullable=True),
        sa.Column("replaced_by", sa.String(length=64), nullable=True),
        sa.Column("merged_into", sa.String(length=64), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["replaced_by"], ["rule.id"], name=op.f("fk_rule_replaced_by_rule")
        ),
        sa.ForeignKeyConstraint(
            ["merged_into"], ["rule.id"], name=op.f("fk_rule_merged_into_rule")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule")),
    )
    op.create_index("ix_rule_team_id", "rule", ["team", "id"])
    op.create_index("ix_rule_status_id", "rule", ["status", "id"])
    op.create_index("ix_rule_owner_id", "rule", ["owner", "id"])
    op.create_index("ix_rule_status_last_fired_at", "rule", ["status", "last_fired_at"])

    op.create_table(
        "rule_metric_snapshot",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("week_start", sa.Date(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("true_positive_rate", sa.Float(), nullable=True),
        sa.Column("actioned_accounts", sa.Integer(), nullable=False),
        sa.Column("last_fired_at", UTCDateTime(), nullable=True),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["rule.id"],
            name=op.f("fk_rule_metric_snapshot_rule_id_rule"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_metric_snapshot")),
        sa.UniqueConstraint(
            "rule_id", "week_start", name=op.f("uq_rule_metric_snapshot_rule_id_week_start")
        ),
    )
    op.create_index("ix_rule_metric_snapshot_week_start", "rule_metric_snapshot", ["week_start"])
    op.create_index(
        "ix_rule_metric_snapshot_rule_id_updated_at",
        "rule_metric_snapshot",
        ["rule_id", "updated_at"],
    )

    op.create_table(
        "rule_deprecation",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("proposed_by", sa.String(length=200), nullable=False),
        sa.Column("proposed_at", UTCDateTime(), nullable=False),
        sa.Column("monitoring_seconds", sa.Integer(), nullable=False),
        sa.Column("criteria", sa.JSON(), nullable=False),
        sa.Column("replaced_by", sa.String(length=64), nullable=True),
        sa.Column("merged_into", sa.String(length=64), nullable=True),
        sa.Column("monitoring_started_at", UTCDateTime(), nullable=True),
        sa.Column("monitoring_ends_at", UTCDateTime(), nullable=True),
        sa.Column("checked_at", UTCDateTime(), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decision_comment", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["rule.id"],
            name=op.f("fk_rule_deprecation_rule_id_rule"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_deprecation")),
    )
    op.create_index("ix_rule_deprecation_rule_id_id", "rule_deprecation", ["rule_id", "id"])

    op.create_table(
        "mo",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("team", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("signals", sa.JSON(), nullable=False),
        sa.Column("behaviours", sa.JSON(), nullable=False),
        sa.Column("entity_types", sa.JSON(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=True),
        sa.Column("impact_accounts_affected", sa.BigInteger(), nullable=True),
        sa.Column("impact_money_at_risk_per_week", sa.Numeric(18, 2), nullable=True),
        sa.Column("impact_currency", sa.String(length=3), nullable=True),
        sa.Column("impact_notes", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mo")),
    )
    op.create_index("ix_mo_team_id", "mo", ["team", "id"])
    op.create_index("ix_mo_status_id", "mo", ["status", "id"])

    op.create_table(
        "mo_rule_link",
        sa.Column("mo_id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["mo_id"], ["mo.id"], name=op.f("fk_mo_rule_link_mo_id_mo"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["rule.id"],
            name=op.f("fk_mo_rule_link_rule_id_rule"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mo_id", "rule_id", name=op.f("pk_mo_rule_link")),
    )
    op.create_index("ix_mo_rule_link_rule_id_mo_id", "mo_rule_link", ["rule_id", "mo_id"])

    op.create_table(
        "mo_reference",
        sa.Column("mo_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ref_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mo_id"], ["mo.id"], name=op.f("fk_mo_reference_mo_id_mo"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("mo_id", "kind", "ref_id", name=op.f("pk_mo_reference")),
    )
    op.create_index(
        "ix_mo_reference_kind_ref_id_mo_id", "mo_reference", ["kind", "ref_id", "mo_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_mo_reference_kind_ref_id_mo_id", table_name="mo_reference")
    op.drop_table("mo_reference")
    op.drop_index("ix_mo_rule_link_rule_id_mo_id", table_name="mo_rule_link")
    op.drop_table("mo_rule_link")
    op.drop_index("ix_mo_status_id", table_name="mo")
    op.drop_index("ix_mo_team_id", table_name="mo")
    op.drop_table("mo")
    op.drop_index("ix_rule_deprecation_rule_id_id", table_name="rule_deprecation")
    op.drop_table("rule_deprecation")
    op.drop_index("ix_rule_metric_snapshot_rule_id_updated_at", table_name="rule_metric_snapshot")
    op.drop_index("ix_rule_metric_snapshot_week_start", table_name="rule_metric_snapshot")
    op.drop_table("rule_metric_snapshot")
    op.drop_index("ix_rule_status_last_fired_at", table_name="rule")
    op.drop_index("ix_rule_owner_id", table_name="rule")
    op.drop_index("ix_rule_status_id", table_name="rule")
    op.drop_index("ix_rule_team_id", table_name="rule")
    op.drop_table("rule")
