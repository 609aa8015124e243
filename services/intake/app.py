"""The intake service application (`uvicorn --factory services.intake.app:create_app`)."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.service_app import create_service_app
from services.common.settings import Settings
from services.intake.aging.api import router as aging_router
from services.intake.api import internal_router, router
from services.intake.assignment.api import assignment_router, queues_router
from services.intake.comments.api import router as comments_router
from services.intake.initiatives.api import router as initiatives_router
from services.intake.lifecycle_events.api import router as lifecycle_events_router
from services.intake.mo_suggestions.api import internal_router as mo_suggestions_internal_router
from services.intake.mo_suggestions.api import router as mo_suggestions_router
from services.intake.models import OutboxEvent
from services.intake.search.api import router as search_router
from services.intake.stats.api import router as stats_router
from services.intake.triage.api import requests_router as triage_router
from services.intake.triage.api import types_router


def create_app(settings: Settings | None = None) -> FastAPI:
    """The intake service: partner requests, their state machine and audit events."""
    return create_service_app(
        service="intake",
        title="riskdesk intake",
        description=(
            "Partner requests (MO investigations, deep dives, data and rule-change requests, "
            "systemic-gap reports): filing, lists, transitions and the audit trail. Called only "
            "through the gateway, with its signed identity token."
        ),
        # search first: its `/requests/export.csv` must win over `/requests/{request_id}`.
        # triage too: its `/requests/queue` must win over `/requests/{request_id}`.
        # mo_suggestions too: its `/requests/mo-suggestion-labels`.
        routers=[
            triage_router,
            search_router,
            mo_suggestions_router,
            router,
            internal_router,
            aging_router,
            types_router,
            queues_router,
            assignment_router,
            comments_router,
            initiatives_router,
            stats_router,
            mo_suggestions_internal_router,
            lifecycle_events_router,
        ],
        outbox_model=OutboxEvent,
        settings=settings,
    )
