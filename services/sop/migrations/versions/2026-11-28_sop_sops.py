"""SOPs: orgs (seeded), SOPs, versions, their audit events, rollouts, per-org adoptions.

Revision ID: sop_0002
Revises: sop_0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "sop_0002"
down_revision: str | None = "sop_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The program office's sites and partner orgs; leads are the subjects that acknowledge rollouts.
SEED_ORGS = [
    ("india", "India", "site", "lead-india"),
    ("costa-rica", "Costa Rica", "site", "lead-costa-rica"),
    ("san-jose", "San José", "site", "lead-san-jose"),
    ("buyer-risk-partners", "Buyer-risk partner orgs", "partner", "lead-buyer-risk-partners"),
]


def upgrade() -> None:
    org = op.create_table(
        "org",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("lead_subject", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_org"),
    )
    seeded_at = datetime(2026, 11, 28, tzinfo=UTC)
    op.bulk_insert(
        org,
        [
            {"id": i, "name": n, "kind": k, "lead_subject": lead, "created_at": seeded_at}
            for i, n, k, lead in SEED_ORGS
        ],
    )

    op.create_table(
        "sop",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(40), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("owning_team", sa.String(100), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("approval_policy", sa.JSON(), nullable=False),
        sa.Column("review_interval_days", sa.Integer(), nullable=False),
        sa.Column("next_review_at", UTCDateTime(), nullable=False),
        sa.Column("last_reviewed_at", UTCDateTime(), nullable=True),
        sa.Column("effective_version", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sop"),
        sa.UniqueConstraint("key", name="uq_sop_key"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_sop_owning_team_id", "sop", ["owning_team", "id"])
    op.create_index("ix_sop_next_review_at", "sop", ["next_review_at"])

    op.create_table(
        "sop_version",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sop_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("change_summary", sa.Text(), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("review_round", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("submitted_at", UTCDateTime(), nullable=True),
        sa.Column("approved_at", UTCDateTime(), nullable=True),
        sa.Column("effective_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["sop_id"], ["sop.id"], name="fk_sop_version_sop_id_sop", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sop_version"),
        sa.UniqueConstraint("sop_id", "number", name="uq_sop_version_sop_id_number"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_sop_version_status_id", "sop_version", ["status", "id"])

    op.create_table(
        "sop_event",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("sop_id", sa.Integer(), nullable=False),
        sa.Column("version_number", sa.Integer(), nullable=True),
        sa.Column("rollout_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sop_id"], ["sop.id"], name="fk_sop_event_sop_id_sop", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("seq", name="pk_sop_event"),
        sa.UniqueConstraint("event_id", name="uq_sop_event_event_id"),
    )
    op.create_index("ix_sop_event_sop_id_seq", "sop_event", ["sop_id", "seq"])

    op.create_table(
        "sop_rollout",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sop_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("version_number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reminder_interval_seconds", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["sop_id"], ["sop.id"], name="fk_sop_rollout_sop_id_sop", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["sop_version.id"],
            name="fk_sop_rollout_version_id_sop_version",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sop_rollout"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_sop_rollout_sop_id_id", "sop_rollout", ["sop_id", "id"])

    op.create_table(
        "sop_rollout_org",
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("acknowledged_at", UTCDateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(200), nullable=True),
        sa.Column("training_completed_at", UTCDateTime(), nullable=True),
        sa.Column("reminders_sent", sa.Integer(), nullable=False),
        sa.Column("escalated_at", UTCDateTime(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["sop_rollout.id"],
            name="fk_sop_rollout_org_rollout_id_sop_rollout",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["org_id"], ["org.id"], name="fk_sop_rollout_org_org_id_org"),
        sa.PrimaryKeyConstraint("rollout_id", "org_id", name="pk_sop_rollout_org"),
    )

    op.create_table(
        "sop_adoption",
        sa.Column("sop_id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("version_number", sa.Integer(), nullable=False),
        sa.Column("adopted_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sop_id"], ["sop.id"], name="fk_sop_adoption_sop_id_sop", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["org_id"], ["org.id"], name="fk_sop_adoption_org_id_org"),
        sa.PrimaryKeyConstraint("sop_id", "org_id", name="pk_sop_adoption"),
    )


def downgrade() -> None:
    op.drop_table("sop_adoption")
    op.drop_table("sop_rollout_org")
    op.drop_index("ix_sop_rollout_sop_id_id", table_name="sop_rollout")
    op.drop_table("sop_rollout")
    op.drop_index("ix_sop_event_sop_id_seq", table_name="sop_event")
    op.drop_table("sop_event")
    op.drop_index("ix_sop_version_status_id", table_name="sop_version")
    op.drop_table("sop_version")
    op.drop_index("ix_sop_next_review_at", table_name="sop")
    op.drop_index("ix_sop_owning_team_id", table_name="sop")
    op.drop_table("sop")
    op.drop_table("org")
