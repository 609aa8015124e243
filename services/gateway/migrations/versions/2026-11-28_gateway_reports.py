"""Weekly reports: stored reports, goals per metric, path-to-green notes.

Revision ID: gateway_0004
Revises: gateway_0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "gateway_0004"
down_revision: str | Sequence[str] | None = "gateway_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "weekly_report",
        sa.Column("week", sa.String(8), nullable=False),
        sa.Column("built_at", UTCDateTime(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("week", name=op.f("pk_weekly_report")),
    )
    op.create_table(
        "report_goal",
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("target", sa.Float(), nullable=True),
        sa.Column("amber_within", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("metric", name=op.f("pk_report_goal")),
    )
    op.create_table(
        "report_note",
        sa.Column("week", sa.String(8), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("week", "metric", name=op.f("pk_report_note")),
    )


def downgrade() -> None:
    op.drop_table("report_note")
    op.drop_table("report_goal")
    op.drop_table("weekly_report")
