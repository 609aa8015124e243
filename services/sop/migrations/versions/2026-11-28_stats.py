"""Stats: indexes for SOP versions approved and rule deprecations finished in a period.

Revision ID: sop_0006
Revises: sop_0003
Create Date: 2026-11-28

Also needs sop_0002 (the SOP tables), a parallel branch: `depends_on` orders it after both.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "sop_0006"
down_revision: str | Sequence[str] | None = "sop_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "sop_0002"

INDEXES = (
    ("ix_sop_version_approved_at_submitted_at", "sop_version", ["approved_at", "submitted_at"]),
    ("ix_rule_deprecation_finished_at_outcome", "rule_deprecation", ["finished_at", "outcome"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
