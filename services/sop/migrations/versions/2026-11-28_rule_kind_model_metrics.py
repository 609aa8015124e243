"""ML models in the rule inventory: `rule.kind` (existing rows are rules) and the metrics a model
reports on `rule_metric_snapshot` (precision, recall, threshold, volume actioned).

Revision ID: sop_0004
Revises: sop_0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "sop_0004"
down_revision: str | Sequence[str] | None = "sop_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MODEL_METRICS = (
    ("precision", sa.Float()),
    ("recall", sa.Float()),
    ("threshold", sa.Float()),
    ("volume_actioned", sa.Integer()),
)


def upgrade() -> None:
    # Plain ALTERs, not batch mode: recreating `rule` on SQLite would cascade-delete its metrics.
    op.add_column(
        "rule",
        sa.Column("kind", sa.String(length=16), nullable=False, server_default=sa.text("'rule'")),
    )
    op.create_index("ix_rule_kind_id", "rule", ["kind", "id"])
    for name, type_ in MODEL_METRICS:
        op.add_column("rule_metric_snapshot", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    for name, _type in reversed(MODEL_METRICS):
        op.drop_column("rule_metric_snapshot", name)
    op.drop_index("ix_rule_kind_id", table_name="rule")
    op.drop_column("rule", "kind")
