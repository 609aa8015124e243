"""MO suggestions (issue 10): a request's embedding and stored suggestions, labelled pairs, and
the MO catalog version the worker reported.

Revision ID: intake_0007
Revises: intake_0002
Create Date: 2026-11-28

A parallel branch from intake_0002: `upgrade` applies every head. Vectors are float32 bytes
(BLOB on SQLite, bytea on PostgreSQL; pgvector is not assumed).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "intake_0007"
down_revision: str | Sequence[str] | None = "intake_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "request_mo_match",
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("embedding_model", sa.String(length=100), nullable=True),
        sa.Column("embedding_text_hash", sa.String(length=64), nullable=True),
        sa.Column("embedded_at", UTCDateTime(), nullable=True),
        sa.Column("method", sa.String(length=16), nullable=True),
        sa.Column("model", sa.String(length=100), nullable=True),
        sa.Column("suggestions", sa.JSON(), nullable=False),
        sa.Column("suggestions_text_hash", sa.String(length=64), nullable=True),
        sa.Column("catalog_version", sa.BigInteger(), nullable=True),
        sa.Column("computed_at", UTCDateTime(), nullable=True),
        sa.Column("refresh_text_hash", sa.String(length=64), nullable=True),
        sa.Column("refresh_catalog_version", sa.BigInteger(), nullable=True),
        sa.Column("refresh_requested_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["request.id"],
            name=op.f("fk_request_mo_match_request_id_request"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_request_mo_match")),
    )
    op.create_table(
        "mo_match_label",
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("mo_id", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("team", sa.String(length=200), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["request.id"],
            name=op.f("fk_mo_match_label_request_id_request"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", "mo_id", name=op.f("pk_mo_match_label")),
    )
    op.create_index(
        "ix_mo_match_label_decision_request_id", "mo_match_label", ["decision", "request_id"]
    )
    op.create_table(
        "mo_catalog_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mo_catalog_state")),
    )


def downgrade() -> None:
    op.drop_table("mo_catalog_state")
    op.drop_index("ix_mo_match_label_decision_request_id", table_name="mo_match_label")
    op.drop_table("mo_match_label")
    op.drop_table("request_mo_match")
