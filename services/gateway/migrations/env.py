"""Alembic environment of the gateway: its own schema and version table.

The models modules are imported for their tables on Base.metadata; only the last import needs a
`noqa` (ruff counts the repeated `services` name of the earlier ones as used).
"""

from alembic import context

import services.gateway.calendars.models  # business_calendar
import services.gateway.keys.models  # api_key
import services.gateway.notifications.models  # subscriptions, deliveries
import services.gateway.reports.models  # weekly reports, goals, notes
import services.gateway.sla.models  # noqa: F401  (sla_policy)
from services.common.migrations import run_env
from services.gateway.models import Base

run_env(context, Base.metadata)
