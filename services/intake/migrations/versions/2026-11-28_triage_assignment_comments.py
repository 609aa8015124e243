"""Triage, assignment and comments: request columns (details, urgency, score, queue, first
response), request_type_config (seeded for the six types), queue_member, request_comment and its
revisions, and the index of the score-ordered queue view.

Revision ID: intake_0003
Revises: intake_0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "intake_0003"
down_revision: str | Sequence[str] | None = "intake_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _columns() -> list[sa.Column[object]]:
    # NOT NULL columns carry a server default: rows filed before this revision get one.
    return [
        sa.Column("details", sa.JSON(), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("urgency", sa.String(16), nullable=True),
        sa.Column("priority_score", sa.Integer(), nullable=False, server_default=sa.text("40")),
        sa.Column("proposed_priority", sa.String(2), nullable=True),
        sa.Column("queue", sa.String(100), nullable=True),
        sa.Column("first_response_at", UTCDateTime(), nullable=True),
    ]


INDEXES = (
    # The queue view: open requests by score DESC, then SLA due time, per queue or overall.
    (
        "ix_request_queue_priority_score_sla_due_at_id",
        ["queue", sa.text("priority_score DESC"), "sla_due_at", "id"],
    ),
    (
        "ix_request_priority_score_sla_due_at_id",
        [sa.text("priority_score DESC"), "sla_due_at", "id"],
    ),
    ("ix_request_queue_id", ["queue", "id"]),
)


def _field(name: str, kind: str, description: str = "") -> dict[str, object]:
    return {"name": name, "kind": kind, "required": False, "description": description}


# Every field optional: filing keeps working until an admin makes one required.
SEED = {
    "mo_investigation": [
        _field("suspected_mo", "string", "The pattern, in a few words"),
        _field("first_seen_on", "date", "When it was first noticed"),
    ],
    "deep_dive": [
        _field("question", "string", "The question the deep dive answers"),
        _field("period_start", "date"),
        _field("period_end", "date"),
    ],
    "data_request": [
        _field("dataset", "string", "Which data"),
        _field("row_estimate", "integer"),
        _field("contains_pii", "boolean"),
    ],
    "rule_change": [
        _field("rule_id", "string", "The detection rule to change"),
        _field("expected_precision", "number", "Precision expected after the change, 0..1"),
    ],
    "systemic_gap_report": [
        _field("gap_area", "string", "Where the control gap is"),
        _field("recurring", "boolean"),
    ],
    "other": [],
}


def upgrade() -> None:
    # Plain ALTER TABLE (as intake_0002): a batch copy would lose the table's AUTOINCREMENT.
    for column in _columns():
        op.add_column("request", column)
    for name, columns in INDEXES:
        op.create_index(name, "request", columns)

    config = op.create_table(
        "request_type_config",
        sa.Column("request_type", sa.String(40), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("request_type", name="pk_request_type_config"),
    )
    seeded_at = datetime(2026, 11, 28, tzinfo=UTC)
    op.bulk_insert(
        config,
        [
            {
                "request_type": request_type,
                "fields": fields,
                "version": 1,
                "updated_at": seeded_at,
                "updated_by": "migration",
            }
            for request_type, fields in SEED.items()
        ],
    )

    op.create_table(
        "queue_member",
        sa.Column("queue", sa.String(100), nullable=False),
        sa.Column("member", sa.String(200), nullable=False),
        sa.Column("added_by", sa.String(200), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("queue", "member", name="pk_queue_member"),
    )

    op.create_table(
        "request_comment",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("visibility", sa.String(16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("author_role", sa.String(32), nullable=False),
        sa.Column("asks_requester", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("edited_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["request.id"],
            name="fk_request_comment_request_id_request",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_request_comment"),
    )
    op.create_index(
        "ix_request_comment_request_id_visibility_id",
        "request_comment",
        ["request_id", "visibility", "id"],
    )
    op.create_index("ix_request_comment_request_id_id", "request_comment", ["request_id", "id"])

    op.create_table(
        "request_comment_revision",
        sa.Column("comment_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("written_by", sa.String(200), nullable=False),
        sa.Column("written_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["comment_id"],
            ["request_comment.id"],
            name="fk_request_comment_revision_comment_id_request_comment",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("comment_id", "revision", name="pk_request_comment_revision"),
    )


def downgrade() -> None:
    op.drop_table("request_comment_revision")
    op.drop_index("ix_request_comment_request_id_id", table_name="request_comment")
    op.drop_index("ix_request_comment_request_id_visibility_id", table_name="request_comment")
    op.drop_table("request_comment")
    op.drop_table("queue_member")
    op.drop_table("request_type_config")
    # SQLite cannot drop an indexed column: the indexes go first.
    for name, _ in reversed(INDEXES):
        op.drop_index(name, table_name="request")
    for column in reversed(_columns()):
        op.drop_column("request", column.name)
