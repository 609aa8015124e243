"""The escalation service application (`uvicorn --factory services.escalation.app:create_app`)."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.service_app import create_service_app
from services.common.settings import Settings
from services.escalation.action_items.api import router as action_items_router
from services.escalation.api import router as escalations_router
from services.escalation.gaps.api import router as gaps_router
from services.escalation.models import OutboxEvent


def create_app(settings: Settings | None = None) -> FastAPI:
    """The escalation service: escalations, action items, RCAs, closure approval, gaps."""
    return create_service_app(
        service="escalation",
        title="riskdesk escalation service",
        description=(
            "Escalations (Sev-2, executive, COE, partner) with their action items, RCA / COE "
            "documents and closure approval, and the systemic-gap register. Called only through "
            "the gateway (or by the worker), with a signed identity token."
        ),
        routers=[escalations_router, action_items_router, gaps_router],
        outbox_model=OutboxEvent,
        settings=settings,
    )
