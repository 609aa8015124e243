"""Stats: each SLA clock's business time and stop instant on request, and the stats indexes.

Revision ID: intake_0008
Revises: intake_0002
Create Date: 2026-11-28

A parallel branch from intake_0002 (like intake_0003..0005): `upgrade` applies every head.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "intake_0008"
down_revision: str | Sequence[str] | None = "intake_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS: tuple[tuple[str, Any], ...] = (
    ("first_response_business_seconds", sa.Float()),
    ("first_response_stopped_at", UTCDateTime()),
    ("resolution_business_seconds", sa.Float()),
    ("resolution_stopped_at", UTCDateTime()),
)
INDEXES = (
    ("ix_request_created_at_team_type", "request", ["created_at", "team", "request_type"]),
    ("ix_request_closed_at", "request", ["closed_at"]),
    (
        "ix_request_first_response_stopped_at",
        "request",
        ["first_response_stopped_at", "first_response_business_seconds"],
    ),
    (
        "ix_request_resolution_stopped_at",
        "request",
        ["resolution_stopped_at", "resolution_business_seconds"],
    ),
    ("ix_request_event_action_occurred_at", "request_event", ["action", "occurred_at"]),
)


OPEN_WHERE = sa.text("closed_at IS NULL")


def upgrade() -> None:
    # Plain ALTER TABLE (as intake_0002): a batch copy would lose SQLite's AUTOINCREMENT.
    for column, type_ in COLUMNS:
        op.add_column("request", sa.Column(column, type_, nullable=True))
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)
    op.create_index(
        "ix_request_open_created_at",
        "request",
        ["created_at"],
        postgresql_where=OPEN_WHERE,
        sqlite_where=OPEN_WHERE,
    )


def downgrade() -> None:
    op.drop_index("ix_request_open_created_at", table_name="request")
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    for column, _ in reversed(COLUMNS):
        op.drop_column("request", column)
