"""Stats: indexes for escalations closed in a period and action items overdue at an instant.

Revision ID: escalation_0004
Revises: escalation_0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "escalation_0004"
down_revision: str | Sequence[str] | None = "escalation_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_escalation_closed_at_created_at", "escalation", ["closed_at", "created_at"]),
    ("ix_action_item_due_at_completed_at", "action_item", ["due_at", "completed_at"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
