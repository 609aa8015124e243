"""Person directory (`person`) and where an action item's calendar comes from.

Revision ID: escalation_0003
Revises: escalation_0002
Create Date: 2026-11-28

Existing action items keep the calendar stored on them (`calendar_source` "item"), so their
quiet hours do not change under them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "escalation_0003"
down_revision: str | Sequence[str] | None = "escalation_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "person",
        sa.Column("handle", sa.String(200), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("manager_handle", sa.String(200), nullable=True),
        sa.Column("calendar_id", sa.String(40), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("handle", name="pk_person"),
    )
    op.create_index("ix_person_manager_handle_handle", "person", ["manager_handle", "handle"])
    op.add_column(
        "action_item",
        sa.Column("calendar_source", sa.String(8), nullable=False, server_default="item"),
    )
    op.add_column("action_item", sa.Column("calendar_id", sa.String(40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("action_item") as batch:
        batch.drop_column("calendar_id")
        batch.drop_column("calendar_source")
    op.drop_index("ix_person_manager_handle_handle", table_name="person")
    op.drop_table("person")
