"""Webhook secrets encrypted at rest: subscription.secret_encrypted.

The rows already stored keep their secret in clear in `secret` for now: encrypting them needs
RISKDESK_SECRETS_KEY, which the schema history does not have. The gateway encrypts them when it
starts (services/gateway/notifications/secrets.py) and empties `secret`.

Revision ID: gateway_0006
Revises: gateway_0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "gateway_0006"
down_revision: str | Sequence[str] | None = "gateway_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("subscription", sa.Column("secret_encrypted", sa.Text(), nullable=True))


def downgrade() -> None:
    # Going back loses every encrypted secret (the old schema can only hold clear ones): those
    # subscriptions must be made again.
    op.drop_column("subscription", "secret_encrypted")
