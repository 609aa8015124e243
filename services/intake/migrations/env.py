"""Alembic environment of the intake service (its own schema and version table)."""

from alembic import context

from services.common.migrations import run_env
from services.intake.models import Base

run_env(context, Base.metadata)
