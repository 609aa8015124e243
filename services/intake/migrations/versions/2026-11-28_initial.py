"""Initial intake schema: request, request_tag, request_event, outbox_event, idempotency_key.

Revision ID: intake_0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "intake_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "request",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("team", sa.String(200), nullable=False),
        sa.Column("request_type", sa.String(40), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("priority", sa.String(2), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("resolution", sa.String(16), nullable=True),
        sa.Column("duplicate_of", sa.Integer(), nullable=True),
        sa.Column("due_at", UTCDateTime(), nullable=True),
        sa.Column("marketplace", sa.String(64), nullable=True),
        sa.Column("impact_accounts_affected", sa.BigInteger(), nullable=True),
        sa.Column("impact_money_at_risk_per_week", sa.Numeric(18, 2), nullable=True),
        sa.Column("impact_currency", sa.String(3), nullable=True),
        sa.Column("external_refs", sa.JSON(), nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("assignee", sa.String(200), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["duplicate_of"], ["request.id"], name="fk_request_duplicate_of_request"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_request"),
        # Ids are never reused on SQLite either: a workflow id (`request-<id>`) derives from it.
        sqlite_autoincrement=True,
    )
    for name, columns in (
        ("ix_request_team_status_id", ["team", "status", "id"]),
        ("ix_request_team_id", ["team", "id"]),
        ("ix_request_status_id", ["status", "id"]),
        ("ix_request_request_type_id", ["request_type", "id"]),
        ("ix_request_priority_id", ["priority", "id"]),
        ("ix_request_assignee_id", ["assignee", "id"]),
        ("ix_request_created_at_id", ["created_at", "id"]),
    ):
        op.create_index(name, "request", columns)

    op.create_table(
        "request_tag",
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(50), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["request.id"],
            name="fk_request_tag_request_id_request",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", "tag", name="pk_request_tag"),
    )
    op.create_index("ix_request_tag_tag_request_id", "request_tag", ["tag", "request_id"])

    op.create_table(
        "request_event",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("request_version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=True),
        sa.Column("from_status", sa.String(32), nullable=True),
        sa.Column("to_status", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("actor_role", sa.String(32), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["request.id"],
            name="fk_request_event_request_id_request",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_request_event"),
        sa.UniqueConstraint(
            "request_id", "request_version", name="uq_request_event_request_id_request_version"
        ),
    )

    op.create_table(
        "outbox_event",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("workflow_id", sa.String(200), nullable=False),
        sa.Column("workflow_type", sa.String(200), nullable=False),
        sa.Column("task_queue", sa.String(200), nullable=False),
        sa.Column("start_args", sa.JSON(), nullable=False),
        sa.Column("signal_name", sa.String(200), nullable=False),
        sa.Column("signal_args", sa.JSON(), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("dispatched_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_outbox_event"),
        sa.UniqueConstraint("event_id", name="uq_outbox_event_event_id"),
    )
    op.create_index(
        "ix_outbox_event_pending",
        "outbox_event",
        ["next_attempt_at", "seq"],
        postgresql_where=sa.text("dispatched_at IS NULL"),
        sqlite_where=sa.text("dispatched_at IS NULL"),
    )

    op.create_table(
        "idempotency_key",
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response_body", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("subject", "key", name="pk_idempotency_key"),
    )


def downgrade() -> None:
    op.drop_table("idempotency_key")
    op.drop_index("ix_outbox_event_pending", table_name="outbox_event")
    op.drop_table("outbox_event")
    op.drop_table("request_event")
    op.drop_index("ix_request_tag_tag_request_id", table_name="request_tag")
    op.drop_table("request_tag")
    for name in (
        "ix_request_created_at_id",
        "ix_request_assignee_id",
        "ix_request_priority_id",
        "ix_request_request_type_id",
        "ix_request_status_id",
        "ix_request_team_id",
        "ix_request_team_status_id",
    ):
        op.drop_index(name, table_name="request")
    op.drop_table("request")
