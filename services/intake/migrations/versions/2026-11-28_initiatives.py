"""OP1 initiatives: the initiative table and the indexes of its lists and roadmap.

Revision ID: intake_0006
Revises: intake_0002
Create Date: 2026-11-28

A parallel branch from intake_0002: initiatives share no table with requests.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "intake_0006"
down_revision: str | Sequence[str] | None = "intake_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_initiative_team_id", ["team", "id"]),
    ("ix_initiative_status_id", ["status", "id"]),
    ("ix_initiative_source_kind_id", ["source_kind", "id"]),
    ("ix_initiative_target_quarter_id", ["target_quarter", "id"]),
    ("ix_initiative_ai_id", ["ai", "id"]),
    ("ix_initiative_score_id", ["score", "id"]),
    ("ix_initiative_status_score_id", ["status", "score", "id"]),
    ("ix_initiative_target_quarter_status", ["target_quarter", "status"]),
)


def upgrade() -> None:
    op.create_table(
        "initiative",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("team", sa.String(length=100), nullable=False),
        sa.Column("source_kind", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("problem", sa.Text(), nullable=False),
        sa.Column("proposal", sa.Text(), nullable=False),
        sa.Column("ai", sa.Boolean(), nullable=False),
        sa.Column("expected_accounts_protected", sa.BigInteger(), nullable=False),
        sa.Column("expected_money_saved", sa.Numeric(18, 2), nullable=False),
        sa.Column("expected_currency", sa.String(length=3), nullable=False),
        sa.Column("expected_analyst_hours", sa.Numeric(12, 1), nullable=False),
        sa.Column("effort_person_weeks", sa.Numeric(8, 1), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("reach", sa.BigInteger(), nullable=True),
        sa.Column("dependencies", sa.JSON(), nullable=False),
        sa.Column("target_quarter", sa.String(length=7), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("drop_reason", sa.Text(), nullable=True),
        sa.Column("realised_accounts_protected", sa.BigInteger(), nullable=True),
        sa.Column("realised_money_saved", sa.Numeric(18, 2), nullable=True),
        sa.Column("realised_currency", sa.String(length=3), nullable=True),
        sa.Column("realised_analyst_hours", sa.Numeric(12, 1), nullable=True),
        sa.Column("proposed_by", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("committed_at", UTCDateTime(), nullable=True),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.Column("measured_at", UTCDateTime(), nullable=True),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_initiative")),
        sqlite_autoincrement=True,
    )
    for name, columns in INDEXES:
        op.create_index(name, "initiative", columns)


def downgrade() -> None:
    for name, _columns in reversed(INDEXES):
        op.drop_index(name, table_name="initiative")
    op.drop_table("initiative")
