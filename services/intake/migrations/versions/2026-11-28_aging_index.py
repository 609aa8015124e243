"""Aging alerts: index request (status, updated_at, id) for the stale list.

Revision ID: intake_0005
Revises: intake_0002
Create Date: 2026-11-28

A parallel branch from intake_0002 (like intake_0003 and intake_0004): `upgrade` applies every head.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "intake_0005"
down_revision: str | Sequence[str] | None = "intake_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_request_status_updated_at_id", "request", ["status", "updated_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_request_status_updated_at_id", table_name="request")
