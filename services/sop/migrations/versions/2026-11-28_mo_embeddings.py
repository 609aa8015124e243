"""MO embeddings for semantic MO matching (issue 10), and the indexes of the catalog version.

Revision ID: sop_0005
Revises: sop_0003
Create Date: 2026-11-28

A parallel branch from sop_0003 (the MO repository): `upgrade` applies every head. Vectors are
float32 bytes (BLOB on SQLite, bytea on PostgreSQL; pgvector is not assumed).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "sop_0005"
down_revision: str | None = "sop_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mo_embedding",
        sa.Column("mo_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("text_hash", sa.String(length=64), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("indicators", sa.JSON(), nullable=False),
        sa.Column("indicator_vectors", sa.LargeBinary(), nullable=False),
        sa.Column("embedded_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mo_id"], ["mo.id"], name=op.f("fk_mo_embedding_mo_id_mo"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("mo_id", name=op.f("pk_mo_embedding")),
    )
    # The catalog version is max(updated_at, embedded_at): two index lookups, not scans.
    op.create_index("ix_mo_embedding_embedded_at", "mo_embedding", ["embedded_at"])
    op.create_index("ix_mo_updated_at", "mo", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_mo_updated_at", table_name="mo")
    op.drop_index("ix_mo_embedding_embedded_at", table_name="mo_embedding")
    op.drop_table("mo_embedding")
