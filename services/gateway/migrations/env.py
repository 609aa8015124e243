"""Alembic environment of the gateway: its own schema and version table."""

from alembic import context

import services.gateway.keys.models  # noqa: F401  (puts api_key on Base.metadata)
from services.common.migrations import run_env
from services.gateway.models import Base

run_env(context, Base.metadata)
