"""Initial gateway schema: api_key plus the shared outbox_event and idempotency_key tables.

Revision ID: gateway_0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "gateway_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("id", sa.String(length=8), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("team", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
    )
    # Key lists are newest first, optionally for one team: each one an index range scan.
    op.create_index("ix_api_key_created", "api_key", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_api_key_team_created", "api_key", ["team", "created_at", "id"], unique=False
    )
    op.create_table(
        "outbox_event",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("workflow_id", sa.String(length=200), nullable=False),
        sa.Column("workflow_type", sa.String(length=200), nullable=False),
        sa.Column("task_queue", sa.String(length=200), nullable=False),
        sa.Column("start_args", sa.JSON(), nullable=False),
        sa.Column("signal_name", sa.String(length=200), nullable=False),
        sa.Column("signal_args", sa.JSON(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("dispatched_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox_event")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_event_id")),
    )
    # Only pending rows are ever scanned; the partial index keeps that scan small forever.
    op.create_index(
        "ix_outbox_event_pending",
        "outbox_event",
        ["next_attempt_at", "seq"],
        unique=False,
        postgresql_where=sa.text("dispatched_at IS NULL"),
        sqlite_where=sa.text("dispatched_at IS NULL"),
    )
    op.create_table(
        "idempotency_key",
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response_body", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("subject", "key", name=op.f("pk_idempotency_key")),
    )


def downgrade() -> None:
    op.drop_table("idempotency_key")
    op.drop_index("ix_outbox_event_pending", table_name="outbox_event")
    op.drop_table("outbox_event")
    op.drop_index("ix_api_key_team_created", table_name="api_key")
    op.drop_index("ix_api_key_created", table_name="api_key")
    op.drop_table("api_key")
