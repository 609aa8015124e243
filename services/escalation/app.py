"""The escalation service's FastAPI app (the shared kernel only; domain routes come later)."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.service_app import create_service_app
from services.common.settings import Settings
from services.escalation.models import OutboxEvent


def create_app(settings: Settings | None = None) -> FastAPI:
    """The escalation service: health, identity check and outbox wired in, no domain routes yet."""
    return create_service_app(
        service="escalation",
        title="riskdesk escalation service",
        description="Escalations (Sev-2, executive, COE), action items, RCAs and systemic gaps.",
        routers=[],
        outbox_model=OutboxEvent,
        settings=settings,
    )
