"""The indexes the escalation stats read through; stats have no table of their own.

Loaded at the bottom of `services/escalation/models.py`, so they are part of the escalation
metadata exactly as migration `escalation_0004` makes them (the action item index is declared
on `ActionItem` itself: importing that table from here would be circular).
"""

from __future__ import annotations

from sqlalchemy import Index

from services.escalation.models import Escalation

# Closed in a period (with the opening instant the closure time needs), and the open count.
ESCALATION_CLOSED_AT_INDEX = Index(
    "ix_escalation_closed_at_created_at", Escalation.closed_at, Escalation.created_at
)
