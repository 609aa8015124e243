"""SLA configuration: business_calendar and sla_policy, with the seeded calendars and policies.

Revision ID: gateway_0002
Revises: gateway_0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "gateway_0002"
down_revision: str | None = "gateway_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEEDED_AT = datetime(2026, 11, 28, tzinfo=UTC)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def _office(
    timezone: str, opens: str, closes: str, country: str, subdivision: Any
) -> dict[str, Any]:
    # Exactly as Calendar.to_spec() gives it, so a seeded calendar reads back like a posted one.
    return {
        "timezone": timezone,
        "hours": {day: [[opens, closes]] for day in WEEKDAYS},
        "holidays": {"country": country, "subdivision": subdivision},
        "closed_dates": [],
    }


CALENDARS: list[dict[str, Any]] = [
    {"id": "24x7", "name": "Always open (UTC)", "spec": {"timezone": "UTC", "always_open": True}},
    {
        "id": "costa-rica",
        "name": "Costa Rica office (Mon-Fri 08:00-17:00, CR holidays)",
        "spec": _office("America/Costa_Rica", "08:00", "17:00", "CR", None),
    },
    {
        "id": "india",
        "name": "India office (Mon-Fri 09:00-18:00, IN holidays)",
        "spec": _office("Asia/Kolkata", "09:00", "18:00", "IN", None),
    },
    {
        "id": "san-jose",
        "name": "San José office (Mon-Fri 09:00-18:00, US-CA holidays)",
        "spec": _office("America/Los_Angeles", "09:00", "18:00", "US", "CA"),
    },
]

_HOUR = 3600
POLICIES: list[dict[str, Any]] = [
    {
        "id": "p0-critical",
        "name": "P0: around the clock, short",
        "match_order": 10,
        "priorities": ["P0"],
        "calendar_id": "24x7",
        "first_response_seconds": 1 * _HOUR,
        "resolution_seconds": 8 * _HOUR,
    },
    {
        "id": "p1-high",
        "name": "P1: around the clock",
        "match_order": 20,
        "priorities": ["P1"],
        "calendar_id": "24x7",
        "first_response_seconds": 4 * _HOUR,
        "resolution_seconds": 24 * _HOUR,
    },
    {
        "id": "p2-normal",
        "name": "P2: India business hours",
        "match_order": 30,
        "priorities": ["P2"],
        "calendar_id": "india",
        "first_response_seconds": 8 * _HOUR,
        "resolution_seconds": 40 * _HOUR,
    },
    {
        "id": "default",
        "name": "Default (P3 and anything else): India business hours, long",
        "match_order": 1000,
        "priorities": None,
        "calendar_id": "india",
        "first_response_seconds": 16 * _HOUR,
        "resolution_seconds": 80 * _HOUR,
    },
]


def upgrade() -> None:
    calendar = op.create_table(
        "business_calendar",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_business_calendar")),
    )
    policy = op.create_table(
        "sla_policy",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("match_order", sa.Integer(), nullable=False),
        sa.Column("request_types", sa.JSON(), nullable=True),
        sa.Column("priorities", sa.JSON(), nullable=True),
        sa.Column("first_response_seconds", sa.Integer(), nullable=False),
        sa.Column("resolution_seconds", sa.Integer(), nullable=False),
        sa.Column("calendar_id", sa.String(length=40), nullable=False),
        sa.Column("warning_thresholds", sa.JSON(), nullable=False),
        sa.Column("pause_statuses", sa.JSON(), nullable=False),
        sa.Column("auto_close_seconds", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["calendar_id"],
            ["business_calendar.id"],
            name=op.f("fk_sla_policy_calendar_id_business_calendar"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_policy")),
        # Unique: matching is deterministic, and this index serves the ordered scan.
        sa.UniqueConstraint("match_order", name=op.f("uq_sla_policy_match_order")),
    )
    op.bulk_insert(
        calendar,
        [
            {**row, "version": 1, "created_at": SEEDED_AT, "updated_at": SEEDED_AT}
            for row in CALENDARS
        ],
    )
    op.bulk_insert(
        policy,
        [
            {
                **row,
                "request_types": None,
                "warning_thresholds": [50, 75, 90],
                "pause_statuses": ["waiting_on_requester"],
                "auto_close_seconds": 72 * _HOUR,
                "version": 1,
                "created_at": SEEDED_AT,
                "updated_at": SEEDED_AT,
            }
            for row in POLICIES
        ],
    )


def downgrade() -> None:
    op.drop_table("sla_policy")
    op.drop_table("business_calendar")
