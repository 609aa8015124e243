"""Tracing: the outbox row keeps the W3C traceparent of the request that wrote it.

Revision ID: intake_trace_0001
Revises: intake_0001
Create Date: 2026-11-28

A parallel branch from intake_0001 (where outbox_event is made): `upgrade` applies every head. The
dispatcher starts or signals the workflow inside that context, so the workflow's spans join the
trace of the HTTP request (services/common/tracing.py). NULL when tracing was off.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "intake_trace_0001"
down_revision: str | Sequence[str] | None = "intake_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox_event", sa.Column("traceparent", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox_event") as batch:
        batch.drop_column("traceparent")
