"""SLA columns on request (recorded by the workflow) and the indexes of the SLA queues.

Revision ID: intake_0002
Revises: intake_0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "intake_0002"
down_revision: str | Sequence[str] | None = "intake_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("sla_due_at", "breached_at", "first_response_due_at", "resolution_due_at")
INDEXES = (
    ("ix_request_breached_at_id", ["breached_at", "id"]),
    ("ix_request_sla_due_at_id", ["sla_due_at", "id"]),
)


def upgrade() -> None:
    # Plain ALTER TABLE on both backends (SQLite >= 3.35 drops columns too): a batch copy of the
    # table would lose its AUTOINCREMENT, and request ids must never be reused.
    for column in COLUMNS:
        op.add_column("request", sa.Column(column, UTCDateTime(), nullable=True))
    for name, columns in INDEXES:
        op.create_index(name, "request", columns)


def downgrade() -> None:
    for name, _ in reversed(INDEXES):
        op.drop_index(name, table_name="request")
    for column in reversed(COLUMNS):
        op.drop_column("request", column)
